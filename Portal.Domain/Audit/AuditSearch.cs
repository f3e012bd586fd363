using Microsoft.EntityFrameworkCore;
using Portal.Domain.Persistence;

namespace Portal.Domain.Audit;

/// <summary>Where the previous page ended: the last row's (occurred_at, seq). Pages go newest first.</summary>
public readonly record struct AuditCursor(DateTimeOffset OccurredAt, long Seq);

/// <summary>One page of events, newest first; <see cref="Next"/> is null when there are no more.</summary>
public sealed record AuditPage(IReadOnlyList<AuditEvent> Events, AuditCursor? Next);

/// <summary>
/// Keyset search over one project's audit trail for the Audit Log page: the same filters as the export (so an export
/// holds exactly what the page showed), plus a session filter. Keyset rather than offset paging, so "Load more" stays
/// fast deep into millions of events and never shows a row twice or skips one while new events arrive. The
/// (project_id, occurred_at) and (project_id, event_type, occurred_at) indexes of 0002_audit.sql serve the ordering.
/// Callers authorize first (audit.read in the project); the organization chain (<see cref="Guid.Empty"/>) is for
/// organization admins only.
/// </summary>
public sealed class AuditSearch(IDbContextFactory<PortalDbContext> dbFactory)
{
    public const int MaxPageSize = 200;

    public async Task<AuditPage> SearchAsync(Guid projectId, AuditExportFilter filter, AuditCursor? after = null, int pageSize = 50,
        string? sessionId = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        if (pageSize is < 1 or > MaxPageSize)
            throw DomainException.Invalid(nameof(pageSize), $"A page holds 1 to {MaxPageSize} events.");
        if (filter.From is { } f && filter.To is { } t && t <= f)
            throw DomainException.Invalid(nameof(AuditExportFilter.To), "The end of the date range must be after its start.");
        if (filter.Text is { Length: > 200 })
            throw DomainException.Invalid(nameof(AuditExportFilter.Text), "Search text can be at most 200 characters.");

        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var q = db.AuditEvents.AsNoTracking().Where(e => e.ProjectId == projectId);
        if (filter.From is { } from) q = q.Where(e => e.OccurredAt >= from);
        if (filter.To is { } to) q = q.Where(e => e.OccurredAt < to);
        if (filter.EventTypes is { Count: > 0 } types)
        {
            var list = types.ToList();
            q = q.Where(e => list.Contains(e.EventType));
        }
        if (!string.IsNullOrWhiteSpace(filter.Actor))
        {
            var actor = filter.Actor.Trim();
            q = q.Where(e => e.ActorId == actor || e.ActorEmail == actor);
        }
        if (filter.SecurityLevel is { } level)
        {
            var stored = AuditNormalizer.Level(level);
            q = q.Where(e => e.SecurityLevel == stored);
        }
        if (!string.IsNullOrWhiteSpace(sessionId))
        {
            var session = sessionId.Trim();
            q = q.Where(e => e.SessionId == session);
        }
        if (!string.IsNullOrWhiteSpace(filter.Text))
        {
            // lower() on both sides gives the same case-insensitive match on both providers; EF escapes the pattern.
            var text = filter.Text.Trim().ToLowerInvariant();
            q = q.Where(e => e.EventType.ToLower().Contains(text)
                || (e.ResourceType != null && e.ResourceType.ToLower().Contains(text))
                || (e.ResourceId != null && e.ResourceId.ToLower().Contains(text))
                || (e.Action != null && e.Action.ToLower().Contains(text))
                || (e.ActorId != null && e.ActorId.ToLower().Contains(text))
                || (e.ActorEmail != null && e.ActorEmail.ToLower().Contains(text))
                || (e.Prompt != null && e.Prompt.ToLower().Contains(text))
                || (e.SqlText != null && e.SqlText.ToLower().Contains(text))
                || (e.Details != null && e.Details.ToLower().Contains(text))
                || (e.BeforeState != null && e.BeforeState.ToLower().Contains(text))
                || (e.AfterState != null && e.AfterState.ToLower().Contains(text))
                || (e.ErrorMessage != null && e.ErrorMessage.ToLower().Contains(text)));
        }
        if (after is { } c)
        {
            var at = c.OccurredAt;
            var seq = c.Seq;
            q = q.Where(e => e.OccurredAt < at || (e.OccurredAt == at && e.Seq < seq));
        }
        // One extra row tells whether another page exists without a COUNT over the whole trail.
        var rows = await q.OrderByDescending(e => e.OccurredAt).ThenByDescending(e => e.Seq).Take(pageSize + 1).ToListAsync(ct);
        AuditCursor? next = null;
        if (rows.Count > pageSize)
        {
            rows.RemoveAt(rows.Count - 1);
            next = new AuditCursor(rows[^1].OccurredAt, rows[^1].Seq);
        }
        return new AuditPage(rows, next);
    }

    /// <summary>The event types present in a project's trail, for the filter's choices.</summary>
    public async Task<IReadOnlyList<string>> EventTypesAsync(Guid projectId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        return await db.AuditEvents.AsNoTracking().Where(e => e.ProjectId == projectId)
            .Select(e => e.EventType).Distinct().OrderBy(t => t).ToListAsync(ct);
    }
}
