using System.Security.Cryptography;
using Portal.Domain;
using Portal.Domain.Gateway.Catalog;
using Portal.Domain.Security;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Gateway;

public class CatalogDatasourceTests
{
    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Datasources_are_listed_and_read_only_within_their_project(string provider)
    {
        await using var w = await CatalogWorld.CreateAsync(provider);
        var ds = await w.SampleDatasourceAsync(name: " Sales ");
        Assert.Equal("Sales", ds.Name);
        Assert.Equal("sqlite", ds.Engine);
        Assert.False(ds.HasPassword);
        await w.SampleDatasourceAsync(name: "Archive");

        var page = await w.Datasources.ListAsync(w.ProjectId, 0, 10);
        Assert.Equal(2, page.Total);
        Assert.Equal(["Archive", "Sales"], page.Items.Select(i => i.Name));
        Assert.Equal(ds.Id, (await w.Datasources.GetAsync(w.ProjectId, ds.Id)).Id);
        Assert.Single((await w.Datasources.ListAsync(w.ProjectId, 1, 1)).Items);

        var dup = await Assert.ThrowsAsync<DomainException>(() => w.SampleDatasourceAsync(name: "Sales"));
        Assert.Equal((ErrorKind.Conflict, "name"), (dup.Kind, dup.Field));

        var other = await w.OtherProjectAsync();
        Assert.Equal(0, (await w.Datasources.ListAsync(other, 0, 10)).Total);
        foreach (var call in new Func<Task>[]
        {
            () => w.Datasources.GetAsync(other, ds.Id),
            () => w.Datasources.UpdateAsync(other, ds.Id, new DatasourceRequest("X", "sqlite", w.SamplePath), w.Admin),
            () => w.Datasources.DeleteAsync(other, ds.Id),
            () => w.Datasources.TestConnectionAsync(other, ds.Id),
            () => w.Datasources.OpenEngineAsync(other, ds.Id),
        })
            Assert.Equal(ErrorKind.NotFound, (await Assert.ThrowsAsync<DomainException>(call)).Kind);

        var renamed = await w.Datasources.UpdateAsync(w.ProjectId, ds.Id, new DatasourceRequest("Sales 2", "sqlite", w.SamplePath), w.Admin);
        Assert.Equal("Sales 2", renamed.Name);
        var engineChange = await Assert.ThrowsAsync<DomainException>(() => w.Datasources.UpdateAsync(w.ProjectId, ds.Id, new DatasourceRequest("Sales 2", "postgres", Host: "h", Database: "d", Username: "u"), w.Admin));
        Assert.Equal("engine", engineChange.Field);
        await w.Datasources.DeleteAsync(w.ProjectId, ds.Id);
        Assert.Equal(1, (await w.Datasources.ListAsync(w.ProjectId, 0, 10)).Total);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Bad_settings_are_refused_naming_the_field_and_portal_files_are_off_limits(string provider)
    {
        await using var w = await CatalogWorld.CreateAsync(provider);
        async Task<string?> Field(DatasourceRequest r) =>
            (await Assert.ThrowsAsync<DomainException>(() => w.Datasources.CreateAsync(w.ProjectId, r, w.Admin))).Field;

        Assert.Equal("name", await Field(new DatasourceRequest(" ", "sqlite", w.SamplePath)));
        Assert.Equal("engine", await Field(new DatasourceRequest("A", "oracle")));
        Assert.Equal("sqlitePath", await Field(new DatasourceRequest("A", "sqlite", null)));
        Assert.Equal("sqlitePath", await Field(new DatasourceRequest("A", "sqlite", "relative/sample.db")));
        // The portal's own database, key file and key ring live in the data directory.
        Assert.Equal("sqlitePath", await Field(new DatasourceRequest("A", "sqlite", Path.Combine(w.Db.DataDirectory, "portal.db"))));
        Assert.Equal("sqlitePath", await Field(new DatasourceRequest("A", "sqlite", Path.Combine(w.Db.DataDirectory, "datasources", "..", "encryption.keys"))));
        Assert.Equal("host", await Field(new DatasourceRequest("A", "postgres", Database: "d", Username: "u")));
        Assert.Equal("port", await Field(new DatasourceRequest("A", "postgres", Host: "h", Port: 70000, Database: "d", Username: "u")));
        Assert.Equal("database", await Field(new DatasourceRequest("A", "postgres", Host: "h", Username: "u")));
        Assert.Equal("username", await Field(new DatasourceRequest("A", "postgres", Host: "h", Database: "d")));
        Assert.Equal("password", await Field(new DatasourceRequest("A", "sqlite", w.SamplePath, Password: "x")));
        Assert.Equal(0, (await w.Datasources.ListAsync(w.ProjectId, 0, 10)).Total);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Sqlite_test_connection_says_clearly_whether_it_worked(string provider)
    {
        await using var w = await CatalogWorld.CreateAsync(provider);
        var ok = await w.Datasources.TestConnectionAsync(w.ProjectId, (await w.SampleDatasourceAsync()).Id);
        Assert.True(ok.Ok, ok.Message);
        Assert.Equal("Connected to the SQLite file (read-only): 4 tables and views.", ok.Message);

        var missing = await w.Datasources.CreateAsync(w.ProjectId, new DatasourceRequest("Missing", "sqlite", Path.Combine(Path.GetTempPath(), "nope-" + Guid.NewGuid() + ".db")), w.Admin);
        var failed = await w.Datasources.TestConnectionAsync(w.ProjectId, missing.Id);
        Assert.False(failed.Ok);
        Assert.Equal("Connection failed: The datasource file does not exist.", failed.Message);

        var garbage = Path.Combine(w.Db.DataDirectory, "datasources", "garbage.db");
        await File.WriteAllTextAsync(garbage, new string('x', 4096));
        var notDb = await w.Datasources.TestSettingsAsync(w.ProjectId, new DatasourceRequest(null, "sqlite", garbage));
        Assert.False(notDb.Ok);
        Assert.StartsWith("Connection failed: SQLite: file is not a database", notDb.Message);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Postgres_password_is_encrypted_at_rest_and_test_connection_reports_engine_text(string provider)
    {
        await using var w = await CatalogWorld.CreateAsync(provider);
        var pg = await w.SamplePostgresAsync();
        const string password = "Pg-S3cret-Password-77";
        var ds = await w.Datasources.CreateAsync(w.ProjectId,
            new DatasourceRequest("Warehouse", "postgres", Host: pg.Host, Port: pg.Port, Database: pg.Database, Username: pg.Username, Password: pg.Password ?? password), w.Admin);
        Assert.True(ds.HasPassword);
        Assert.Equal(pg.Database, ds.Database);

        var row = Assert.Single(await w.RawRowsAsync("datasources"));
        Assert.DoesNotContain(pg.Password ?? password, row);
        Assert.Contains("password_protected=enc:", row);

        var ok = await w.Datasources.TestConnectionAsync(w.ProjectId, ds.Id);
        Assert.True(ok.Ok, ok.Message);
        Assert.StartsWith("Connected (read-only transaction): PostgreSQL ", ok.Message);

        // The engine runs the approved queries too: a write is refused by PostgreSQL itself.
        var dml = await Assert.ThrowsAsync<DomainException>(() => w.Queries.CreateAsync(w.ProjectId,
            new ApprovedQueryRequest(ds.Id, "Wipe", null, "DELETE FROM customers WHERE id = @id", [new("id", Portal.Domain.Gateway.ParameterType.Int)]), w.Admin));
        Assert.Equal("sql", dml.Field);
        var fine = await w.Queries.CreateAsync(w.ProjectId,
            new ApprovedQueryRequest(ds.Id, "Customer", null, "SELECT id, name FROM customers WHERE id = @id", [new("id", Portal.Domain.Gateway.ParameterType.Int)]), w.Admin);
        Assert.Equal(1, fine.Version);

        // A null password on update keeps the stored one; a wrong port fails with the driver's words and no password.
        var moved = await w.Datasources.UpdateAsync(w.ProjectId, ds.Id,
            new DatasourceRequest("Warehouse", "postgres", Host: pg.Host, Port: 1, Database: pg.Database, Username: pg.Username), w.Admin);
        Assert.True(moved.HasPassword);
        var failed = await w.Datasources.TestConnectionAsync(w.ProjectId, ds.Id);
        Assert.False(failed.Ok);
        Assert.StartsWith("Connection failed: ", failed.Message);
        Assert.Contains("refused", failed.Message, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(pg.Password ?? password, failed.Message);

        var unreachable = await Assert.ThrowsAsync<DomainException>(() => w.Queries.CreateAsync(w.ProjectId,
            new ApprovedQueryRequest(ds.Id, "Other", null, "SELECT 1 AS one"), w.Admin));
        Assert.Equal((ErrorKind.Unavailable, "datasourceId"), (unreachable.Kind, unreachable.Field));
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Rotation_reencrypts_every_password_under_the_active_key(string provider)
    {
        var k1 = ("k1", RandomNumberGenerator.GetBytes(32));
        var k2 = ("k2", RandomNumberGenerator.GetBytes(32));
        await using var w = await CatalogWorld.CreateAsync(provider, new SecretProtector([k1]));
        var pg = await w.SamplePostgresAsync();
        var secret = pg.Password ?? "Rotate-Me-123";
        DatasourceRequest Request(string name) => new(name, "postgres", Host: pg.Host, Port: pg.Port, Database: pg.Database, Username: pg.Username, Password: secret);
        var a = await w.Datasources.CreateAsync(w.ProjectId, Request("A"), w.Admin);
        await w.Datasources.CreateAsync(await w.OtherProjectAsync(), Request("B"), w.Admin);
        await w.SampleDatasourceAsync();
        Assert.All(await w.RawRowsAsync("datasources"), r => Assert.DoesNotContain("enc:k2:", r));

        await w.RestartWithAsync(new SecretProtector([k2, k1]));
        Assert.Equal(2, await w.Datasources.RotateSecretsAsync());
        Assert.Equal(0, await w.Datasources.RotateSecretsAsync());
        var rows = (await w.RawRowsAsync("datasources")).Where(r => r.Contains("engine=postgres")).ToList();
        Assert.Equal(2, rows.Count);
        Assert.All(rows, r => { Assert.Contains("password_protected=enc:k2:", r); Assert.DoesNotContain(secret, r); });

        // With the old key retired the passwords still decrypt, so the datasource still connects.
        await w.RestartWithAsync(new SecretProtector([k2]));
        var ok = await w.Datasources.TestConnectionAsync(w.ProjectId, a.Id);
        Assert.True(ok.Ok, ok.Message);
    }
}
