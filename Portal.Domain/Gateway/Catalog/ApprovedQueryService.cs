using Microsoft.EntityFrameworkCore;
using Npgsql;
using Portal.Domain.Audit;
using Portal.Domain.Persistence;

namespace Portal.Domain.Gateway.Catalog;

public sealed record ApprovedQueryRequest(
    Guid DatasourceId,
    string? Name,
    string? Description,
    string? Sql,
    IReadOnlyList<QueryParameter>? Parameters = null,
    IReadOnlyList<string>? Classifications = null,
    int RowCap = ApprovedQueryService.DefaultRowCap,
    int TimeoutMs = ApprovedQueryService.DefaultTimeoutMs);

public sealed record ApprovedQueryRow(
    Guid Id, Guid DatasourceId, string Name, string Description, string Sql, IReadOnlyList<QueryParameter> Parameters,
    IReadOnlyList<string> Classifications, int RowCap, int TimeoutMs, int Version, string Status,
    Guid CreatedBy, DateTimeOffset CreatedAt, Guid UpdatedBy, DateTimeOffset UpdatedAt)
{
    public TimeSpan Timeout => TimeSpan.FromMilliseconds(TimeoutMs);
}

/// <summary>
/// The catalog of approved queries. Before a query is saved its datasource's engine proves that the SQL is one
/// read-only statement and that its @placeholders match the declared parameters; nothing is stored otherwise.
/// Every method is scoped by project id; another project's query or datasource answers NotFound. Direct changes
/// (create, edit, archive, restore) are audited here with before/after; an approval or a rollback stages the change
/// and audits it in its own words (see Governance).
/// </summary>
public sealed class ApprovedQueryService(IDbContextFactory<PortalDbContext> dbFactory, DatasourceService datasources, TimeProvider clock, PortalAudit audit,
    GatewayLookupCache? lookups = null)
{
    public const int DefaultRowCap = 1000, MaxRowCap = 10_000;
    public const int DefaultTimeoutMs = 30_000, MinTimeoutMs = 100, MaxTimeoutMs = 120_000;
    public const int MaxSqlLength = 64 * 1024, MaxParameters = 50;

    /// <param name="reason">Why, recorded on version 1 in the query's history.</param>
    /// <param name="suggestionId">The suggestion this query came from, when it was approved from one.</param>
    public async Task<ApprovedQueryRow> CreateAsync(Guid projectId, ApprovedQueryRequest request, Guid actor, CancellationToken ct = default,
        string? reason = null, Guid? suggestionId = null)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var q = await StageCreateAsync(db, projectId, request, actor, reason, suggestionId, ct);
        await SaveAsync(db, ct);
        lookups?.Invalidate(projectId);
        await RecordAsync(db, q, "approved_query.created", "create", null, reason, actor, ct);
        return ToRow(q);
    }

    /// <summary>Replaces the definition and increments the version; an archived query must be restored first.</summary>
    public async Task<ApprovedQueryRow> UpdateAsync(Guid projectId, Guid queryId, ApprovedQueryRequest request, Guid actor, CancellationToken ct = default,
        string? reason = null, Guid? suggestionId = null)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var before = Describe(ToRow(await FindAsync(db, projectId, queryId, ct, tracking: false)));
        var q = await StageUpdateAsync(db, projectId, queryId, request, actor, reason, suggestionId, Governance.QueryChanges.Updated, null, ct);
        await SaveVersionAsync(db, q, q.Version - 1, ct);
        lookups?.Invalidate(projectId);
        await RecordAsync(db, q, "approved_query.updated", "update", before, reason, actor, ct);
        return ToRow(q);
    }

    /// <summary>
    /// Adds a new query and its version 1 to <paramref name="db"/> without saving, so a caller (an approval) commits
    /// them with its own changes in one transaction. The engine has checked the SQL before this returns.
    /// </summary>
    internal async Task<ApprovedQuery> StageCreateAsync(PortalDbContext db, Guid projectId, ApprovedQueryRequest request, Guid actor,
        string? reason, Guid? suggestionId, CancellationToken ct)
    {
        var v = Validate(request);
        var ds = await FindDatasourceAsync(db, projectId, request.DatasourceId, ct);
        await RequireUniqueNameAsync(db, projectId, v.Name, null, ct);
        await AnalyzeAsync(ds, v.Sql, v.Parameters, ct);
        var now = clock.GetUtcNow();
        var q = new ApprovedQuery
        {
            ProjectId = projectId, DatasourceId = ds.Id, Name = v.Name, Description = v.Description, Sql = v.Sql,
            ParametersJson = CatalogJson.Write(v.Parameters), ClassificationsJson = CatalogJson.Write(v.Classifications),
            RowCap = request.RowCap, TimeoutMs = request.TimeoutMs, Version = 1, Status = QueryStatuses.Active,
            CreatedBy = actor, CreatedAt = now, UpdatedBy = actor, UpdatedAt = now,
        };
        db.Add(q);
        db.Add(Governance.QueryVersions.Snapshot(q, Governance.QueryChanges.Created, reason, suggestionId, null, actor, now));
        return q;
    }

    /// <summary>Changes a query and adds its next version to <paramref name="db"/> without saving; the save checks the version read.</summary>
    internal async Task<ApprovedQuery> StageUpdateAsync(PortalDbContext db, Guid projectId, Guid queryId, ApprovedQueryRequest request, Guid actor,
        string? reason, Guid? suggestionId, string change, int? restoredFrom, CancellationToken ct)
    {
        var v = Validate(request);
        var q = await FindAsync(db, projectId, queryId, ct);
        if (q.Status == QueryStatuses.Archived) throw DomainException.Conflict("This query is archived; restore it before changing it.");
        var ds = await FindDatasourceAsync(db, projectId, request.DatasourceId, ct);
        await RequireUniqueNameAsync(db, projectId, v.Name, q.Id, ct);
        await AnalyzeAsync(ds, v.Sql, v.Parameters, ct);
        var expected = q.Version;
        q.DatasourceId = ds.Id;
        q.Name = v.Name;
        q.Description = v.Description;
        q.Sql = v.Sql;
        q.ParametersJson = CatalogJson.Write(v.Parameters);
        q.ClassificationsJson = CatalogJson.Write(v.Classifications);
        q.RowCap = request.RowCap;
        q.TimeoutMs = request.TimeoutMs;
        q.Version = expected + 1;
        q.UpdatedBy = actor;
        q.UpdatedAt = clock.GetUtcNow();
        db.Entry(q).Property(x => x.Version).OriginalValue = expected;
        db.Add(Governance.QueryVersions.Snapshot(q, change, reason, suggestionId, restoredFrom, actor, q.UpdatedAt));
        return q;
    }

    /// <summary>Tells the gateway's lookup cache that a caller committed staged query changes (an approval, a rollback).</summary>
    internal void Committed(Guid projectId) => lookups?.Invalidate(projectId);

    public Task<ApprovedQueryRow> ArchiveAsync(Guid projectId, Guid queryId, Guid actor, CancellationToken ct = default) =>
        SetStatusAsync(projectId, queryId, QueryStatuses.Archived, actor, ct);

    public Task<ApprovedQueryRow> RestoreAsync(Guid projectId, Guid queryId, Guid actor, CancellationToken ct = default) =>
        SetStatusAsync(projectId, queryId, QueryStatuses.Active, actor, ct);

    public Task<ApprovedQueryRow> GetAsync(Guid projectId, Guid queryId, CancellationToken ct = default) =>
        lookups is null ? LoadAsync(projectId, queryId, ct) : lookups.GetOrLoadAsync(projectId, $"query:{queryId:N}", () => LoadAsync(projectId, queryId, ct));

    private async Task<ApprovedQueryRow> LoadAsync(Guid projectId, Guid queryId, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        return ToRow(await FindAsync(db, projectId, queryId, ct, tracking: false));
    }

    /// <param name="status">active, archived, or null for both.</param>
    public async Task<Page<ApprovedQueryRow>> ListAsync(Guid projectId, int skip, int take, string? status = QueryStatuses.Active, CancellationToken ct = default)
    {
        take = Math.Clamp(take, 1, 200);
        skip = Math.Max(0, skip);
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var q = db.Set<ApprovedQuery>().AsNoTracking().Where(x => x.ProjectId == projectId);
        if (status is not null) q = q.Where(x => x.Status == status);
        var total = await q.CountAsync(ct);
        var items = await q.OrderBy(x => x.Name).ThenBy(x => x.Id).Skip(skip).Take(take).ToListAsync(ct);
        return new Page<ApprovedQueryRow>(items.Select(ToRow).ToList(), total, skip, take);
    }

    private async Task<ApprovedQueryRow> SetStatusAsync(Guid projectId, Guid queryId, string status, Guid actor, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var q = await FindAsync(db, projectId, queryId, ct);
        if (q.Status == status) return ToRow(q);
        var before = Describe(ToRow(q));
        var expected = q.Version;
        q.Status = status;
        q.Version = expected + 1;
        q.UpdatedBy = actor;
        q.UpdatedAt = clock.GetUtcNow();
        db.Add(Governance.QueryVersions.Snapshot(q, status == QueryStatuses.Archived ? Governance.QueryChanges.Archived : Governance.QueryChanges.Restored,
            null, null, null, actor, q.UpdatedAt));
        await SaveVersionAsync(db, q, expected, ct);
        lookups?.Invalidate(projectId);
        var archived = status == QueryStatuses.Archived;
        await RecordAsync(db, q, archived ? "approved_query.archived" : "approved_query.restored", archived ? "archive" : "restore", before, null, actor, ct);
        return ToRow(q);
    }

    /// <summary>Appends the committed change to the audit trail, with the definition before and after.</summary>
    private async Task RecordAsync(PortalDbContext db, ApprovedQuery q, string eventType, string action, string? before, string? reason, Guid actor, CancellationToken ct)
    {
        var row = ToRow(q);
        await audit.RecordAsync(new AuditEventDraft
        {
            ProjectId = q.ProjectId, EventType = eventType, Actor = await PortalAudit.UserAsync(db, q.ProjectId, actor, ct),
            ResourceType = "approved_query", ResourceId = q.Id.ToString(), Action = action, SqlText = q.Sql,
            BeforeState = before, AfterState = Describe(row),
            Details = PortalAudit.Json(new { queryId = q.Id, name = q.Name, version = q.Version, reason }),
            DataClassifications = row.Classifications,
            OccurredAt = q.UpdatedAt,
        }, ct);
    }

    /// <summary>What the trail keeps of a query's definition.</summary>
    private static string? Describe(ApprovedQueryRow q) => PortalAudit.Json(new
    {
        name = q.Name, description = q.Description, datasourceId = q.DatasourceId, sql = q.Sql, parameters = q.Parameters,
        classifications = q.Classifications, rowCap = q.RowCap, timeoutMs = q.TimeoutMs, version = q.Version, status = q.Status,
    });

    internal sealed record Valid(string Name, string Description, string Sql, IReadOnlyList<QueryParameter> Parameters, IReadOnlyList<string> Classifications);

    internal static Valid Validate(ApprovedQueryRequest r)
    {
        var name = r.Name?.Trim();
        if (string.IsNullOrEmpty(name)) throw DomainException.Invalid("name", "Name is required.");
        if (name.Length > 200) throw DomainException.Invalid("name", "Name is limited to 200 characters.");
        var description = r.Description?.Trim() ?? "";
        if (description.Length > 2000) throw DomainException.Invalid("description", "The description is limited to 2000 characters.");
        var sql = r.Sql?.Trim();
        if (string.IsNullOrEmpty(sql)) throw DomainException.Invalid("sql", "SQL is required.");
        if (sql.Length > MaxSqlLength) throw DomainException.Invalid("sql", $"The SQL is limited to {MaxSqlLength} characters.");
        if (r.RowCap is < 1 or > MaxRowCap) throw DomainException.Invalid("rowCap", $"The row cap must be between 1 and {MaxRowCap}.");
        if (r.TimeoutMs is < MinTimeoutMs or > MaxTimeoutMs) throw DomainException.Invalid("timeoutMs", $"The timeout must be between {MinTimeoutMs} and {MaxTimeoutMs} ms.");
        var parameters = ValidateParameters(r.Parameters ?? []);
        var classifications = Catalog.Classifications.Normalize(r.Classifications, "classifications");
        return new(name, description, sql, parameters, classifications);
    }

    /// <summary>Checks each definition on its own so the error names its position, e.g. "parameters[1].pattern".</summary>
    private static IReadOnlyList<QueryParameter> ValidateParameters(IReadOnlyList<QueryParameter> parameters)
    {
        if (parameters.Count > MaxParameters) throw DomainException.Invalid("parameters", $"A query takes at most {MaxParameters} parameters.");
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < parameters.Count; i++)
        {
            var p = parameters[i];
            var at = $"parameters[{i}]";
            if (p is null) throw DomainException.Invalid(at, "A parameter definition is missing.");
            if (p.Name is null || !QueryParameter.NamePattern.IsMatch(p.Name))
                throw DomainException.Invalid($"{at}.name", $"Parameter name '{p.Name}' must be a lower-case identifier (letters, digits, underscore), written @{p.Name} in the SQL.");
            if (!seen.Add(p.Name)) throw DomainException.Invalid($"{at}.name", $"Parameter '{p.Name}' is declared twice.");
            if (!Enum.IsDefined(p.Type)) throw DomainException.Invalid($"{at}.type", "Type must be string, int, decimal, date or bool.");
            if (p.Pattern is { Length: > 500 }) throw DomainException.Invalid($"{at}.pattern", "The pattern is limited to 500 characters.");
            if (p.AllowedValues is { Count: > 200 }) throw DomainException.Invalid($"{at}.allowedValues", "At most 200 allowed values.");
            if (p.Description is { Length: > 500 }) throw DomainException.Invalid($"{at}.description", "The description is limited to 500 characters.");
            if (ParameterValidator.ValidateDefinitions([p]).FirstOrDefault() is { } e)
                throw DomainException.Invalid($"{at}.{PropertyOf(e.Message)}", e.Message);
        }
        return parameters;
    }

    private static string PropertyOf(string message) =>
        message.StartsWith("Max length", StringComparison.Ordinal) ? "maxLength"
        : message.Contains("pattern", StringComparison.Ordinal) ? "pattern"
        : message.StartsWith("Allowed value", StringComparison.Ordinal) ? "allowedValues"
        : "name";

    /// <summary>The engine is the judge: its own words explain a refusal, under field "sql" (or "parameters" for a placeholder mismatch).</summary>
    internal async Task<StatementAnalysis> AnalyzeAsync(Datasource ds, string sql, IReadOnlyList<QueryParameter> parameters, CancellationToken ct)
    {
        if (ds.Engine == DatasourceEngines.Sqlite && !File.Exists(ds.SqlitePath))
            throw new DomainException(ErrorKind.Unavailable, $"The datasource '{ds.Name}' cannot be reached: its SQLite file does not exist. Fix the datasource, then save the query again.", "datasourceId");
        try
        {
            return await datasources.EngineFor(ds).AnalyzeAsync(sql, parameters, ct);
        }
        catch (DatasourceException e) when (e.InnerException is PostgresException { SqlState: var state } && (state.StartsWith("28", StringComparison.Ordinal) || state.StartsWith("3D", StringComparison.Ordinal)))
        {
            throw new DomainException(ErrorKind.Unavailable, $"The datasource '{ds.Name}' refused the connection: {e.Message}", "datasourceId");
        }
        catch (DatasourceException e)
        {
            var position = e.Position is { } p ? $" (at character {p})" : "";
            throw DomainException.Invalid(e.Kind == DatasourceErrorKind.Parameters ? "parameters" : "sql", e.Message + position);
        }
        catch (NpgsqlException e) when (e is not PostgresException)
        {
            throw new DomainException(ErrorKind.Unavailable, $"The datasource '{ds.Name}' cannot be reached: {e.Message}", "datasourceId");
        }
    }

    internal static async Task<ApprovedQuery> FindAsync(PortalDbContext db, Guid projectId, Guid queryId, CancellationToken ct, bool tracking = true)
    {
        var q = db.Set<ApprovedQuery>().Where(x => x.Id == queryId && x.ProjectId == projectId);
        if (!tracking) q = q.AsNoTracking();
        return await q.FirstOrDefaultAsync(ct) ?? throw DomainException.NotFound("Approved query");
    }

    internal static async Task<Datasource> FindDatasourceAsync(PortalDbContext db, Guid projectId, Guid datasourceId, CancellationToken ct) =>
        await db.Set<Datasource>().AsNoTracking().FirstOrDefaultAsync(d => d.Id == datasourceId && d.ProjectId == projectId, ct)
        ?? throw new DomainException(ErrorKind.NotFound, "Datasource was not found.", "datasourceId");

    private static async Task RequireUniqueNameAsync(PortalDbContext db, Guid projectId, string name, Guid? self, CancellationToken ct)
    {
        if (await db.Set<ApprovedQuery>().AnyAsync(q => q.ProjectId == projectId && q.Name == name && q.Id != self, ct))
            throw DomainException.Conflict($"An approved query named '{name}' already exists in this project.", "name");
    }

    internal static async Task SaveAsync(PortalDbContext db, CancellationToken ct)
    {
        try { await db.SaveChangesAsync(ct); }
        catch (DbUpdateException) { throw DomainException.Conflict("An approved query with this name was added at the same time; choose another name.", "name"); }
    }

    /// <summary>Optimistic: the row is written only if nobody else bumped the version since it was read.</summary>
    internal static async Task SaveVersionAsync(PortalDbContext db, ApprovedQuery q, int expectedVersion, CancellationToken ct)
    {
        db.Entry(q).Property(x => x.Version).OriginalValue = expectedVersion;
        try { await db.SaveChangesAsync(ct); }
        catch (DbUpdateConcurrencyException) { throw DomainException.Conflict("Someone changed this query at the same time. Reload it and try again."); }
        catch (DbUpdateException) { throw DomainException.Conflict("An approved query with this name already exists in this project.", "name"); }
    }

    internal static ApprovedQueryRow ToRow(ApprovedQuery q) => new(q.Id, q.DatasourceId, q.Name, q.Description, q.Sql,
        CatalogJson.ReadParameters(q.ParametersJson), CatalogJson.ReadStrings(q.ClassificationsJson), q.RowCap, q.TimeoutMs,
        q.Version, q.Status, q.CreatedBy, q.CreatedAt, q.UpdatedBy, q.UpdatedAt);
}
