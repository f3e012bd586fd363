using Portal.Domain.Audit;
using Portal.Domain.Persistence;
using Portal.Tests.Infrastructure;
using static Portal.Tests.Audit.AuditTestData;

namespace Portal.Tests.Audit;

/// <summary>
/// On SQLite the verifier reads each row straight from the statement's values when the loaded library passed the
/// layout check, and through SQLite's column functions otherwise. Both readers must give the same answer for every
/// row, including rows someone rewrote with values of another storage type than the writer used (SQLite lets a
/// column hold any type). SQLite only: PostgreSQL columns have fixed types and are read from a binary COPY stream.
/// </summary>
public class AuditSqliteRowReaderTests
{
    [Fact]
    public void The_bundled_SQLite_library_is_read_directly_on_the_machines_we_ship_to()
    {
        // The fast reader is only a speed-up, so the product works without it; but the tests must exercise it (on the
        // 64-bit Linux we build and ship on), or the other verification and export tests would silently be testing the
        // fallback only.
        Assert.True(AuditVerifier.ReadsSqliteRowsDirectly, "the SQLite result-row layout check failed with the bundled library");
    }

    private static async Task<(AuditVerification Direct, AuditVerification ColumnApi)> BothWaysAsync(TestDatabase db, Guid project)
    {
        var database = Database(db);
        // One range and at least one parallel split, each read both ways.
        var direct = await new AuditVerifier(database) { ParallelRanges = 1 }.VerifyAsync(project);
        var api = await new AuditVerifier(database) { ParallelRanges = 1, SqliteColumnApiOnly = true }.VerifyAsync(project);
        Assert.Equal(direct, await new AuditVerifier(database) { ParallelRanges = 3, MinEventsPerRange = 5 }.VerifyAsync(project));
        Assert.Equal(api, await new AuditVerifier(database) { ParallelRanges = 3, MinEventsPerRange = 5, SqliteColumnApiOnly = true }.VerifyAsync(project));
        return (direct, api);
    }

    private static async Task<string> TextAsync(TestDatabase db, string sql)
    {
        await using var c = new Microsoft.Data.Sqlite.SqliteConnection(db.ConnectionString);
        await c.OpenAsync();
        await using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        return (string)(await cmd.ExecuteScalarAsync())!;
    }

    private static async Task<(TestDatabase Db, Guid Project)> SeedAsync()
    {
        var db = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var project = Guid.CreateVersion7();
        await using var writer = Writer(db);
        for (var i = 1; i <= 20; i++) await writer.AppendAsync(Draft(project, i));
        return (db, project);
    }

    [Fact]
    public async Task An_intact_chain_reads_the_same_both_ways()
    {
        var (db, project) = await SeedAsync();
        await using var _ = db;
        var (direct, api) = await BothWaysAsync(db, project);
        Assert.True(direct.Ok, direct.ToString());
        Assert.Equal(20, direct.EventsChecked);
        Assert.Equal(api, direct);
    }

    [Theory]
    // Each reads like the original through SQLite's column functions (8.5 reads as 8, a blob reads as its bytes), so
    // without the type check the altered row would verify.
    [InlineData("duration_ms = duration_ms + 0.5", "duration_ms", "real", "a real that reads as the same integer")]
    [InlineData("actor_email = CAST(actor_email AS BLOB)", "actor_email", "blob", "the same e-mail bytes stored as a blob")]
    [InlineData("sql_text = CAST(sql_text AS BLOB)", "sql_text", "blob", "the same SQL stored as a blob")]
    [InlineData("prev_hash = CAST(prev_hash AS TEXT)", "prev_hash", "text", "the previous hash stored as text")]
    [InlineData("hash = CAST(hash AS TEXT)", "hash", "text", "the hash stored as text")]
    [InlineData("id = CAST(id AS BLOB)", "id", "blob", "the event id stored as a blob")]
    // Changed values of every kind.
    [InlineData("rows_returned = 'many'", "rows_returned", "text", "text in an integer column")]
    [InlineData("prompt = 12345", "prompt", "text", "a number in a text column (stored as text)")]
    [InlineData("actor_email = CAST('mallory@example.com' AS BLOB)", "actor_email", "blob", "other bytes as a blob")]
    [InlineData("details = zeroblob(4)", "details", "blob", "a zero-filled blob")]
    [InlineData("request_id = NULL", "request_id", "null", "NULL where there was text")]
    [InlineData("success = 'yes'", "success", "text", "text where a flag was")]
    public async Task A_changed_value_of_any_storage_type_breaks_the_chain_at_that_event_both_ways(string set, string column, string storedAs, string what)
    {
        var (db, project) = await SeedAsync();
        await using var _ = db;
        var where = $"project_id = '{project.ToString().ToUpperInvariant()}' AND seq = 8";
        await ExecAsync(db, $"UPDATE audit_events SET {set} WHERE {where}");
        Assert.Equal(storedAs, await TextAsync(db, $"SELECT typeof({column}) FROM audit_events WHERE {where}"));
        var (direct, api) = await BothWaysAsync(db, project);
        Assert.False(direct.Ok, $"{what} went unnoticed");
        Assert.Equal(8, direct.FirstBrokenSeq);
        Assert.Equal(7, direct.EventsChecked);
        Assert.Contains("does not match its hash", direct.Problem);
        Assert.Equal(api, direct);
    }
}
