using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Portal.Domain.Access;
using Portal.Domain.Gateway;
using Portal.Domain.Gateway.Catalog;
using Portal.Domain.Governance;
using Portal.Domain.Persistence;
using Portal.Domain.Suite;
using Portal.Domain.Tenancy;
using Portal.Tests.Gateway;

namespace Portal.Tests.Governance;

/// <summary>A catalog world with the governance module on, the sample datasource and its PII masks, and helpers for suggestions.</summary>
internal sealed class GovernanceWorld : IAsyncDisposable
{
    public required CatalogWorld Catalog { get; init; }
    public required Guid DatasourceId { get; init; }
    public Guid ProjectId => Catalog.ProjectId;
    public Guid Admin => Catalog.Admin;
    public SuggestionService Suggestions => Catalog.Services.GetRequiredService<SuggestionService>();
    public ApprovalPolicyService Policies => Catalog.Services.GetRequiredService<ApprovalPolicyService>();
    public QueryHistoryService History => Catalog.Services.GetRequiredService<QueryHistoryService>();
    public ApprovedQueryService Queries => Catalog.Queries;

    public const string LookupSql = "SELECT id, name, email, ssn FROM customers WHERE id = @customer_id";
    public static readonly QueryParameter[] LookupParameters = [new("customer_id", ParameterType.Int)];

    public static async Task<GovernanceWorld> CreateAsync(string provider)
    {
        var catalog = await CatalogWorld.CreateAsync(provider);
        var suite = catalog.Services.GetRequiredService<SuiteService>();
        await suite.InstallAsync(catalog.ProjectId, Tier.EnterprisePlus, catalog.Admin);
        await suite.SetModuleAsync(catalog.ProjectId, Modules.Governance, true, catalog.Admin);
        await suite.SetModuleAsync(catalog.ProjectId, Modules.AccessControl, true, catalog.Admin);
        var ds = await catalog.SampleDatasourceAsync();
        await catalog.Masks.CreateAsync(catalog.ProjectId, new ColumnMaskRequest(ds.Id, "customers", "ssn", MaskType.Partial, ShowLast: 4, VisibleToRoles: [Roles.Compliance], Classification: Classifications.Pii), catalog.Admin);
        await catalog.Masks.CreateAsync(catalog.ProjectId, new ColumnMaskRequest(ds.Id, "customers", "email", MaskType.EmailDomain, Classification: Classifications.Pii), catalog.Admin);
        await catalog.Masks.CreateAsync(catalog.ProjectId, new ColumnMaskRequest(ds.Id, "orders", "amount", MaskType.Redact, VisibleToRoles: [Roles.Admin], Classification: Classifications.Financial), catalog.Admin);
        return new GovernanceWorld { Catalog = catalog, DatasourceId = ds.Id };
    }

    public static Submitter UserSubmitter(Guid user, string role) => new(SubmitterTypes.User, user, $"{role}-{user:N}@bank.test", user, role);

    public SuggestionRequest Lookup(string name = "Customer by id", string? sql = null) =>
        new(DatasourceId, name, "Find one customer's contact details by id", sql ?? LookupSql, LookupParameters, "Support needs it");

    public Task<SuggestionRow> SubmitAsync(Guid user, string role, SuggestionRequest? request = null) =>
        Suggestions.SubmitAsync(ProjectId, request ?? Lookup(), UserSubmitter(user, role));

    public async Task<T> InDbAsync<T>(Func<PortalDbContext, Task<T>> read)
    {
        await using var db = await Catalog.Services.GetRequiredService<IDbContextFactory<PortalDbContext>>().CreateDbContextAsync();
        return await read(db);
    }

    public ValueTask DisposeAsync() => Catalog.DisposeAsync();
}
