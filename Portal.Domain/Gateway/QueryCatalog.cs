using System.Text.Json;
using Portal.Domain.Access;
using Portal.Domain.Gateway.Catalog;
using Portal.Domain.Tenancy;

namespace Portal.Domain.Gateway;

/// <summary>One query in a member's catalog, with what they may do with it.</summary>
public sealed record CatalogEntry(GatewayQuerySummary Query, Guid DatasourceId, string DatasourceName, bool CanExecute, bool CanEdit);

/// <summary>A query opened in the catalog: its full definition (SQL included), what the member may do with it, and its registered consumers (lineage).</summary>
public sealed record CatalogDetail(ApprovedQueryRow Query, string DatasourceName, bool CanExecute, bool CanEdit, IReadOnlyList<Governance.ConsumerRow> Consumers);

public sealed record CatalogDatasource(Guid Id, string Name);

/// <summary>
/// The query catalog as a signed-in member sees it in the portal. Listing and running go through
/// <see cref="GatewayService"/> with the member as principal, so the portal walks exactly the pipeline agents do
/// (module gate, per-query and per-user grants, rate limits, validation, screening, masking by role, audit).
/// Creating, changing and archiving call <see cref="ApprovedQueryService"/> after checking the member may edit; changing
/// or archiving a query that has registered consumers needs an explicit confirmation that names them.
/// </summary>
public sealed class QueryCatalog(
    GatewayService gateway, ApprovedQueryService queries, QueryPermissionService permissions, DatasourceService datasources,
    Governance.QueryHistoryService history)
{
    public const int MaxFilterLength = 200;

    public async Task<GatewayOutcome<IReadOnlyList<CatalogEntry>>> ListAsync(GatewayPrincipal member, GatewayRequestContext request, CancellationToken ct = default)
    {
        var listed = await gateway.ListQueriesAsync(member, request, ct);
        if (listed.Denial is { } denial) return GatewayOutcome<IReadOnlyList<CatalogEntry>>.Deny(denial);
        var names = (await DatasourcesAsync(member.ProjectId, ct)).ToDictionary(d => d.Id, d => d.Name);
        var entries = new List<CatalogEntry>();
        foreach (var q in listed.Value!)
        {
            ApprovedQueryRow row;
            try { row = await queries.GetAsync(member.ProjectId, q.Id, ct); }
            catch (DomainException e) when (e.Kind == ErrorKind.NotFound) { continue; } // archived or deleted since it was listed
            var (canExecute, canEdit) = await RightsAsync(member, q.Id, ct);
            entries.Add(new(q, row.DatasourceId, names.GetValueOrDefault(row.DatasourceId, "(unknown datasource)"), canExecute, canEdit));
        }
        return GatewayOutcome<IReadOnlyList<CatalogEntry>>.Ok(entries);
    }

    /// <summary>Text matches name or description (case-insensitive); a classification filter keeps queries carrying it.</summary>
    public static IReadOnlyList<CatalogEntry> Filter(IEnumerable<CatalogEntry> entries, string? text, string? classification)
    {
        var t = text?.Trim();
        if (t is { Length: > MaxFilterLength }) t = t[..MaxFilterLength];
        return entries
            .Where(e => string.IsNullOrEmpty(t) || e.Query.Name.Contains(t, StringComparison.OrdinalIgnoreCase) || e.Query.Description.Contains(t, StringComparison.OrdinalIgnoreCase))
            .Where(e => string.IsNullOrEmpty(classification) || e.Query.Classifications.Contains(classification, StringComparer.Ordinal))
            .ToList();
    }

    /// <summary>An active query the member may view; anything else (missing, archived, another project's, not granted) is NotFound.</summary>
    public async Task<CatalogDetail> GetAsync(GatewayPrincipal member, Guid queryId, CancellationToken ct = default)
    {
        if (!await permissions.CanAsync(member.ProjectId, queryId, Who(member), QueryAction.View, ct)) throw DomainException.NotFound("Approved query");
        var q = await queries.GetAsync(member.ProjectId, queryId, ct);
        if (q.Status != QueryStatuses.Active) throw DomainException.NotFound("Approved query");
        var (canExecute, canEdit) = await RightsAsync(member, queryId, ct);
        var ds = (await DatasourcesAsync(member.ProjectId, ct)).FirstOrDefault(d => d.Id == q.DatasourceId)?.Name ?? "(unknown datasource)";
        return new(q, ds, canExecute, canEdit, await history.ListConsumersAsync(member.ProjectId, queryId, ct));
    }

    /// <summary>Runs the query as the member: the form's values go through the gateway's own validation, typed by the query's definitions.</summary>
    public Task<GatewayOutcome<GatewayResult>> RunAsync(GatewayPrincipal member, Guid queryId, IReadOnlyDictionary<string, string?> values, GatewayRequestContext request, CancellationToken ct = default)
    {
        // Blank fields are left out, so a required parameter left empty is reported as missing rather than as "".
        var present = values.Where(v => !string.IsNullOrEmpty(v.Value)).ToDictionary(v => v.Key, v => v.Value);
        var json = JsonSerializer.SerializeToElement(present);
        return gateway.ExecuteAsync(member, queryId, json, request, null, ct);
    }

    public static bool MayCreate(GatewayPrincipal member) => Permissions.RoleHas(member.Role, Permissions.QueriesEdit);

    /// <summary>
    /// Creates a query, or changes one the member may edit. The author of a new query is granted view, run and edit on
    /// it (audited like any grant), so a data engineer does not lose sight of their own query; admins see every query.
    /// </summary>
    /// <param name="confirmConsumers">The member confirmed that the query's registered consumers may change.</param>
    public async Task<ApprovedQueryRow> SaveAsync(GatewayPrincipal member, Guid? queryId, ApprovedQueryRequest request, CancellationToken ct = default,
        bool confirmConsumers = false)
    {
        var actor = member.UserId ?? throw DomainException.Forbidden("Only portal members edit queries here.");
        if (!MayCreate(member)) throw DomainException.Forbidden("Your role in this project cannot create or change queries.");
        if (queryId is { } id)
        {
            if (!await permissions.CanAsync(member.ProjectId, id, Who(member), QueryAction.View, ct)) throw DomainException.NotFound("Approved query");
            if (!await permissions.CanAsync(member.ProjectId, id, Who(member), QueryAction.Edit, ct)) throw DomainException.Forbidden("You may not change this query.");
            await RequireConsumersConfirmedAsync(member.ProjectId, id, "change", confirmConsumers, ct);
            return await queries.UpdateAsync(member.ProjectId, id, request, actor, ct);
        }
        var created = await queries.CreateAsync(member.ProjectId, request, actor, ct);
        if (member.Role != Roles.Admin)
            await permissions.SetAsync(member.ProjectId, created.Id, new QueryGrant(PrincipalTypes.User, actor.ToString(), true, true, true), actor, ct);
        return created;
    }

    public async Task<ApprovedQueryRow> ArchiveAsync(GatewayPrincipal member, Guid queryId, CancellationToken ct = default, bool confirmConsumers = false)
    {
        var actor = member.UserId ?? throw DomainException.Forbidden("Only portal members edit queries here.");
        if (!MayCreate(member)) throw DomainException.Forbidden("Your role in this project cannot create or change queries.");
        if (!await permissions.CanAsync(member.ProjectId, queryId, Who(member), QueryAction.View, ct)) throw DomainException.NotFound("Approved query");
        if (!await permissions.CanAsync(member.ProjectId, queryId, Who(member), QueryAction.Edit, ct)) throw DomainException.Forbidden("You may not change this query.");
        await RequireConsumersConfirmedAsync(member.ProjectId, queryId, "archive", confirmConsumers, ct);
        return await queries.ArchiveAsync(member.ProjectId, queryId, actor, ct);
    }

    /// <summary>Lineage: a query that dashboards, reports or exports rely on changes only once someone confirmed it, by name.</summary>
    private async Task RequireConsumersConfirmedAsync(Guid projectId, Guid queryId, string verb, bool confirmed, CancellationToken ct)
    {
        if (confirmed) return;
        var consumers = await history.ListConsumersAsync(projectId, queryId, ct);
        if (consumers.Count == 0) return;
        throw DomainException.Conflict($"This query is used by {Governance.QueryHistoryService.Describe(consumers)}. Confirm that you {verb} it for them: " +
            string.Join(", ", consumers.Select(c => c.Name)) + ".", "confirmConsumers");
    }

    public async Task<IReadOnlyList<CatalogDatasource>> DatasourcesAsync(Guid projectId, CancellationToken ct = default)
    {
        var result = new List<CatalogDatasource>();
        for (var skip = 0; ; skip += 200)
        {
            var page = await datasources.ListAsync(projectId, skip, 200, ct);
            result.AddRange(page.Items.Select(d => new CatalogDatasource(d.Id, d.Name)));
            if (page.Items.Count == 0 || skip + page.Items.Count >= page.Total) return result;
        }
    }

    private async Task<(bool CanExecute, bool CanEdit)> RightsAsync(GatewayPrincipal member, Guid queryId, CancellationToken ct)
    {
        var canExecute = Permissions.RoleHas(member.Role, Permissions.QueriesExecute)
            && await permissions.CanAsync(member.ProjectId, queryId, Who(member), QueryAction.Execute, ct);
        var canEdit = MayCreate(member) && await permissions.CanAsync(member.ProjectId, queryId, Who(member), QueryAction.Edit, ct);
        return (canExecute, canEdit);
    }

    private static QueryPrincipal Who(GatewayPrincipal p) => new(p.Role, p.UserId);
}
