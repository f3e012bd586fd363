namespace Portal.Domain.Security.Alerts;

public static class AlertTypes
{
    public const string Injection = "injection";
    public const string RateLimit = "rate_limit";
    public const string Unauthorized = "unauthorized";
    public const string Anomaly = "anomaly";
    public const string BruteForce = "brute_force";
    public const string PrivilegeChange = "privilege_change";
    public const string Exfiltration = "exfiltration";

    public static readonly IReadOnlyList<string> All = [Injection, RateLimit, Unauthorized, Anomaly, BruteForce, PrivilegeChange, Exfiltration];
}

public static class AlertSeverities
{
    public const string Info = "info";
    public const string Warning = "warning";
    public const string Critical = "critical";

    public static readonly IReadOnlyList<string> All = [Info, Warning, Critical];

    /// <summary>Sort rank: critical first.</summary>
    public static int Rank(string severity) => severity switch { Critical => 0, Warning => 1, _ => 2 };
}

public static class AlertStatuses
{
    public const string Open = "open";
    public const string Acknowledged = "acknowledged";
    public const string Resolved = "resolved";
    public const string Dismissed = "dismissed";

    public static readonly IReadOnlyList<string> All = [Open, Acknowledged, Resolved, Dismissed];
    public static bool IsActive(string status) => status is Open or Acknowledged;
}

/// <summary>
/// A security alert (table security_alerts). Findings with the same <see cref="Fingerprint"/> (type + rule + subject)
/// within the de-duplication window update one alert — <see cref="Occurrences"/>, <see cref="FirstSeenAt"/>,
/// <see cref="LastSeenAt"/> and the related audit event ids — instead of adding rows to the queue.
/// </summary>
public sealed class SecurityAlert
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    public required string Type { get; set; }
    /// <summary>The detector rule that raised it, e.g. "injection_blocked", "brute_force", "volume_spike".</summary>
    public required string Rule { get; set; }
    public required string Severity { get; set; }
    /// <summary>"gateway" (real time) or "scan" (anomaly scan).</summary>
    public required string Source { get; set; }
    public required string Fingerprint { get; set; }
    public required string Title { get; set; }
    public required string Description { get; set; }
    /// <summary>"api_key", "user" or "ip".</summary>
    public required string SubjectType { get; set; }
    public required string SubjectId { get; set; }
    public string? SubjectLabel { get; set; }
    public Guid? KeyId { get; set; }
    public Guid? UserId { get; set; }
    /// <summary>JSON object: the rule's explanation, thresholds, baseline and observed values, matched patterns.</summary>
    public required string EvidenceJson { get; set; }
    /// <summary>JSON array of related audit event ids (capped at <see cref="AlertService.MaxEventIds"/>).</summary>
    public required string AuditEventIds { get; set; }
    public int Occurrences { get; set; } = 1;
    public DateTimeOffset FirstSeenAt { get; set; }
    public DateTimeOffset LastSeenAt { get; set; }
    public string Status { get; set; } = AlertStatuses.Open;
    public Guid? AssigneeId { get; set; }
    public Guid? AcknowledgedBy { get; set; }
    public DateTimeOffset? AcknowledgedAt { get; set; }
    public string? ResolutionNote { get; set; }
    public Guid? ResolvedBy { get; set; }
    public DateTimeOffset? ResolvedAt { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
}

/// <summary>Every triage action on an alert, with before/after, for the alert's timeline and the audit trail.</summary>
public sealed class SecurityAlertChange
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    public Guid AlertId { get; set; }
    public required string Action { get; set; }
    public string? Before { get; set; }
    public string? After { get; set; }
    public string? Note { get; set; }
    public Guid ChangedBy { get; set; }
    public DateTimeOffset ChangedAt { get; set; }
}

/// <summary>"Dismissed as a false positive: suppress similar alerts (same type, rule and subject) until ExpiresAt."</summary>
public sealed class SecuritySuppression
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    public required string Type { get; set; }
    public required string Rule { get; set; }
    public required string SubjectType { get; set; }
    public required string SubjectId { get; set; }
    public required string Reason { get; set; }
    public Guid? AlertId { get; set; }
    public Guid CreatedBy { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset ExpiresAt { get; set; }
}

/// <summary>A project's thresholds for one detector rule (defaults apply when no row exists).</summary>
public sealed class DetectorSetting
{
    public Guid ProjectId { get; set; }
    public required string Rule { get; set; }
    public bool Enabled { get; set; } = true;
    public required string ThresholdsJson { get; set; }
    public Guid UpdatedBy { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
}

/// <summary>How far the anomaly scan has read one audit chain.</summary>
public sealed class ScanWatermark
{
    public Guid ChainId { get; set; }
    public long LastSeq { get; set; }
    public DateTimeOffset LastScanAt { get; set; }
    public long EventsExamined { get; set; }
}

/// <summary>Events and rows of one user or key in one UTC hour (the scan's learned baseline).</summary>
public sealed class ActivityProfile
{
    public Guid ProjectId { get; set; }
    public required string ActorId { get; set; }
    /// <summary>Days since 1970-01-01 (UTC).</summary>
    public int Day { get; set; }
    public int Hour { get; set; }
    public required string ActorType { get; set; }
    public long Events { get; set; }
    public long Rows { get; set; }
}

/// <summary>An IP address or user agent a user or key has been seen from.</summary>
public sealed class KnownSource
{
    public Guid ProjectId { get; set; }
    public required string ActorId { get; set; }
    /// <summary>"ip" or "ua".</summary>
    public required string Kind { get; set; }
    public required string Value { get; set; }
    public DateTimeOffset FirstSeenAt { get; set; }
}
