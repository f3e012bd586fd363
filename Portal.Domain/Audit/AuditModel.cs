namespace Portal.Domain.Audit;

/// <summary>How much attention an event deserves; alerts are raised from <see cref="Alert"/> events.</summary>
public enum AuditSecurityLevel { Normal, Warning, Alert }

/// <summary>
/// Who acted and from where. Build it once per request (gateway) or per page circuit (portal) and reuse it for every
/// event of that request. <see cref="Type"/> is one of "user", "api_key", "agent", "system" or "anonymous".
/// </summary>
public sealed record AuditActor(
    string Type,
    string? Id = null,
    string? Email = null,
    string? Role = null,
    string? SessionId = null,
    string? ClientIp = null,
    string? UserAgent = null,
    string? RequestId = null)
{
    /// <summary>Scheduled jobs and the portal itself.</summary>
    public static AuditActor System { get; } = new("system");
    public static AuditActor Anonymous(string? clientIp = null, string? userAgent = null, string? requestId = null) =>
        new("anonymous", ClientIp: clientIp, UserAgent: userAgent, RequestId: requestId);
}

/// <summary>
/// One event to append to a project's audit trail. The writer gives it an id, a sequence number and its hash.
/// JSON fields (<see cref="Details"/>, <see cref="BeforeState"/>, <see cref="AfterState"/>) must already be
/// sanitized (no secrets, no masked values) and are stored and hashed exactly as given.
/// </summary>
public sealed record AuditEventDraft
{
    /// <summary>
    /// The chain of organization-level events that belong to no project (sign-ins, sign-outs, lockouts; see
    /// <see cref="SignInAudit"/>). Only "auth." events may use it, so a forgotten project id still fails loudly.
    /// </summary>
    public static readonly Guid OrganizationChain = Guid.Empty;

    /// <summary>The project whose chain the event joins, or <see cref="OrganizationChain"/> for "auth." events.</summary>
    public required Guid ProjectId { get; init; }
    /// <summary>Dotted lower-case name such as "query.executed", "auth.sign_in_failed", "member.role_changed".</summary>
    public required string EventType { get; init; }
    public required AuditActor Actor { get; init; }
    public string? ResourceType { get; init; }
    public string? ResourceId { get; init; }
    public string? Action { get; init; }
    /// <summary>JSON: sanitized request parameters and a response summary.</summary>
    public string? Details { get; init; }
    /// <summary>JSON: the value before a portal change (role, mask, permission, module, key...).</summary>
    public string? BeforeState { get; init; }
    /// <summary>JSON: the value after a portal change.</summary>
    public string? AfterState { get; init; }
    /// <summary>The natural-language prompt an agent or analyst gave.</summary>
    public string? Prompt { get; init; }
    public string? SqlText { get; init; }
    public IReadOnlyList<string>? TablesAccessed { get; init; }
    public bool Success { get; init; } = true;
    public string? ErrorMessage { get; init; }
    public long? DurationMs { get; init; }
    public long? RowsReturned { get; init; }
    public AuditSecurityLevel SecurityLevel { get; init; } = AuditSecurityLevel.Normal;
    public IReadOnlyList<string>? DataClassifications { get; init; }
    /// <summary>Defaults to the writer's clock when the event is appended.</summary>
    public DateTimeOffset? OccurredAt { get; init; }
}

/// <summary>Proof that an event is durably in the trail.</summary>
public readonly record struct AuditReceipt(Guid Id, Guid ProjectId, long Seq, string Hash);

/// <summary>
/// A stored audit event (table audit_events). Rows are only ever inserted by <see cref="AuditWriter"/>; the hash chain
/// makes any later edit visible to <see cref="AuditVerifier"/>. Hashes are 32 raw SHA-256 bytes.
/// </summary>
public sealed class AuditEvent
{
    public Guid ProjectId { get; set; }
    public long Seq { get; set; }
    public Guid Id { get; set; }
    public byte[] PrevHash { get; set; } = [];
    public byte[] Hash { get; set; } = [];
    public DateTimeOffset OccurredAt { get; set; }
    public string EventType { get; set; } = "";
    public string? ResourceType { get; set; }
    public string? ResourceId { get; set; }
    public string? Action { get; set; }
    public string ActorType { get; set; } = "";
    public string? ActorId { get; set; }
    public string? ActorEmail { get; set; }
    public string? ActorRole { get; set; }
    public string? SessionId { get; set; }
    public string? Details { get; set; }
    public string? BeforeState { get; set; }
    public string? AfterState { get; set; }
    public string? Prompt { get; set; }
    public string? SqlText { get; set; }
    /// <summary>JSON array of table names.</summary>
    public string? TablesAccessed { get; set; }
    public bool Success { get; set; }
    public string? ErrorMessage { get; set; }
    public long? DurationMs { get; set; }
    public long? RowsReturned { get; set; }
    /// <summary>"normal", "warning" or "alert".</summary>
    public string SecurityLevel { get; set; } = "normal";
    /// <summary>JSON array of classification labels.</summary>
    public string? DataClassifications { get; set; }
    public string? ClientIp { get; set; }
    public string? UserAgent { get; set; }
    public string? RequestId { get; set; }
}

/// <summary>The last link of a project's chain (table audit_chain_heads).</summary>
public sealed class AuditChainHead
{
    public Guid ProjectId { get; set; }
    public long Seq { get; set; }
    public byte[] Hash { get; set; } = [];
    public DateTimeOffset UpdatedAt { get; set; }
}
