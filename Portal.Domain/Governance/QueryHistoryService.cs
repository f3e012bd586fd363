using Microsoft.EntityFrameworkCore;
using Portal.Domain.Audit;
using Portal.Domain.Gateway;
using Portal.Domain.Gateway.Catalog;
using Portal.Domain.Persistence;

namespace Portal.Domain.Governance;

public sealed record QueryVersionRow(
    int Version, Guid DatasourceId, string Name, string Description, string Sql, IReadOnlyList<QueryParameter> Parameters,
    IReadOnlyList<string> Classifications, int RowCap, int TimeoutMs, string Status, string Change, string? Reason,
    Guid? SuggestionId, int? RestoredFromVersion, Guid CreatedBy, string CreatedByName, DateTimeOffset CreatedAt);

public sealed record ConsumerRow(Guid Id, string Kind, string Name, string? ExternalId, string? Owner, DateTimeOffset CreatedAt);

public sealed record ConsumerRequest(string? Kind, string? Name, string? ExternalId = null, string? Owner = null);

internal static class QueryVersions
{
    public static QueryVersion Snapshot(ApprovedQuery q, string change, string? reason, Guid? suggestionId, int? restoredFrom, Guid actor, DateTimeOffset now) => new()
    {
        ProjectId = q.ProjectId, QueryId = q.Id, Version = q.Version, DatasourceId = q.DatasourceId, Name = q.Name, Description = q.Description,
        Sql = q.Sql, ParametersJson = q.ParametersJson, ClassificationsJson = q.ClassificationsJson, RowCap = q.RowCap, TimeoutMs = q.TimeoutMs,
        Status = q.Status, Change = change, Reason = string.IsNullOrWhiteSpace(reason) ? null : reason.Trim()[..Math.Min(reason.Trim().Length, GovernanceDefaults.MaxReason)],
        SuggestionId = suggestionId, RestoredFromVersion = restoredFrom, CreatedBy = actor, CreatedAt = now,
    };
}

/// <summary>
/// The version history of approved queries (every create, change, archive, restore and rollback is a version, written
/// with the change) and their lineage: the consumers that depend on a query. Scoped by project id.
/// </summary>
public sealed class QueryHistoryService(IDbContextFactory<PortalDbContext> dbFactory, ApprovedQueryService queries, PortalAudit audit, TimeProvider clock)
{
    public async Task<Page<QueryVersionRow>> VersionsAsync(Guid projectId, Guid queryId, int skip, int take, CancellationToken ct = default)
    {
        take = Math.Clamp(take, 1, 200);
        skip = Math.Max(0, skip);
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        await ApprovedQueryService.FindAsync(db, projectId, queryId, ct, tracking: false);
        var q = db.Set<QueryVersion>().AsNoTracking().Where(v => v.ProjectId == projectId && v.QueryId == queryId);
        var total = await q.CountAsync(ct);
        var items = await q.OrderByDescending(v => v.Version).Skip(skip).Take(take).ToListAsync(ct);
        return new Page<QueryVersionRow>(await ToRowsAsync(db, items, ct), total, skip, take);
    }

    public async Task<QueryVersionRow> VersionAsync(Guid projectId, Guid queryId, int version, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var v = await db.Set<QueryVersion>().AsNoTracking().FirstOrDefaultAsync(v => v.ProjectId == projectId && v.QueryId == queryId && v.Version == version, ct)
            ?? throw new DomainException(ErrorKind.NotFound, $"Version {version} of this query was not found.", "version");
        return (await ToRowsAsync(db, [v], ct)).Single();
    }

    /// <summary>Creates a new version equal to <paramref name="version"/> (the gateway runs it from now on). Consumers must be confirmed.</summary>
    public async Task<ApprovedQueryRow> RollbackAsync(Guid projectId, Guid queryId, int version, string? reason, Guid actor, bool confirmConsumers = false, CancellationToken ct = default)
    {
        var why = reason?.Trim();
        if (string.IsNullOrEmpty(why)) throw DomainException.Invalid("reason", "Say why you roll back; it is kept in the history.");
        if (why.Length > GovernanceDefaults.MaxReason) throw DomainException.Invalid("reason", $"At most {GovernanceDefaults.MaxReason} characters.");
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var query = await ApprovedQueryService.FindAsync(db, projectId, queryId, ct, tracking: false);
        var old = await db.Set<QueryVersion>().AsNoTracking().FirstOrDefaultAsync(v => v.ProjectId == projectId && v.QueryId == queryId && v.Version == version, ct)
            ?? throw new DomainException(ErrorKind.NotFound, $"Version {version} of this query was not found.", "version");
        if (old.Version == query.Version) throw DomainException.Conflict($"Version {version} is the current version already.", "version");
        var consumers = await ConsumersAsync(db, projectId, queryId, ct);
        if (consumers.Count > 0 && !confirmConsumers)
            throw DomainException.Conflict($"This query is used by {Describe(consumers)}. Confirm that they may change: {string.Join(", ", consumers.Select(c => c.Name))}.", "confirmConsumers");
        var request = new ApprovedQueryRequest(old.DatasourceId, old.Name, old.Description, old.Sql, CatalogJson.ReadParameters(old.ParametersJson),
            CatalogJson.ReadStrings(old.ClassificationsJson), old.RowCap, old.TimeoutMs);
        var q = await queries.StageUpdateAsync(db, projectId, queryId, request, actor, why, null, QueryChanges.RolledBack, old.Version, ct);
        await ApprovedQueryService.SaveVersionAsync(db, q, q.Version - 1, ct);
        queries.Committed(projectId);
        await audit.RecordAsync(new AuditEventDraft
        {
            ProjectId = projectId, EventType = "approved_query.rolled_back", Actor = await PortalAudit.UserAsync(db, projectId, actor, ct),
            ResourceType = "approved_query", ResourceId = q.Id.ToString(), Action = "rollback", SqlText = q.Sql,
            BeforeState = PortalAudit.Json(new { version = query.Version }), AfterState = PortalAudit.Json(new { version = q.Version, restoredFrom = old.Version }),
            Details = PortalAudit.Json(new { queryId = q.Id, version = q.Version, restoredFrom = old.Version, reason = why, consumers = consumers.Select(c => c.Name) }),
            OccurredAt = q.UpdatedAt,
        }, ct);
        return ApprovedQueryService.ToRow(q);
    }

    // ---------------------------------------------------------------- lineage

    public async Task<IReadOnlyList<ConsumerRow>> ListConsumersAsync(Guid projectId, Guid queryId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        await ApprovedQueryService.FindAsync(db, projectId, queryId, ct, tracking: false);
        return await ConsumersAsync(db, projectId, queryId, ct);
    }

    public async Task<ConsumerRow> AddConsumerAsync(Guid projectId, Guid queryId, ConsumerRequest request, Guid actor, CancellationToken ct = default)
    {
        var kind = request.Kind?.Trim().ToLowerInvariant();
        if (kind is null || !ConsumerKinds.All.Contains(kind)) throw DomainException.Invalid("kind", $"Kind is one of {string.Join(", ", ConsumerKinds.All)}.");
        var name = request.Name?.Trim();
        if (string.IsNullOrEmpty(name)) throw DomainException.Invalid("name", "Name the dashboard, report, export or API that uses the query.");
        if (name.Length > 200) throw DomainException.Invalid("name", "At most 200 characters.");
        var external = Optional(request.ExternalId, "externalId");
        var owner = Optional(request.Owner, "owner");
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        await ApprovedQueryService.FindAsync(db, projectId, queryId, ct, tracking: false);
        var c = new QueryConsumer { ProjectId = projectId, QueryId = queryId, Kind = kind, Name = name, ExternalId = external, Owner = owner, CreatedBy = actor, CreatedAt = clock.GetUtcNow() };
        db.Add(c);
        await db.SaveChangesAsync(ct);
        var row = ToRow(c);
        await audit.RecordAsync(new AuditEventDraft
        {
            ProjectId = projectId, EventType = "approved_query.consumer_added", Actor = await PortalAudit.UserAsync(db, projectId, actor, ct),
            ResourceType = "approved_query", ResourceId = queryId.ToString(), Action = "add_consumer", AfterState = PortalAudit.Json(row), OccurredAt = c.CreatedAt,
        }, ct);
        return row;
    }

    public async Task RemoveConsumerAsync(Guid projectId, Guid consumerId, Guid actor, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var c = await db.Set<QueryConsumer>().FirstOrDefaultAsync(x => x.Id == consumerId && x.ProjectId == projectId, ct) ?? throw DomainException.NotFound("Consumer");
        db.Remove(c);
        await db.SaveChangesAsync(ct);
        await audit.RecordAsync(new AuditEventDraft
        {
            ProjectId = projectId, EventType = "approved_query.consumer_removed", Actor = await PortalAudit.UserAsync(db, projectId, actor, ct),
            ResourceType = "approved_query", ResourceId = c.QueryId.ToString(), Action = "remove_consumer", BeforeState = PortalAudit.Json(ToRow(c)), OccurredAt = clock.GetUtcNow(),
        }, ct);
    }

    internal static async Task<IReadOnlyList<ConsumerRow>> ConsumersAsync(PortalDbContext db, Guid projectId, Guid queryId, CancellationToken ct) =>
        (await db.Set<QueryConsumer>().AsNoTracking().Where(c => c.ProjectId == projectId && c.QueryId == queryId).OrderBy(c => c.Kind).ThenBy(c => c.Name).ToListAsync(ct))
        .Select(ToRow).ToList();

    /// <summary>"3 dashboards, 1 report" — the impact panel's words.</summary>
    public static string Describe(IReadOnlyList<ConsumerRow> consumers) => consumers.Count == 0 ? "nothing registered" :
        string.Join(", ", consumers.GroupBy(c => c.Kind).Select(g => $"{g.Count()} {(g.Key == ConsumerKinds.Api ? "API" : g.Key)}{(g.Count() == 1 ? "" : g.Key == ConsumerKinds.Api ? "s" : "s")}"));

    private static string? Optional(string? value, string field)
    {
        var v = value?.Trim();
        if (string.IsNullOrEmpty(v)) return null;
        if (v.Length > 200) throw DomainException.Invalid(field, "At most 200 characters.");
        return v;
    }

    private static ConsumerRow ToRow(QueryConsumer c) => new(c.Id, c.Kind, c.Name, c.ExternalId, c.Owner, c.CreatedAt);

    private static async Task<IReadOnlyList<QueryVersionRow>> ToRowsAsync(PortalDbContext db, List<QueryVersion> items, CancellationToken ct)
    {
        var ids = items.Select(v => v.CreatedBy).Distinct().ToList();
        var names = await db.Users.AsNoTracking().Where(u => ids.Contains(u.Id)).ToDictionaryAsync(u => u.Id, u => u.Email ?? "", ct);
        return items.Select(v => new QueryVersionRow(v.Version, v.DatasourceId, v.Name, v.Description, v.Sql, CatalogJson.ReadParameters(v.ParametersJson),
            CatalogJson.ReadStrings(v.ClassificationsJson), v.RowCap, v.TimeoutMs, v.Status, v.Change, v.Reason, v.SuggestionId, v.RestoredFromVersion,
            v.CreatedBy, names.GetValueOrDefault(v.CreatedBy, v.CreatedBy == Guid.Empty ? "portal" : "(removed user)"), v.CreatedAt)).ToList();
    }
}
