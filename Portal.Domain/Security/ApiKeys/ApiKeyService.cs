using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Microsoft.EntityFrameworkCore;
using Portal.Domain.Audit;
using Portal.Domain.Persistence;
using Portal.Domain.Tenancy;

namespace Portal.Domain.Security.ApiKeys;

public enum ApiKeyStatus { Active, ExpiringSoon, Superseded, Expired, Revoked }

public enum ApiKeyFailure { Malformed, Unknown, Expired, Revoked, Superseded }

public sealed record CreateApiKeyRequest(string? Name, string? Role, IReadOnlyList<string>? Scopes = null, DateTimeOffset? ExpiresAt = null);

/// <summary>A key as lists show it: never its secret or hash.</summary>
public sealed record ApiKeyRow(
    Guid Id, string Name, string Prefix, string Role, IReadOnlyList<string> Scopes, DateTimeOffset ExpiresAt,
    DateTimeOffset CreatedAt, Guid CreatedBy, string? CreatedByEmail, DateTimeOffset? LastUsedAt, string? LastUsedIp,
    DateTimeOffset? RevokedAt, string? RevokeReason, Guid? ReplacedByKeyId, DateTimeOffset? SupersededUntil,
    ApiKeyStatus Status, bool Usable);

/// <summary>The result of create or rotate: <see cref="Secret"/> exists only here and is never stored or shown again.</summary>
public sealed record IssuedApiKey(ApiKeyRow Key, string Secret);

/// <summary>
/// The outcome of presenting a key. On failure <see cref="KeyId"/> and <see cref="ProjectId"/> are set whenever the
/// key was recognised (expired, revoked, superseded), so the audit trail and alerts can name the key that was misused.
/// </summary>
public sealed record ApiKeyAuthResult(bool Succeeded, ApiKeyFailure? Failure, Guid? ProjectId, Guid? KeyId, string? Role, IReadOnlyList<string> Scopes, string? Name)
{
    public static ApiKeyAuthResult Fail(ApiKeyFailure failure, ApiKey? key = null) =>
        new(false, failure, key?.ProjectId, key?.Id, null, [], key?.Name);

    public static ApiKeyAuthResult Fail(ApiKeyFailure failure, ApiKeySnapshot key) =>
        new(false, failure, key.ProjectId, key.Id, null, [], key.Name);
}

/// <summary>
/// Creates, lists, rotates, revokes and authenticates API keys. Every command is scoped by project id (another
/// project's key id answers NotFound) and writes an <see cref="ApiKeyChange"/> in the same transaction, then an
/// audit event (see <see cref="PortalAudit"/> for why in that order). Events carry the key's prefix, never its secret.
/// </summary>
public sealed class ApiKeyService(IDbContextFactory<PortalDbContext> dbFactory, TimeProvider clock, PortalAudit audit, ApiKeyCache? cache = null)
{
    private readonly ConcurrentDictionary<Guid, DateTimeOffset> lastUsedWritten = new();

    /// <summary>The roles this member may give a new key (empty when they may mint none).</summary>
    public async Task<IReadOnlyList<string>> MintableRolesAsync(Guid projectId, Guid actor, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var role = await ActiveRoleAsync(db, projectId, actor, ct);
        return role is null ? [] : ApiKeyRules.MintableRoles(role);
    }

    public async Task<IssuedApiKey> CreateAsync(Guid projectId, CreateApiKeyRequest request, Guid actor, CancellationToken ct = default)
    {
        var name = request.Name?.Trim();
        if (string.IsNullOrEmpty(name)) throw DomainException.Invalid("name", "Name is required.");
        if (name.Length > 200) throw DomainException.Invalid("name", "Name is limited to 200 characters.");
        var role = request.Role?.Trim().ToLowerInvariant();
        if (!Roles.IsValid(role)) throw DomainException.Invalid("role", $"Role must be one of {string.Join(", ", Roles.All)}.");
        var scopes = ApiKeyRules.NormalizeScopes(request.Scopes, role!);
        var now = clock.GetUtcNow();
        var expiresAt = request.ExpiresAt ?? now + ApiKeyRules.DefaultLifetime;
        ValidateExpiry(expiresAt, now);

        await using var db = await dbFactory.CreateDbContextAsync(ct);
        await RequireMinterAsync(db, projectId, actor, role!, ct);
        var key = await NewKeyAsync(db, projectId, name, role!, ApiKeyRules.ToJson(scopes), expiresAt, actor, now, ct);
        db.ApiKeys.Add(key.Entity);
        db.ApiKeyChanges.Add(Change(key.Entity, ApiKeyActions.Created, actor, now));
        await db.SaveChangesAsync(ct);
        await RecordAsync(db, key.Entity, "api_key.created", "create", actor, null, Describe(key.Entity), IsBroad(key.Entity) ? AuditSecurityLevel.Warning : AuditSecurityLevel.Normal, null, now, ct);
        return new IssuedApiKey(await ToRowAsync(db, key.Entity, now, ct), key.Secret);
    }

    public async Task<Page<ApiKeyRow>> ListAsync(Guid projectId, int skip, int take, CancellationToken ct = default)
    {
        take = Math.Clamp(take, 1, 200);
        skip = Math.Max(0, skip);
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var q = db.ApiKeys.AsNoTracking().Where(k => k.ProjectId == projectId);
        var total = await q.CountAsync(ct);
        var keys = await q.OrderByDescending(k => k.CreatedAt).ThenByDescending(k => k.Id).Skip(skip).Take(take).ToListAsync(ct);
        var creators = keys.Select(k => k.CreatedBy).Distinct().ToList();
        var emails = await db.Users.AsNoTracking().Where(u => creators.Contains(u.Id)).ToDictionaryAsync(u => u.Id, u => u.Email, ct);
        var now = clock.GetUtcNow();
        return new Page<ApiKeyRow>(keys.Select(k => ToRow(k, emails.GetValueOrDefault(k.CreatedBy), now)).ToList(), total, skip, take);
    }

    public async Task<ApiKeyRow> GetAsync(Guid projectId, Guid keyId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var key = await db.ApiKeys.AsNoTracking().FirstOrDefaultAsync(k => k.Id == keyId && k.ProjectId == projectId, ct) ?? throw DomainException.NotFound("API key");
        return await ToRowAsync(db, key, clock.GetUtcNow(), ct);
    }

    public async Task<Page<ApiKeyChange>> ChangesAsync(Guid projectId, int skip, int take, CancellationToken ct = default)
    {
        take = Math.Clamp(take, 1, 200);
        skip = Math.Max(0, skip);
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var q = db.ApiKeyChanges.AsNoTracking().Where(c => c.ProjectId == projectId);
        var total = await q.CountAsync(ct);
        var items = await q.OrderByDescending(c => c.ChangedAt).ThenByDescending(c => c.Id).Skip(skip).Take(take).ToListAsync(ct);
        return new Page<ApiKeyChange>(items, total, skip, take);
    }

    /// <summary>
    /// Issues a new secret for the key (same name, role and scopes; by default the same lifetime) and lets the old
    /// secret work for <paramref name="overlap"/> (0 to 7 days) so callers can switch without downtime.
    /// </summary>
    public async Task<IssuedApiKey> RotateAsync(Guid projectId, Guid keyId, TimeSpan overlap, Guid actor, DateTimeOffset? newExpiresAt = null, CancellationToken ct = default)
    {
        if (overlap < TimeSpan.Zero || overlap > ApiKeyRules.MaxOverlap)
            throw DomainException.Invalid("overlap", "The overlap must be between 0 and 7 days.");
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var now = clock.GetUtcNow();
        var old = await db.ApiKeys.AsNoTracking().FirstOrDefaultAsync(k => k.Id == keyId && k.ProjectId == projectId, ct) ?? throw DomainException.NotFound("API key");
        if (old.RevokedAt is not null) throw DomainException.Conflict("This key was revoked; create a new key instead.");
        if (old.ReplacedByKeyId is not null) throw DomainException.Conflict("This key was already rotated; rotate its replacement instead.");
        if (old.ExpiresAt <= now) throw DomainException.Conflict("This key has expired; create a new key instead.");
        var expiresAt = newExpiresAt ?? now + Clamp(old.ExpiresAt - old.CreatedAt, TimeSpan.FromDays(1), ApiKeyRules.MaxLifetime);
        ValidateExpiry(expiresAt, now);
        await RequireMinterAsync(db, projectId, actor, old.Role, ct);

        var issued = await NewKeyAsync(db, projectId, old.Name, old.Role, old.ScopesJson, expiresAt, actor, now, ct);
        var until = now + overlap < old.ExpiresAt ? now + overlap : old.ExpiresAt;
        var before = Describe(old);
        var strategy = db.Database.CreateExecutionStrategy();
        await CommitKeyChangeAsync(strategy, async () =>
        {
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            db.ApiKeys.Add(issued.Entity);
            db.ApiKeyChanges.Add(Change(issued.Entity, ApiKeyActions.Created, actor, now));
            await db.SaveChangesAsync(ct);
            // Conditional so two rotations of one key at once cannot both win; the loser rolls back its new key.
            var updated = await db.ApiKeys
                .Where(k => k.Id == keyId && k.ProjectId == projectId && k.ReplacedByKeyId == null && k.RevokedAt == null)
                .ExecuteUpdateAsync(s => s.SetProperty(k => k.ReplacedByKeyId, issued.Entity.Id).SetProperty(k => k.SupersededUntil, until), ct);
            if (updated != 1) throw DomainException.Conflict("This key was rotated or revoked at the same time. Reload and try again.");
            old.ReplacedByKeyId = issued.Entity.Id;
            old.SupersededUntil = until;
            var change = Change(old, ApiKeyActions.Rotated, actor, now);
            change.Reason = overlap == TimeSpan.Zero ? "no overlap" : $"overlap {overlap.TotalHours:0.##} h, until {until:yyyy-MM-dd HH:mm} UTC";
            db.ApiKeyChanges.Add(change);
            await db.SaveChangesAsync(ct);
            await tx.CommitAsync(ct);
        });
        // One event for the rotation, on the old key: its new state names the replacement and the overlap.
        await RecordAsync(db, old, "api_key.rotated", "rotate", actor, before,
            new { key = Describe(old), replacement = Describe(issued.Entity) },
            IsBroad(old) ? AuditSecurityLevel.Warning : AuditSecurityLevel.Normal,
            new { overlap_seconds = (long)overlap.TotalSeconds }, now, ct);
        return new IssuedApiKey(await ToRowAsync(db, issued.Entity, now, ct), issued.Secret);
    }

    /// <summary>Stops the key at once (a rotation overlap ends too). Any key manager may revoke any key, to contain incidents.</summary>
    public async Task RevokeAsync(Guid projectId, Guid keyId, string? reason, Guid actor, CancellationToken ct = default)
    {
        reason = reason?.Trim();
        if (string.IsNullOrEmpty(reason)) throw DomainException.Invalid("reason", "Say why the key is revoked; the reason goes to the audit trail.");
        if (reason.Length > 500) throw DomainException.Invalid("reason", "The reason is limited to 500 characters.");
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var key = await db.ApiKeys.AsNoTracking().FirstOrDefaultAsync(k => k.Id == keyId && k.ProjectId == projectId, ct) ?? throw DomainException.NotFound("API key");
        if (await ActiveRoleAsync(db, projectId, actor, ct) is not { } role || !Permissions.RoleHas(role, Permissions.KeysManage))
            throw DomainException.Forbidden("Your role in this project cannot manage API keys.");
        if (key.RevokedAt is not null) throw DomainException.Conflict("This key is already revoked.");
        var now = clock.GetUtcNow();
        var strategy = db.Database.CreateExecutionStrategy();
        await CommitKeyChangeAsync(strategy, async () =>
        {
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            var updated = await db.ApiKeys.Where(k => k.Id == keyId && k.ProjectId == projectId && k.RevokedAt == null)
                .ExecuteUpdateAsync(s => s.SetProperty(k => k.RevokedAt, now).SetProperty(k => k.RevokedBy, actor).SetProperty(k => k.RevokeReason, reason), ct);
            if (updated != 1) throw DomainException.Conflict("This key is already revoked.");
            var change = Change(key, ApiKeyActions.Revoked, actor, now);
            change.Reason = reason;
            db.ApiKeyChanges.Add(change);
            await db.SaveChangesAsync(ct);
            await tx.CommitAsync(ct);
        });
        var before = Describe(key);
        key.RevokedAt = now;
        key.RevokedBy = actor;
        key.RevokeReason = reason;
        await RecordAsync(db, key, "api_key.revoked", "revoke", actor, before, Describe(key), AuditSecurityLevel.Normal, new { reason }, now, ct);
    }

    /// <summary>What the audit trail keeps of a key: identity, rights and lifecycle, never the secret or its hash.</summary>
    private static object Describe(ApiKey k) => new
    {
        id = k.Id, name = k.Name, prefix = k.Prefix, role = k.Role, scopes = ApiKeyRules.FromJson(k.ScopesJson), expires_at = k.ExpiresAt,
        replaced_by_key_id = k.ReplacedByKeyId, superseded_until = k.SupersededUntil, revoked_at = k.RevokedAt, revoke_reason = k.RevokeReason,
    };

    /// <summary>An admin key, or one not narrowed to named queries (no scopes, or a whole role), reaches far if leaked.</summary>
    private static bool IsBroad(ApiKey k)
    {
        var scopes = ApiKeyRules.FromJson(k.ScopesJson);
        return k.Role == Roles.Admin || scopes.Count == 0 || scopes.Any(s => s.StartsWith("role:", StringComparison.Ordinal));
    }

    private async Task RecordAsync(PortalDbContext db, ApiKey key, string eventType, string action, Guid actor, object? before, object after,
        AuditSecurityLevel level, object? details, DateTimeOffset now, CancellationToken ct) =>
        await audit.RecordAsync(new AuditEventDraft
        {
            ProjectId = key.ProjectId, EventType = eventType, Actor = await PortalAudit.UserAsync(db, key.ProjectId, actor, ct),
            ResourceType = "api_key", ResourceId = key.Id.ToString(), Action = action,
            BeforeState = PortalAudit.Json(before), AfterState = PortalAudit.Json(after), Details = PortalAudit.Json(details),
            SecurityLevel = level, OccurredAt = now,
        }, ct);

    /// <summary>
    /// Checks a presented secret: found by prefix, then compared by hash in constant time. Revoked wins over
    /// superseded, which wins over expired, so alerts see the most telling reason.
    /// </summary>
    public async Task<ApiKeyAuthResult> AuthenticateAsync(string? presentedSecret, string? clientIp, CancellationToken ct = default)
    {
        if (!ApiKeySecret.TryParsePrefix(presentedSecret, out var prefix)) return ApiKeyAuthResult.Fail(ApiKeyFailure.Malformed);
        var presentedHash = SHA256.HashData(Encoding.UTF8.GetBytes(presentedSecret!));
        var hashHex = Convert.ToHexStringLower(presentedHash);
        // A hit is found by the whole hash, so it is the very key the secret names; the prefix lookup below is the slow path.
        if (cache is null || !cache.TryGet(hashHex, out var key))
        {
            var generation = cache?.Generation ?? 0;
            var readAt = clock.GetUtcNow();
            await using var db = await dbFactory.CreateDbContextAsync(ct);
            var row = await db.ApiKeys.AsNoTracking().FirstOrDefaultAsync(k => k.Prefix == prefix, ct);
            if (row is null || !CryptographicOperations.FixedTimeEquals(presentedHash, Convert.FromHexString(row.SecretHash)))
                return ApiKeyAuthResult.Fail(ApiKeyFailure.Unknown);
            key = ApiKeySnapshot.Of(row);
            cache?.Store(hashHex, key, generation, readAt);
        }

        var now = clock.GetUtcNow();
        if (key.RevokedAt is not null) return ApiKeyAuthResult.Fail(ApiKeyFailure.Revoked, key);
        if (key.ReplacedByKeyId is not null && (key.SupersededUntil is not { } until || until <= now)) return ApiKeyAuthResult.Fail(ApiKeyFailure.Superseded, key);
        if (key.ExpiresAt <= now) return ApiKeyAuthResult.Fail(ApiKeyFailure.Expired, key);

        await TouchAsync(key, now, clientIp, ct);
        return new ApiKeyAuthResult(true, null, key.ProjectId, key.Id, key.Role, key.Scopes, key.Name);
    }

    /// <summary>
    /// Records last use at most once a minute per key: a per-process memo skips the write entirely, and the
    /// conditional UPDATE keeps other nodes from writing again within the same minute. The rare write stays on the
    /// request path so "last used" is exact when the call returns; it costs one UPDATE per key per minute.
    /// </summary>
    private async Task TouchAsync(ApiKeySnapshot key, DateTimeOffset now, string? clientIp, CancellationToken ct)
    {
        if (lastUsedWritten.TryGetValue(key.Id, out var written) && now - written < ApiKeyRules.LastUsedResolution) return;
        if (key.LastUsedAt is { } seen && now - seen < ApiKeyRules.LastUsedResolution) { lastUsedWritten[key.Id] = seen; return; }
        lastUsedWritten[key.Id] = now;
        var threshold = now - ApiKeyRules.LastUsedResolution;
        var ip = clientIp is { Length: > 64 } ? clientIp[..64] : clientIp;
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        await db.ApiKeys.Where(k => k.Id == key.Id && (k.LastUsedAt == null || k.LastUsedAt <= threshold))
            .ExecuteUpdateAsync(s => s.SetProperty(k => k.LastUsedAt, now).SetProperty(k => k.LastUsedIp, ip), ct);
    }

    private async Task CommitKeyChangeAsync(Microsoft.EntityFrameworkCore.Storage.IExecutionStrategy strategy, Func<Task> change)
    {
        try { await strategy.ExecuteAsync(change); }
        // Also when the commit failed: its outcome may be unknown, and forgetting a key only costs one extra read.
        finally { cache?.Invalidate(); }
    }

    private static void ValidateExpiry(DateTimeOffset expiresAt, DateTimeOffset now)
    {
        if (expiresAt <= now) throw DomainException.Invalid("expiresAt", "The expiry must be in the future.");
        if (expiresAt > now + ApiKeyRules.MaxLifetime) throw DomainException.Invalid("expiresAt", "A key can be valid for at most one year.");
    }

    private static TimeSpan Clamp(TimeSpan value, TimeSpan min, TimeSpan max) => value < min ? min : value > max ? max : value;

    private static async Task<string?> ActiveRoleAsync(PortalDbContext db, Guid projectId, Guid actor, CancellationToken ct) =>
        await db.ProjectMembers.AsNoTracking().Where(m => m.ProjectId == projectId && m.UserId == actor && !m.Suspended)
            .Select(m => m.Role).FirstOrDefaultAsync(ct);

    private static async Task RequireMinterAsync(PortalDbContext db, Guid projectId, Guid actor, string keyRole, CancellationToken ct)
    {
        var actorRole = await ActiveRoleAsync(db, projectId, actor, ct);
        if (actorRole is null || !Permissions.RoleHas(actorRole, Permissions.KeysManage))
            throw DomainException.Forbidden("Your role in this project cannot manage API keys.");
        if (!ApiKeyRules.CanMint(actorRole, keyRole))
            throw new DomainException(ErrorKind.Forbidden,
                keyRole is Roles.Compliance or Roles.Security || actorRole is Roles.Compliance or Roles.Security
                    ? $"Only project admins can issue keys acting as {keyRole}."
                    : $"You are {actorRole} in this project and cannot issue a key acting as {keyRole}.", "role");
    }

    private static async Task<(ApiKey Entity, string Secret)> NewKeyAsync(PortalDbContext db, Guid projectId, string name, string role, string scopesJson,
        DateTimeOffset expiresAt, Guid actor, DateTimeOffset now, CancellationToken ct)
    {
        // 62^8 prefixes make a clash vanishingly rare; the unique index is the real guarantee, this loop just avoids an error.
        string prefix;
        var attempts = 0;
        do prefix = ApiKeySecret.NewPrefix();
        while (await db.ApiKeys.AnyAsync(k => k.Prefix == prefix, ct) && ++attempts < 5);
        var secret = ApiKeySecret.Compose(prefix);
        var key = new ApiKey
        {
            ProjectId = projectId, Name = name, Role = role, ScopesJson = scopesJson, Prefix = prefix, SecretHash = ApiKeySecret.Hash(secret),
            ExpiresAt = expiresAt, CreatedBy = actor, CreatedAt = now,
        };
        return (key, secret);
    }

    private static ApiKeyChange Change(ApiKey key, string action, Guid actor, DateTimeOffset now) => new()
    {
        ProjectId = key.ProjectId, KeyId = key.Id, Action = action, KeyName = key.Name, KeyPrefix = key.Prefix, Role = key.Role,
        ScopesJson = key.ScopesJson, ExpiresAt = key.ExpiresAt, ReplacedByKeyId = key.ReplacedByKeyId, SupersededUntil = key.SupersededUntil,
        ChangedBy = actor, ChangedAt = now,
    };

    private static async Task<ApiKeyRow> ToRowAsync(PortalDbContext db, ApiKey key, DateTimeOffset now, CancellationToken ct)
    {
        var email = await db.Users.AsNoTracking().Where(u => u.Id == key.CreatedBy).Select(u => u.Email).FirstOrDefaultAsync(ct);
        return ToRow(key, email, now);
    }

    public static ApiKeyStatus StatusOf(ApiKey key, DateTimeOffset now) =>
        key.RevokedAt is not null ? ApiKeyStatus.Revoked
        : key.ReplacedByKeyId is not null ? ApiKeyStatus.Superseded
        : key.ExpiresAt <= now ? ApiKeyStatus.Expired
        : key.ExpiresAt - now <= ApiKeyRules.ExpiringSoon ? ApiKeyStatus.ExpiringSoon
        : ApiKeyStatus.Active;

    private static bool IsUsable(ApiKey key, DateTimeOffset now) =>
        key.RevokedAt is null && key.ExpiresAt > now && (key.ReplacedByKeyId is null || key.SupersededUntil > now);

    private static ApiKeyRow ToRow(ApiKey k, string? createdByEmail, DateTimeOffset now) => new(
        k.Id, k.Name, k.Prefix, k.Role, ApiKeyRules.FromJson(k.ScopesJson), k.ExpiresAt, k.CreatedAt, k.CreatedBy, createdByEmail,
        k.LastUsedAt, k.LastUsedIp, k.RevokedAt, k.RevokeReason, k.ReplacedByKeyId, k.SupersededUntil, StatusOf(k, now), IsUsable(k, now));
}
