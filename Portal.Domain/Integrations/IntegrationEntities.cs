namespace Portal.Domain.Integrations;

/// <summary>Where an endpoint sends: a signed Standard Webhooks POST, or a Slack / Microsoft Teams incoming webhook.</summary>
public static class EndpointKinds
{
    public const string Webhook = "webhook";
    public const string Slack = "slack";
    public const string Teams = "teams";
    public static readonly IReadOnlyList<string> All = [Webhook, Slack, Teams];
}

/// <summary>A webhook or chat channel of one project (table webhook_endpoints).</summary>
public sealed class WebhookEndpoint
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    public string Name { get; set; } = "";
    public string Kind { get; set; } = EndpointKinds.Webhook;
    /// <summary>Shown to users. For Slack/Teams the real URL is a secret and lives only in <see cref="SecretProtected"/>.</summary>
    public string Url { get; set; } = "";
    /// <summary>Comma-separated event types (<see cref="OutboxEvents"/>).</summary>
    public string EventTypes { get; set; } = "";
    /// <summary>Webhook: the whsec_ signing secret; Slack/Teams: the incoming-webhook URL. Encrypted.</summary>
    public string SecretProtected { get; set; } = "";
    /// <summary>The secret before a rotation, still used to sign until <see cref="PreviousSecretUntil"/>.</summary>
    public string? PreviousSecretProtected { get; set; }
    public DateTimeOffset? PreviousSecretUntil { get; set; }
    public bool Enabled { get; set; } = true;
    public string? DisabledReason { get; set; }
    /// <summary>The last audit seq scanned for query_executed deliveries.</summary>
    public long QueryCursor { get; set; }
    public Guid CreatedBy { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
}

public static class DeliveryStatus
{
    public const string Pending = "pending";
    public const string Retrying = "retrying";
    public const string Delivered = "delivered";
    public const string Failed = "failed";
}

/// <summary>One message to one endpoint (table webhook_deliveries). Its id is the webhook-id header.</summary>
public sealed class WebhookDelivery
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    public Guid EndpointId { get; set; }
    public Guid? OutboxMessageId { get; set; }
    public string EventType { get; set; } = "";
    public string Payload { get; set; } = "";
    public string Status { get; set; } = DeliveryStatus.Pending;
    public int Attempts { get; set; }
    public DateTimeOffset NextAttemptAt { get; set; }
    public DateTimeOffset? LastAttemptAt { get; set; }
    public int? ResponseCode { get; set; }
    public string? ResponseExcerpt { get; set; }
    public string? LeaseOwner { get; set; }
    public DateTimeOffset? LeaseUntil { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? DeliveredAt { get; set; }
}

public static class SiemKinds
{
    public const string SplunkHec = "splunk_hec";
    public const string Datadog = "datadog";
    public const string Syslog = "syslog";
    public static readonly IReadOnlyList<string> All = [SplunkHec, Datadog, Syslog];
}

public static class SiemFormats
{
    public const string Json = "json";
    public const string Cef = "cef";
    public const string Ocsf = "ocsf";
    public static readonly IReadOnlyList<string> All = [Json, Cef, Ocsf];
}

public static class SiemStatus
{
    public const string Active = "active";
    public const string Retrying = "retrying";
    public const string Paused = "paused";
    /// <summary>The receiver refused a batch for good (a 4xx other than 408/429): nothing more is sent until resumed.</summary>
    public const string Stopped = "stopped";
}

/// <summary>A SIEM export of one project's audit trail (table siem_integrations) with its cursor.</summary>
public sealed class SiemIntegration
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    public string Name { get; set; } = "";
    public string Kind { get; set; } = SiemKinds.SplunkHec;
    public string Format { get; set; } = SiemFormats.Json;
    /// <summary>An http(s) URL, or host:port for syslog.</summary>
    public string Endpoint { get; set; } = "";
    public bool UseTls { get; set; }
    /// <summary>HEC token or Datadog API key, encrypted; null for syslog.</summary>
    public string? SecretProtected { get; set; }
    /// <summary>Comma-separated audit event types or prefixes ending in '.'; null exports everything.</summary>
    public string? EventTypes { get; set; }
    public int BatchSize { get; set; } = 500;
    public string Status { get; set; } = SiemStatus.Active;
    /// <summary>The last audit seq the receiver accepted.</summary>
    public long CursorSeq { get; set; }
    public int Attempts { get; set; }
    public DateTimeOffset NextAttemptAt { get; set; }
    public string? LeaseOwner { get; set; }
    public DateTimeOffset? LeaseUntil { get; set; }
    public DateTimeOffset? LastSuccessAt { get; set; }
    public string? LastError { get; set; }
    public DateTimeOffset? LastErrorAt { get; set; }
    public long ExportedCount { get; set; }
    public Guid CreatedBy { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}

/// <summary>The transactional record of an integration, webhook or retention change (table integration_changes).</summary>
public sealed class IntegrationChange
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    public string SubjectType { get; set; } = "";
    public string SubjectId { get; set; } = "";
    public string Action { get; set; } = "";
    public string? Before { get; set; }
    public string? After { get; set; }
    public Guid ChangedBy { get; set; }
    public DateTimeOffset ChangedAt { get; set; }
}
