using Npgsql;
using Portal.Domain.Gateway;
using Portal.Domain.Gateway.Demo;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Gateway;

/// <summary>
/// The sample datasource on both engines, created once per test class: a SQLite file from the generator and a
/// throwaway PostgreSQL database with the same tables, view and rows. Created lazily so a missing PostgreSQL fails
/// only the PostgreSQL half of each test.
/// </summary>
public sealed class GatewayEngines : IAsyncLifetime
{
    private readonly string dir = Path.Combine(Path.GetTempPath(), "portal-tests", "gw-" + Guid.NewGuid().ToString("N"));
    private readonly SemaphoreSlim gate = new(1, 1);
    private SqliteEngine? sqlite;
    private TestDatabase? pg;

    public string SqlitePath => Path.Combine(dir, "sample.db");
    public string? PostgresConnectionString => pg?.ConnectionString;

    public async Task<IDatasourceEngine> GetAsync(string provider)
    {
        await gate.WaitAsync();
        try
        {
            if (provider == "sqlite")
            {
                if (sqlite is null)
                {
                    Directory.CreateDirectory(dir);
                    await SampleDatasource.CreateSqliteAsync(SqlitePath);
                    sqlite = new SqliteEngine(SqlitePath);
                }
                return sqlite;
            }
            if (pg is null)
            {
                var db = await TestDatabase.CreateAsync("postgres", migrate: false);
                await using (var conn = new NpgsqlConnection(db.ConnectionString))
                {
                    await conn.OpenAsync();
                    await SampleDatasource.PopulateAsync(conn, postgres: true);
                }
                pg = db;
            }
            return new PostgresEngine(pg.ConnectionString);
        }
        finally { gate.Release(); }
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (pg is not null) await pg.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
