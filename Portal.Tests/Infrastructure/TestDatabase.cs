using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using Portal.Domain;
using Portal.Domain.Persistence;

namespace Portal.Tests.Infrastructure;

/// <summary>
/// A fresh, real portal database for one test: a SQLite file in a temp folder or a new database on the throwaway
/// PostgreSQL server that ./test.sh starts (connection string in PORTAL_TEST_PG). There is no skipping: without
/// PostgreSQL the PostgreSQL half of every test fails with a message saying how to run it.
/// </summary>
public sealed class TestDatabase : IAsyncDisposable
{
    public DatabaseProvider Provider { get; }
    public string ConnectionString { get; }
    public string DataDirectory { get; }
    private readonly string? pgName;

    private TestDatabase(DatabaseProvider provider, string connectionString, string dataDirectory, string? pgName)
    {
        Provider = provider; ConnectionString = connectionString; DataDirectory = dataDirectory; this.pgName = pgName;
    }

    /// <summary>"sqlite" or "postgres", as used in [Theory] data.</summary>
    public static Task<TestDatabase> CreateAsync(string provider, bool migrate = true) =>
        CreateAsync(provider == "postgres" ? DatabaseProvider.Postgres : DatabaseProvider.Sqlite, migrate);

    public static async Task<TestDatabase> CreateAsync(DatabaseProvider provider, bool migrate = true)
    {
        var dir = Path.Combine(Path.GetTempPath(), "portal-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        TestDatabase db;
        if (provider == DatabaseProvider.Sqlite)
        {
            var cs = new SqliteConnectionStringBuilder { DataSource = Path.Combine(dir, "portal.db"), Pooling = true, DefaultTimeout = 30 }.ToString();
            db = new TestDatabase(provider, cs, dir, null);
        }
        else
        {
            var admin = PostgresAdminConnectionString;
            var name = "t_" + Guid.NewGuid().ToString("N")[..20];
            await using (var conn = new NpgsqlConnection(admin))
            {
                await conn.OpenAsync();
                await using var cmd = new NpgsqlCommand($"CREATE DATABASE {name}", conn);
                await cmd.ExecuteNonQueryAsync();
            }
            var cs = new NpgsqlConnectionStringBuilder(admin) { Database = name, MaxPoolSize = 50 }.ToString();
            db = new TestDatabase(provider, cs, dir, name);
        }
        if (migrate) await new MigrationRunner(provider, db.ConnectionString).RunAsync();
        return db;
    }

    public static string PostgresAdminConnectionString =>
        Environment.GetEnvironmentVariable("PORTAL_TEST_PG") is { Length: > 0 } cs
            ? cs
            : throw new InvalidOperationException(
                "PostgreSQL is required for this test: run ./test.sh (it starts a throwaway server) or set PORTAL_TEST_PG to an admin connection string.");

    public string ProviderName => Provider == DatabaseProvider.Sqlite ? "Sqlite" : "Postgres";

    /// <summary>The settings a portal or worker process needs to use this database.</summary>
    public Dictionary<string, string?> Settings => new()
    {
        ["Database:Provider"] = ProviderName,
        ["Database:ConnectionString"] = ConnectionString,
        ["Database:DataDirectory"] = DataDirectory,
    };

    public PortalDbContext NewContext()
    {
        var b = new DbContextOptionsBuilder<PortalDbContext>();
        PortalDomainServices.Configure(b, Provider, ConnectionString);
        return new PortalDbContext(b.Options);
    }

    /// <summary>Every row of a table as "column=value|…" text, read without EF, to prove what is really stored.</summary>
    public async Task<List<string>> RawRowsAsync(string table)
    {
        await using var ctx = NewContext();
        var conn = ctx.Database.GetDbConnection();
        await conn.OpenAsync();
        await using var cmd = conn.CreateCommand();
        cmd.CommandText = $"SELECT * FROM {table}";
        await using var reader = await cmd.ExecuteReaderAsync();
        var rows = new List<string>();
        while (await reader.ReadAsync())
        {
            var cells = new List<string>();
            for (var i = 0; i < reader.FieldCount; i++) cells.Add($"{reader.GetName(i)}={(reader.IsDBNull(i) ? "null" : Convert.ToString(reader.GetValue(i)))}");
            rows.Add(string.Join("|", cells));
        }
        return rows;
    }

    /// <summary>The Domain services over this database, as the portal registers them.</summary>
    public ServiceProvider Services(TimeProvider? clock = null, Action<IServiceCollection>? configure = null)
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(Settings).Build();
        var services = new ServiceCollection();
        services.AddLogging(l => l.SetMinimumLevel(LogLevel.Warning));
        services.AddSingleton<IConfiguration>(config);
        if (clock is not null) services.AddSingleton(clock);
        services.AddPortalDomain(config);
        configure?.Invoke(services);
        return services.BuildServiceProvider();
    }

    public async ValueTask DisposeAsync()
    {
        SqliteConnection.ClearAllPools();
        if (pgName is not null)
        {
            NpgsqlConnection.ClearAllPools();
            try
            {
                await using var conn = new NpgsqlConnection(PostgresAdminConnectionString);
                await conn.OpenAsync();
                await using var cmd = new NpgsqlCommand($"DROP DATABASE IF EXISTS {pgName} WITH (FORCE)", conn);
                await cmd.ExecuteNonQueryAsync();
            }
            catch (NpgsqlException) { /* the server is torn down with the run anyway */ }
        }
        try { Directory.Delete(DataDirectory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

public static class Providers
{
    /// <summary>Every persistence test runs on both providers.</summary>
    public static TheoryData<string> Both => new() { "sqlite", "postgres" };
}
