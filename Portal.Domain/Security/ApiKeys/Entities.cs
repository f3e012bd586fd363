namespace Portal.Domain.Security.ApiKeys;

/// <summary>
/// A project's credential for the gateway API. Only <see cref="Prefix"/> (for lookup) and <see cref="SecretHash"/>
/// (SHA-256 of the whole secret) are stored; the secret is shown once at creation or rotation.
/// </summary>
public sealed class ApiKey
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    public required string Name { get; set; }
    /// <summary>The project role the key acts as (one of <see cref="Tenancy.Roles"/>).</summary>
    public required string Role { get; set; }
    /// <summary>JSON array of canonical scopes ("query:&lt;id&gt;", "role:&lt;name&gt;"); [] means all the role allows.</summary>
    public string ScopesJson { get; set; } = "[]";
    public required string Prefix { get; set; }
    public required string SecretHash { get; set; }
    public DateTimeOffset ExpiresAt { get; set; }
    public Guid CreatedBy { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? LastUsedAt { get; set; }
    public string? LastUsedIp { get; set; }
    public DateTimeOffset? RevokedAt { get; set; }
    public Guid? RevokedBy { get; set; }
    public string? RevokeReason { get; set; }
    /// <summary>Set by rotation: the key that replaces this one.</summary>
    public Guid? ReplacedByKeyId { get; set; }
    /// <summary>Set by rotation: this key keeps working until then, so callers can switch without downtime.</summary>
    public DateTimeOffset? SupersededUntil { get; set; }
}

public static class ApiKeyActions
{
    public const string Created = "created";
    public const string Rotated = "rotated";
    public const string Revoked = "revoked";
}

/// <summary>
/// One create, rotate or revoke of an API key, kept as data for the audit trail and the security detectors
/// (broad new keys, revoked-key use). A rotation is recorded twice: "rotated" on the old key (naming the new one and
/// the overlap) and "created" on the new key. Never holds a secret or hash.
/// </summary>
public sealed class ApiKeyChange
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    public Guid KeyId { get; set; }
    public required string Action { get; set; }
    public required string KeyName { get; set; }
    public required string KeyPrefix { get; set; }
    public required string Role { get; set; }
    public string ScopesJson { get; set; } = "[]";
    public DateTimeOffset ExpiresAt { get; set; }
    public Guid? ReplacedByKeyId { get; set; }
    public DateTimeOffset? SupersededUntil { get; set; }
    public string? Reason { get; set; }
    public Guid ChangedBy { get; set; }
    public DateTimeOffset ChangedAt { get; set; }
}
