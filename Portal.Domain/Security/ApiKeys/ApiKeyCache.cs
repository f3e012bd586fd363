using System.Collections.Concurrent;

namespace Portal.Domain.Security.ApiKeys;

/// <summary>What authentication needs of a key row, read once and reused; never the secret or its hash.</summary>
public sealed record ApiKeySnapshot(
    Guid Id, Guid ProjectId, string Name, string Role, IReadOnlyList<string> Scopes, DateTimeOffset ExpiresAt,
    DateTimeOffset? RevokedAt, Guid? ReplacedByKeyId, DateTimeOffset? SupersededUntil, DateTimeOffset? LastUsedAt)
{
    public static ApiKeySnapshot Of(ApiKey k) => new(
        k.Id, k.ProjectId, k.Name, k.Role, ApiKeyRules.FromJson(k.ScopesJson), k.ExpiresAt, k.RevokedAt, k.ReplacedByKeyId, k.SupersededUntil, k.LastUsedAt);
}

/// <summary>
/// Per-node memo of API key rows by the SHA-256 of the presented secret, so a busy agent does not cost a database
/// round trip per call. It caches only what the row says, never a verdict: revocation, rotation overlap and expiry are
/// judged against the clock on every call, so a key that expires between two calls is refused on the second.
/// <para>
/// Same discipline as <see cref="Gateway.GatewayLookupCache"/>: <see cref="ApiKeyService"/> calls
/// <see cref="Invalidate"/> once a revoke or rotate has committed, so on this node the very next call sees it; a
/// generation number keeps a read that raced such a change from being stored as fresh. Another node's change is seen
/// within <see cref="Lifetime"/>.
/// </para>
/// </summary>
public sealed class ApiKeyCache(TimeProvider clock)
{
    /// <summary>How long a row may be reused before it is read again: the gateway's one freshness bound for every lookup.</summary>
    public static readonly TimeSpan Lifetime = Gateway.GatewayLookupCache.Lifetime;

    // Bounded so a flood of distinct valid keys cannot grow the memo without limit; a full memo just starts over.
    private const int MaxEntries = 10_000;

    private sealed record Entry(ApiKeySnapshot Key, long LoadedAtTicks, long Generation);

    private readonly ConcurrentDictionary<string, Entry> entries = new(StringComparer.Ordinal);
    private long generation;

    /// <summary>Read before looking the row up, and handed back to <see cref="Store"/>.</summary>
    public long Generation => Interlocked.Read(ref generation);

    public bool TryGet(string secretHash, out ApiKeySnapshot key)
    {
        var now = clock.GetUtcNow().UtcTicks;
        if (entries.TryGetValue(secretHash, out var hit) && hit.Generation == Generation && now >= hit.LoadedAtTicks && now - hit.LoadedAtTicks < Lifetime.Ticks)
        {
            key = hit.Key;
            return true;
        }
        key = null!;
        return false;
    }

    /// <param name="generationBeforeRead">The <see cref="Generation"/> seen before the row was read: if a change committed since, the entry is born stale.</param>
    public void Store(string secretHash, ApiKeySnapshot key, long generationBeforeRead, DateTimeOffset readAt)
    {
        if (entries.Count >= MaxEntries) entries.Clear();
        entries[secretHash] = new Entry(key, readAt.UtcTicks, generationBeforeRead);
    }

    /// <summary>Forgets every key; call after committing any change to a key's state.</summary>
    public void Invalidate()
    {
        Interlocked.Increment(ref generation);
        entries.Clear();
    }
}
