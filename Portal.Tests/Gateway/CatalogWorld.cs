using Microsoft.AspNetCore.DataProtection;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Portal.Domain.Access;
using Portal.Domain.Gateway.Catalog;
using Portal.Domain.Gateway.Demo;
using Portal.Domain.Security;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Gateway;

/// <summary>A real portal database with one project and its admin, the catalog services, and a sample SQLite file in the allowed folder.</summary>
internal sealed class CatalogWorld : IAsyncDisposable
{
    public required TestDatabase Db { get; init; }
    public required ServiceProvider Services { get; set; }
    public required ManualClock Clock { get; init; }
    public required Guid ProjectId { get; init; }
    public required Guid Admin { get; init; }
    public required string SamplePath { get; init; }
    private readonly List<TestDatabase> extra = [];

    public DatasourceService Datasources => Services.GetRequiredService<DatasourceService>();
    public ApprovedQueryService Queries => Services.GetRequiredService<ApprovedQueryService>();
    public QueryPermissionService Permissions => Services.GetRequiredService<QueryPermissionService>();
    public ColumnMaskService Masks => Services.GetRequiredService<ColumnMaskService>();
    public DemoCatalog Demo => Services.GetRequiredService<DemoCatalog>();

    public static async Task<CatalogWorld> CreateAsync(string provider, SecretProtector? protector = null)
    {
        var db = await TestDatabase.CreateAsync(provider);
        var clock = new ManualClock();
        var sp = Build(db, clock, protector);
        await using var scope = sp.CreateAsyncScope();
        var setup = scope.ServiceProvider.GetRequiredService<SetupService>();
        var token = await setup.IssueTokenAsync() ?? throw new InvalidOperationException("setup already done");
        var admin = await setup.CompleteAsync(new SetupRequest(token, "Test Bank", "Payments", "admin@bank.test", "Ada Admin", TestUsers.Password));
        var project = (await sp.GetRequiredService<ProjectService>().ListForUserAsync(admin.Id, 0, 10)).Items.Single();
        var sample = Path.Combine(db.DataDirectory, DatasourceService.DatasourcesFolder, "sample.db");
        Directory.CreateDirectory(Path.GetDirectoryName(sample)!);
        await SampleDatasource.CreateSqliteAsync(sample);
        return new CatalogWorld { Db = db, Services = sp, Clock = clock, ProjectId = project.Id, Admin = admin.Id, SamplePath = sample };
    }

    public static ServiceProvider Build(TestDatabase db, ManualClock clock, SecretProtector? protector) =>
        db.Services(clock, s =>
        {
            s.AddDataProtection().UseEphemeralDataProtectionProvider();
            if (protector is not null) s.AddSingleton(protector);
        });

    /// <summary>Swaps the services for ones using another keyring, as a restart with new configuration would.</summary>
    public async Task RestartWithAsync(SecretProtector protector)
    {
        await Services.DisposeAsync();
        Services = Build(Db, Clock, protector);
    }

    public Task<DatasourceRow> SampleDatasourceAsync(Guid? projectId = null, string name = "Sample") =>
        Datasources.CreateAsync(projectId ?? ProjectId, new DatasourceRequest(name, "sqlite", SamplePath), Admin);

    public async Task<Guid> MemberAsync(string role, Guid? projectId = null)
    {
        await using var scope = Services.CreateAsyncScope();
        var result = await scope.ServiceProvider.GetRequiredService<MembershipService>()
            .AddAsync(projectId ?? ProjectId, $"{role}-{Guid.NewGuid():N}@bank.test", role, Admin);
        return result.Member.UserId;
    }

    public async Task<Guid> OtherProjectAsync() =>
        (await Services.GetRequiredService<ProjectService>().CreateAsync(Admin, "Other " + Guid.NewGuid().ToString("N")[..6], null)).Id;

    /// <summary>A throwaway PostgreSQL database filled with the sample tables, as a governed datasource.</summary>
    public async Task<NpgsqlConnectionStringBuilder> SamplePostgresAsync()
    {
        var pg = await TestDatabase.CreateAsync("postgres", migrate: false);
        extra.Add(pg);
        await using (var conn = new NpgsqlConnection(pg.ConnectionString))
        {
            await conn.OpenAsync();
            await SampleDatasource.PopulateAsync(conn, postgres: true);
        }
        return new NpgsqlConnectionStringBuilder(pg.ConnectionString);
    }

    public Task<List<string>> RawRowsAsync(string table) => Db.RawRowsAsync(table);

    public async ValueTask DisposeAsync()
    {
        await Services.DisposeAsync();
        foreach (var pg in extra) await pg.DisposeAsync();
        await Db.DisposeAsync();
    }
}
