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
/// fast deep into millions of events and never shows a row twice or skips one while new events arrive. Each filter
/// has an index that yields its events newest-first ((project_id, occurred_at), event type and actor id in
/// 0002_audit.sql; session, actor e-mail and non-normal levels in 0011), so a page reads about as many index entries
/// as it shows. Free text has no index: it scans newest-first until the page is full (fast for common words, a full
/// scan of the project's trail for a word that never occurs).
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
        if (db.Database.ProviderName == PostgresProvider)
        {
            // Over millions of rows the planner's cost estimate for a filtered scan crosses the JIT threshold, and
            // compiling the plan (30+ ms) costs more than the page itself, which stops after a few thousand rows.
            // For the same reason no parallel workers: a page walks one index newest-first and stops at 51 rows, but a
            // Gather Merge lets every worker run ahead on its own share, so free text over 10 M events read ~57,000
            // rows instead of ~2,500 (300 ms instead of 13 ms, EXPLAIN ANALYZE in BENCHMARKS.md section 3).
            await db.Database.OpenConnectionAsync(ct);
            await db.Database.ExecuteSqlRawAsync("SET jit = off; SET max_parallel_workers_per_gather = 0", ct);
        }
        var q = db.AuditEvents.AsNoTracking().Where(e => e.ProjectId == projectId);
        if (filter.From is { } from) q = q.Where(e => e.OccurredAt >= from);
        if (filter.To is { } to) q = q.Where(e => e.OccurredAt < to);
        if (filter.SecurityLevel is { } level)
        {
            var stored = AuditNormalizer.Level(level);
            q = q.Where(e => e.SecurityLevel == stored);
            // Redundant for the result; it lets both engines use the partial index on non-normal levels (0011).
            if (level != AuditSecurityLevel.Normal) q = q.Where(e => e.SecurityLevel != NormalLevel);
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
            // The first term is implied by the second; it gives the index a range to seek to, so a deep page
            // starts at the cursor instead of walking every newer row.
            q = q.Where(e => e.OccurredAt <= at && (e.OccurredAt < at || e.Seq < seq));
        }

        // Filters that are an OR (several event types; actor id or e-mail) run as one ordered, limited query per
        // branch, each walking its own index newest-first, merged here: a single query with IN/OR would make both
        // engines collect every match and sort it, which deep into millions of events costs seconds.
        var take = pageSize + 1;
        List<string?> typeBranches = filter.EventTypes is { Count: > 0 } types ? types.Distinct().Select(t => (string?)t).ToList() : [null];
        var actor = string.IsNullOrWhiteSpace(filter.Actor) ? null : filter.Actor.Trim();
        List<AuditEvent> rows;
        if (typeBranches.Count * (actor is null ? 1 : 2) > MaxBranches)
        {
            var list = typeBranches.Select(t => t!).ToList();
            var single = q.Where(e => list.Contains(e.EventType));
            if (actor is not null) single = single.Where(e => e.ActorId == actor || e.ActorEmail == actor);
            rows = await Page(single).ToListAsync(ct);
        }
        else
        {
            var merged = new Dictionary<long, AuditEvent>();
            foreach (var type in typeBranches)
            {
                var byType = type is null ? q : q.Where(e => e.EventType == type);
                foreach (var branch in actor is null ? [byType] : new[] { byType.Where(e => e.ActorId == actor), byType.Where(e => e.ActorEmail == actor) })
                    foreach (var e in await Page(branch).ToListAsync(ct))
                        merged.TryAdd(e.Seq, e);
            }
            rows = merged.Values.OrderByDescending(e => e.OccurredAt).ThenByDescending(e => e.Seq).Take(take).ToList();
        }
        // One extra row tells whether another page exists without a COUNT over the whole trail.
        AuditCursor? next = null;
        if (rows.Count > pageSize)
        {
            rows.RemoveAt(rows.Count - 1);
            next = new AuditCursor(rows[^1].OccurredAt, rows[^1].Seq);
        }
        return new AuditPage(rows, next);

        IQueryable<AuditEvent> Page(IQueryable<AuditEvent> query) =>
            query.OrderByDescending(e => e.OccurredAt).ThenByDescending(e => e.Seq).Take(take);
    }

    private const int MaxBranches = 16;
    private const string PostgresProvider = "Npgsql.EntityFrameworkCore.PostgreSQL";
    private const string NormalLevel = "normal";

    /// <summary>One event of the project by its id (a link from a query run or an alert); another project's event is null, like a missing one.</summary>
    public async Task<AuditEvent?> FindAsync(Guid projectId, Guid eventId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        return await db.AuditEvents.AsNoTracking().FirstOrDefaultAsync(e => e.Id == eventId && e.ProjectId == projectId, ct);
    }

    /// <summary>The event types present in a project's trail, for the filter's choices.</summary>
    public async Task<IReadOnlyList<string>> EventTypesAsync(Guid projectId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        return await db.AuditEvents.AsNoTracking().Where(e => e.ProjectId == projectId)
            .Select(e => e.EventType).Distinct().OrderBy(t => t).ToListAsync(ct);
    }
}
