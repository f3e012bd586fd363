using System.Collections.Concurrent;

namespace Portal.Domain.Gateway;

/// <summary>
/// Short-lived, per-project memo of the gateway's read-only lookups (module gate, approved query, query permission,
/// mask rules, datasource engine), so a busy key does not pay five database round trips per call.
/// <para>
/// Correctness over hit rate: every service that changes what these lookups answer (suite modules, approved queries,
/// query permissions, column masks, datasources) calls <see cref="Invalidate"/> for the project once its change is
/// committed, so on this node a revoked permission, a new mask or a disabled module applies to the very next call.
/// A generation number per project keeps a lookup that read the old rows while the change committed from storing
/// them afterwards. Changes made by another node (or by code that writes those tables without going through the
/// services) are seen within <see cref="Lifetime"/>, the most an entry is ever reused.
/// </para>
/// </summary>
public sealed class GatewayLookupCache(TimeProvider clock)
{
    /// <summary>How long an entry may be reused before it is read again from the database.</summary>
    public static readonly TimeSpan Lifetime = TimeSpan.FromSeconds(1);

    private const int MaxEntriesPerProject = 4096;

    private sealed class ProjectEntries
    {
        public long Generation;
        public readonly ConcurrentDictionary<string, Entry> Items = new(StringComparer.Ordinal);
    }

    private sealed record Entry(object? Value, long LoadedAtTicks, long Generation);

    private readonly ConcurrentDictionary<Guid, ProjectEntries> projects = new();

    /// <summary>The cached answer for <paramref name="key"/> in the project, or the loader's (stored unless the project changed meanwhile). Exceptions are never cached.</summary>
    public async Task<T> GetOrLoadAsync<T>(Guid projectId, string key, Func<Task<T>> load)
    {
        var entries = projects.GetOrAdd(projectId, _ => new ProjectEntries());
        var now = clock.GetUtcNow().UtcTicks;
        var generation = Interlocked.Read(ref entries.Generation);
        // An entry counts only if no change was committed since it was read (same generation) and it is fresh.
        if (entries.Items.TryGetValue(key, out var hit) && hit.Generation == generation && now - hit.LoadedAtTicks < Lifetime.Ticks && now >= hit.LoadedAtTicks)
            return (T)hit.Value!;
        var value = await load();
        if (entries.Items.Count >= MaxEntriesPerProject) entries.Items.Clear();
        // Tagged with the generation seen before reading: if a change commits meanwhile, the entry is already stale
        // and no caller will use it.
        entries.Items[key] = new Entry(value, now, generation);
        return value;
    }

    /// <summary>Forgets everything cached for the project; call after committing a change that affects gateway lookups.</summary>
    public void Invalidate(Guid projectId)
    {
        var entries = projects.GetOrAdd(projectId, _ => new ProjectEntries());
        Interlocked.Increment(ref entries.Generation);
        entries.Items.Clear();
    }

    /// <summary>Forgets everything (a change spanning projects, such as re-encrypting every datasource password).</summary>
    public void InvalidateAll()
    {
        foreach (var id in projects.Keys) Invalidate(id);
    }
}
