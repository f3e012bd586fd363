using Microsoft.Data.Sqlite;
using Portal.Domain.Gateway;

namespace Portal.Tests.Gateway;

/// <summary>
/// The SQLite engine keeps open sessions with prepared statements and their analysis (tables read, origin columns).
/// That analysis belongs to the SQL text and the schema: a changed schema, a changed SQL or a replaced file must
/// never be answered with the old one, or masking would trust a stale origin.
/// </summary>
public sealed class SqliteSessionTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);
    private readonly string dir = Path.Combine(Path.GetTempPath(), "portal-tests", "sess-" + Guid.NewGuid().ToString("N"));
    private string File => Path.Combine(dir, "ds.db");

    public SqliteSessionTests() => Directory.CreateDirectory(dir);

    public void Dispose()
    {
        SqliteEngine.ReleaseSessions(File);
        SqliteConnection.ClearAllPools();
        try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
    }

    private void Write(string sql)
    {
        using var conn = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = File, Pooling = false, DefaultTimeout = 2 }.ToString());
        conn.Open();
        using var cmd = conn.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    [Fact]
    public async Task A_changed_schema_or_sql_is_analysed_again_and_never_served_from_the_old_statement()
    {
        Write("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, ssn TEXT); INSERT INTO people VALUES (1, 'Ann', '123-45-6789');" +
              "CREATE VIEW shown AS SELECT id, name AS label FROM people;");
        var engine = new SqliteEngine(File);
        const string sql = "SELECT label FROM shown WHERE id = @id";
        IReadOnlyList<TypedParameter> id = [new("id", ParameterType.Int, 1L)];

        for (var i = 0; i < 3; i++)
        {
            var warm = await engine.ExecuteAsync(sql, id, 10, Timeout);
            Assert.Equal("people.name", warm.Columns[0].Origin);
            Assert.Equal("Ann", warm.Rows[0][0]);
            Assert.Contains(new ColumnRead("people", "name"), warm.Analysis.ColumnsRead);
            Assert.DoesNotContain(new ColumnRead("people", "ssn"), warm.Analysis.ColumnsRead);
        }

        // The view now exposes the SSN under the same name: the next call must see the new origin, not the cached one.
        Write("DROP VIEW shown; CREATE VIEW shown AS SELECT id, ssn AS label FROM people;");
        var after = await engine.ExecuteAsync(sql, id, 10, Timeout);
        Assert.Equal("people.ssn", after.Columns[0].Origin);
        Assert.Equal("123-45-6789", after.Rows[0][0]);
        Assert.Contains(new ColumnRead("people", "ssn"), after.Analysis.ColumnsRead);
        // A new engine object (the gateway builds one whenever its lookups expire) shares the sessions and sees the same.
        Assert.Equal("people.ssn", (await new SqliteEngine(File).ExecuteAsync(sql, id, 10, Timeout)).Columns[0].Origin);

        // Other SQL on the same sessions gets its own statement and analysis.
        var other = await engine.ExecuteAsync("SELECT name, 1 + 1 AS two FROM people WHERE id = @id", id, 10, Timeout);
        Assert.Equal(new string?[] { "people.name", null }, other.Columns.Select(c => c.Origin));
        Assert.True(other.Analysis.OriginsTrusted);
        var union = await engine.ExecuteAsync("SELECT name FROM people WHERE id = @id UNION SELECT ssn FROM people", id, 10, Timeout);
        Assert.False(union.Analysis.OriginsTrusted);

        // A dropped table fails the call instead of running a stale statement.
        Write("DROP VIEW shown;");
        var gone = await Assert.ThrowsAsync<DatasourceException>(() => engine.ExecuteAsync(sql, id, 10, Timeout));
        Assert.Equal(DatasourceErrorKind.Syntax, gone.Kind);

        // Writes are still refused by the engine on a reused session, and the session stays usable afterwards.
        var write = await Assert.ThrowsAsync<DatasourceException>(() => engine.ExecuteAsync("DELETE FROM people WHERE id = @id", id, 10, Timeout));
        Assert.Equal(DatasourceErrorKind.Rejected, write.Kind);
        Assert.Equal("Ann", (await engine.ExecuteAsync("SELECT name FROM people WHERE id = @id", id, 10, Timeout)).Rows[0][0]);
    }

    [Fact]
    public async Task A_file_replaced_at_the_same_path_is_read_afresh_and_a_deleted_one_fails()
    {
        Write("CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('old');");
        var engine = new SqliteEngine(File);
        Assert.Equal("old", (await engine.ExecuteAsync("SELECT v FROM t", [], 10, Timeout)).Rows[0][0]);

        System.IO.File.Delete(File);
        var missing = await Assert.ThrowsAsync<DatasourceException>(() => engine.ExecuteAsync("SELECT v FROM t", [], 10, Timeout));
        Assert.Equal(DatasourceErrorKind.Failed, missing.Kind);

        // Creation times on some file systems have coarse resolution; make the new file's birth unmistakably later.
        await Task.Delay(20);
        Write("CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('new');");
        Assert.Equal("new", (await engine.ExecuteAsync("SELECT v FROM t", [], 10, Timeout)).Rows[0][0]);
    }

    [Fact]
    public async Task A_timeout_on_a_reused_session_leaves_it_usable_and_bound_values_do_not_leak()
    {
        Write("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1), (2);");
        var engine = new SqliteEngine(File);
        const string slow = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n WHERE i > @x";
        var timeout = await Assert.ThrowsAsync<DatasourceException>(() =>
            engine.ExecuteAsync(slow, [new("x", ParameterType.Int, 0L)], 10, TimeSpan.FromMilliseconds(50)));
        Assert.Equal(DatasourceErrorKind.Timeout, timeout.Kind);

        // The same statement reused with another value answers for that value only.
        const string pick = "SELECT v FROM t WHERE v = @v";
        Assert.Equal(2L, (await engine.ExecuteAsync(pick, [new("v", ParameterType.Int, 2L)], 10, Timeout)).Rows[0][0]);
        Assert.Equal(1L, (await engine.ExecuteAsync(pick, [new("v", ParameterType.Int, 1L)], 10, Timeout)).Rows[0][0]);
        var none = await Assert.ThrowsAsync<DatasourceException>(() => engine.ExecuteAsync(pick, [], 10, Timeout));
        Assert.Equal(DatasourceErrorKind.Parameters, none.Kind);

        // An idle session holds no read lock: in rollback-journal mode this commit would wait and fail if one did.
        Write("INSERT INTO t VALUES (3);");
        Assert.Equal(3L, (await engine.ExecuteAsync(pick, [new("v", ParameterType.Int, 3L)], 10, Timeout)).Rows[0][0]);
    }
}
