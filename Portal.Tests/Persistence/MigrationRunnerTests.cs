using Portal.Domain.Persistence;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Persistence;

public class MigrationRunnerTests
{
    private static MigrationScript Script(string version, string name, string sql) =>
        new(version, name, $"Database/test/{version}_{name}.sql", sql);

    private static async Task<long> ScalarAsync(TestDatabase db, string sql)
    {
        await using var conn = new MigrationRunner(db.Provider, db.ConnectionString).Open();
        await using var cmd = conn.CreateCommand();
        cmd.CommandText = sql;
        return Convert.ToInt64(await cmd.ExecuteScalarAsync());
    }

    private static async Task ExecAsync(TestDatabase db, string sql)
    {
        await using var conn = new MigrationRunner(db.Provider, db.ConnectionString).Open();
        await using var cmd = conn.CreateCommand();
        cmd.CommandText = sql;
        await cmd.ExecuteNonQueryAsync();
    }

    private static string TableCount(TestDatabase db, string table) => db.Provider == DatabaseProvider.Sqlite
        ? $"SELECT count(*) FROM sqlite_master WHERE type='table' AND name='{table}'"
        : $"SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name='{table}'";

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Applies_every_script_in_order_once(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider, migrate: false);
        var runner = new MigrationRunner(db.Provider, db.ConnectionString);
        var scripts = MigrationRunner.LoadScripts(db.Provider);
        Assert.NotEmpty(scripts);
        Assert.Equal(scripts.Select(s => s.Version).Order(StringComparer.Ordinal), scripts.Select(s => s.Version));
        Assert.Equal(scripts.Select(s => s.ResourcePath), await runner.PendingAsync());

        var first = await runner.RunAsync();
        Assert.Equal(scripts.Select(s => s.ResourcePath), first.Applied);
        Assert.Empty(first.AlreadyApplied);
        Assert.Empty(await runner.PendingAsync());

        var second = await runner.RunAsync();
        Assert.Empty(second.Applied);
        Assert.Equal(scripts.Select(s => s.ResourcePath), second.AlreadyApplied);
        Assert.Equal(scripts.Count, await ScalarAsync(db, "SELECT count(*) FROM schema_migrations"));
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task A_failing_script_leaves_nothing_behind_and_is_named(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider, migrate: false);
        var runner = new MigrationRunner(db.Provider, db.ConnectionString);
        var scripts = new[]
        {
            Script("0001", "good", "CREATE TABLE good_one (id integer NOT NULL PRIMARY KEY);"),
            Script("0002", "bad", "CREATE TABLE half_done (id integer NOT NULL PRIMARY KEY); INSERT INTO half_done (id) VALUES (1); INSERT INTO no_such_table (id) VALUES (1);"),
            Script("0003", "later", "CREATE TABLE never_reached (id integer NOT NULL PRIMARY KEY);"),
        };

        var e = await Assert.ThrowsAsync<MigrationException>(() => runner.RunAsync(scripts));
        Assert.Contains("Database/test/0002_bad.sql", e.Message);

        Assert.Equal(1, await ScalarAsync(db, TableCount(db, "good_one")));
        Assert.Equal(0, await ScalarAsync(db, TableCount(db, "half_done")));
        Assert.Equal(0, await ScalarAsync(db, TableCount(db, "never_reached")));
        Assert.Equal(1, await ScalarAsync(db, "SELECT count(*) FROM schema_migrations"));
        Assert.Equal(1, await ScalarAsync(db, "SELECT count(*) FROM schema_migrations WHERE version = '0001'"));

        // Once the script is fixed the run continues where it stopped.
        scripts[1] = Script("0002", "bad", "CREATE TABLE half_done (id integer NOT NULL PRIMARY KEY);");
        var result = await runner.RunAsync(scripts);
        Assert.Equal(["Database/test/0002_bad.sql", "Database/test/0003_later.sql"], result.Applied);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task An_applied_script_that_changed_is_refused(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider, migrate: false);
        var runner = new MigrationRunner(db.Provider, db.ConnectionString);
        await runner.RunAsync([Script("0001", "first", "CREATE TABLE first_one (id integer NOT NULL PRIMARY KEY);")]);

        IReadOnlyList<MigrationScript> edited =
        [
            Script("0001", "first", "CREATE TABLE first_one (id integer NOT NULL PRIMARY KEY, extra integer);"),
            Script("0002", "second", "CREATE TABLE second_one (id integer NOT NULL PRIMARY KEY);"),
        ];
        var e = await Assert.ThrowsAsync<MigrationException>(() => runner.RunAsync(edited));
        Assert.Contains("Database/test/0001_first.sql", e.Message);
        Assert.Contains("edited", e.Message);
        Assert.Equal(0, await ScalarAsync(db, TableCount(db, "second_one")));

        // Line endings alone are not an edit (a checkout on Windows must not block startup).
        var crlf = Script("0001", "first", "CREATE TABLE first_one (id integer NOT NULL PRIMARY KEY);".Replace("\n", "\r\n"));
        Assert.Empty((await runner.RunAsync([crlf])).Applied);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task A_database_upgraded_by_a_newer_build_is_refused(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await ExecAsync(db, "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ('9999', 'from_the_future', 'abc', '2030-01-01')");
        var runner = new MigrationRunner(db.Provider, db.ConnectionString);

        var run = await Assert.ThrowsAsync<MigrationException>(() => runner.RunAsync());
        Assert.Contains("9999", run.Message);
        Assert.Contains("newer", run.Message);
        var pending = await Assert.ThrowsAsync<MigrationException>(() => runner.PendingAsync());
        Assert.Contains("9999", pending.Message);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Pending_reports_scripts_not_yet_applied(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        var runner = new MigrationRunner(db.Provider, db.ConnectionString);
        Assert.Empty(await runner.PendingAsync());
        var first = MigrationRunner.LoadScripts(db.Provider)[0];
        await ExecAsync(db, $"DELETE FROM schema_migrations WHERE version = '{first.Version}'");
        Assert.Equal([first.ResourcePath], await runner.PendingAsync());
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Concurrent_runners_apply_each_script_once(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider, migrate: false);
        await new MigrationRunner(db.Provider, db.ConnectionString).RunAsync([]); // schema_migrations exists, nothing applied
        IReadOnlyList<MigrationScript> scripts =
        [
            Script("0001", "raced", "CREATE TABLE raced (id integer NOT NULL PRIMARY KEY);"),
            Script("0002", "after", "CREATE TABLE after_race (id integer NOT NULL PRIMARY KEY); INSERT INTO after_race (id) VALUES (1);"),
        ];

        // Hold the database so every runner is started and waiting before any can apply a script: on SQLite a write
        // lock (runners can still read the empty list), on PostgreSQL a lock on schema_migrations (the first runner
        // waits inside the advisory lock; without that lock all would read the empty list together).
        await using var holder = new MigrationRunner(db.Provider, db.ConnectionString).Open();
        await using var tx = await holder.BeginTransactionAsync();
        await using (var hold = holder.CreateCommand())
        {
            hold.Transaction = tx;
            hold.CommandText = db.Provider == DatabaseProvider.Sqlite
                ? "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ('0000', 'hold', 'x', 'x'); DELETE FROM schema_migrations WHERE version = '0000';"
                : "LOCK TABLE schema_migrations IN ACCESS EXCLUSIVE MODE";
            await hold.ExecuteNonQueryAsync();
        }
        var runs = Enumerable.Range(0, 4).Select(_ => Task.Run(() => new MigrationRunner(db.Provider, db.ConnectionString).RunAsync(scripts))).ToList();
        await Task.Delay(1500);
        Assert.All(runs, r => Assert.False(r.IsCompleted, r.Exception?.ToString()));
        await tx.CommitAsync();
        var results = await Task.WhenAll(runs);

        Assert.Equal(["Database/test/0001_raced.sql", "Database/test/0002_after.sql"], results.SelectMany(r => r.Applied).Order());
        Assert.All(results, r => Assert.Equal(2, r.Applied.Count + r.AlreadyApplied.Count));
        Assert.Equal(2, await ScalarAsync(db, "SELECT count(*) FROM schema_migrations"));
        Assert.Equal(1, await ScalarAsync(db, "SELECT count(*) FROM after_race"));
    }
}
