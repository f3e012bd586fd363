using Portal.Domain.Audit;
using Portal.Domain.Persistence;

namespace Portal.Domain.Integrations;

/// <summary>
/// Something that happened and must reach the outside world (webhooks, Slack/Teams, SIEM notices): written in the
/// same transaction as the change that caused it, so a committed change always has its message and a rolled-back one
/// never does. The integrations dispatcher reads unprocessed messages in id (time) order.
/// </summary>
public sealed class OutboxMessage
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    /// <summary>A webhook event type such as <c>alert.created</c>, <c>suggestion.approved</c>, <c>report.ready</c>.</summary>
    public required string EventType { get; set; }
    public string? SubjectType { get; set; }
    public string? SubjectId { get; set; }
    public required string PayloadJson { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? ProcessedAt { get; set; }
}

/// <summary>Well-known outbox event types (webhook endpoints filter on these).</summary>
public static class OutboxEvents
{
    public const string AlertCreated = "alert.created";
    public const string AlertUpdated = "alert.updated";
    public const string SuggestionCreated = "suggestion.created";
    public const string SuggestionApproved = "suggestion.approved";
    public const string SuggestionRejected = "suggestion.rejected";
    public const string ReportReady = "report.ready";
    public const string QueryExecuted = "query_executed";
}

public static class Outbox
{
    /// <summary>
    /// Adds a message to <paramref name="db"/>'s change tracker; it is written by the caller's SaveChanges, inside the
    /// caller's transaction. The payload is serialized as the audit trail serializes details (callers pass no secrets).
    /// </summary>
    public static OutboxMessage Add(PortalDbContext db, Guid projectId, string eventType, object payload, DateTimeOffset now,
        string? subjectType = null, string? subjectId = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(eventType);
        var message = new OutboxMessage
        {
            ProjectId = projectId, EventType = eventType, SubjectType = subjectType, SubjectId = subjectId,
            PayloadJson = PortalAudit.Json(payload) ?? "{}", CreatedAt = now,
        };
        db.Add(message);
        return message;
    }
}
