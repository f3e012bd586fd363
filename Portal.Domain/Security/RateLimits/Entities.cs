namespace Portal.Domain.Security.RateLimits;

public static class RateLimitScopes
{
    public const string Global = "global";
    public const string Key = "key";
    public const string User = "user";
    public const string Query = "query";
    public const string Role = "role";

    public static readonly IReadOnlyList<string> All = [Global, Key, User, Query, Role];
}

/// <summary>
/// A limit on gateway calls in one project: at most <see cref="MaxRequests"/> requests and/or <see cref="MaxRows"/>
/// result rows per window. <see cref="Subject"/> names the key id, user id, query id or role it applies to; for a
/// non-global scope a null subject means "each key / user / query / role separately", and for global it is always null.
/// </summary>
public sealed class RateLimit
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    public required string Scope { get; set; }
    public string? Subject { get; set; }
    public int? MaxRequests { get; set; }
    public long? MaxRows { get; set; }
    public int WindowSeconds { get; set; }
    public bool Enabled { get; set; } = true;
    public Guid CreatedBy { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public Guid UpdatedBy { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
}

/// <summary>Every create, update and delete of a rate limit, before/after as JSON, for the audit trail.</summary>
public sealed class RateLimitChange
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    public Guid RateLimitId { get; set; }
    public required string Action { get; set; }
    public string? Before { get; set; }
    public string? After { get; set; }
    public Guid ChangedBy { get; set; }
    public DateTimeOffset ChangedAt { get; set; }
}
