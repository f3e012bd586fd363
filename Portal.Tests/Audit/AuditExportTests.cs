using System.Text;
using System.Text.Json;
using CsvHelper;
using Portal.Domain;
using Portal.Domain.Audit;
using Portal.Tests.Infrastructure;
using static Portal.Tests.Audit.AuditTestData;

namespace Portal.Tests.Audit;

public class AuditExportTests
{
    private static readonly string[] Hostile =
    [
        "=cmd|' /C calc'!A0",
        "+SUM(A1:A9)",
        "-2+3",
        "@SUM(1)",
        "\tTabbed",
        "\rCarriage",
        "He said \"hi\", then left",
        "two\nlines\r\nand more",
        "<script>alert('x')</script><img src=x onerror=alert(1)>",
        "plain text",
    ];

    private static async Task<(TestDatabase Db, AuditWriter Writer, AuditExporter Exporter, Guid Project)> SeedAsync(string provider, ManualClock clock)
    {
        var db = await TestDatabase.CreateAsync(provider);
        var writer = Writer(db, clock);
        var project = Guid.CreateVersion7();
        for (var i = 0; i < Hostile.Length; i++)
        {
            await writer.AppendAsync(Draft(project, i) with { ResourceId = Hostile[i], Prompt = Hostile[(i + 1) % Hostile.Length] });
            clock.Advance(TimeSpan.FromMinutes(1));
        }
        return (db, writer, new AuditExporter(Database(db), writer), project);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Csv_neutralizes_formula_cells_and_round_trips_hostile_text(string provider)
    {
        var clock = new ManualClock();
        var (db, writer, exporter, project) = await SeedAsync(provider, clock);
        await using var _ = db;
        await using var __ = writer;
        using var output = new MemoryStream();
        var count = await exporter.ExportAsync(project, new AuditExportFilter { EventTypes = ["query.executed"] }, AuditExportFormat.Csv, output, Analyst);
        Assert.Equal(Hostile.Length, count);

        using var csv = CsvReader.Create(output.ToArray());
        var rows = new List<(string ResourceId, string Prompt, string Hash, string Seq)>();
        while (csv.Read())
            rows.Add((csv.GetString("resource_id"), csv.GetString("prompt"), csv.GetString("hash"), csv.GetString("seq")));
        Assert.Equal(Hostile.Length, rows.Count);
        var stored = await EventsAsync(db, project);
        for (var i = 0; i < Hostile.Length; i++)
        {
            Assert.Equal(Expected(Hostile[i]), rows[i].ResourceId);
            Assert.Equal(Expected(Hostile[(i + 1) % Hostile.Length]), rows[i].Prompt);
            Assert.Equal(Convert.ToHexStringLower(stored[i].Hash), rows[i].Hash);
            Assert.Equal((i + 1).ToString(), rows[i].Seq);
        }
        // The file never holds a raw formula at the start of a cell.
        var text = Encoding.UTF8.GetString(output.ToArray());
        Assert.DoesNotContain(",=cmd", text);
        Assert.Contains("\"'=cmd|' /C calc'!A0\"", text);

        static string Expected(string value) => value[0] is '=' or '+' or '-' or '@' or '\t' or '\r' ? "'" + value : value;
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Json_exports_keep_exact_text_and_hashes_that_recompute(string provider)
    {
        var clock = new ManualClock();
        var (db, writer, exporter, project) = await SeedAsync(provider, clock);
        await using var _ = db;
        await using var __ = writer;

        using var lines = new MemoryStream();
        await exporter.ExportAsync(project, new AuditExportFilter(), AuditExportFormat.JsonLines, lines, Analyst);
        var objects = Encoding.UTF8.GetString(lines.ToArray()).Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(Hostile.Length + 1, objects.Count); // the export's own event is in the trail before the rows are read
        Assert.Equal("audit.exported", objects[^1].GetProperty("event_type").GetString());
        for (var i = 0; i < Hostile.Length; i++) Assert.Equal(Hostile[i], objects[i].GetProperty("resource_id").GetString());

        using var array = new MemoryStream();
        await exporter.ExportAsync(project, new AuditExportFilter(), AuditExportFormat.JsonArray, array, Analyst);
        var items = JsonDocument.Parse(array.ToArray()).RootElement.EnumerateArray().ToList();
        Assert.True(items.Count >= Hostile.Length);
        // An auditor can re-derive each hash from the exported fields alone.
        var first = items[0];
        var e = new AuditEvent
        {
            ProjectId = first.GetProperty("project_id").GetGuid(), Seq = first.GetProperty("seq").GetInt64(), Id = first.GetProperty("id").GetGuid(),
            PrevHash = Convert.FromHexString(first.GetProperty("prev_hash").GetString()!), OccurredAt = first.GetProperty("occurred_at").GetDateTimeOffset(),
            EventType = first.GetProperty("event_type").GetString()!, ResourceType = first.GetProperty("resource_type").GetString(),
            ResourceId = first.GetProperty("resource_id").GetString(), Action = first.GetProperty("action").GetString(),
            ActorType = first.GetProperty("actor_type").GetString()!, ActorId = first.GetProperty("actor_id").GetString(),
            ActorEmail = first.GetProperty("actor_email").GetString(), ActorRole = first.GetProperty("actor_role").GetString(),
            SessionId = first.GetProperty("session_id").GetString(), Details = first.GetProperty("details").GetString(),
            BeforeState = first.GetProperty("before_state").GetString(), AfterState = first.GetProperty("after_state").GetString(),
            Prompt = first.GetProperty("prompt").GetString(), SqlText = first.GetProperty("sql_text").GetString(),
            TablesAccessed = first.GetProperty("tables_accessed").GetString(), Success = first.GetProperty("success").GetBoolean(),
            ErrorMessage = first.GetProperty("error_message").GetString(), DurationMs = first.GetProperty("duration_ms").GetInt64(),
            RowsReturned = first.GetProperty("rows_returned").GetInt64(), SecurityLevel = first.GetProperty("security_level").GetString()!,
            DataClassifications = first.GetProperty("data_classifications").GetString(), ClientIp = first.GetProperty("client_ip").GetString(),
            UserAgent = first.GetProperty("user_agent").GetString(), RequestId = first.GetProperty("request_id").GetString(),
        };
        Assert.Equal(first.GetProperty("hash").GetString(), Convert.ToHexStringLower(AuditHash.Compute(e)));
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Filters_apply_and_the_export_itself_is_audited(string provider)
    {
        var clock = new ManualClock();
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var writer = Writer(db, clock);
        var exporter = new AuditExporter(Database(db), writer);
        var project = Guid.CreateVersion7();
        var otherProject = Guid.CreateVersion7();
        var start = clock.GetUtcNow();
        for (var i = 0; i < 10; i++)
        {
            await writer.AppendAsync(Draft(project, i, i % 2 == 0 ? "query.executed" : "query.denied") with
            {
                SecurityLevel = i == 3 ? AuditSecurityLevel.Alert : AuditSecurityLevel.Normal,
                Actor = i < 4 ? Analyst : Analyst with { Id = "u-99", Email = "bob@example.com" },
                SqlText = i == 8 ? "SELECT ssn FROM 100%_customers" : "SELECT 1",
            });
            clock.Advance(TimeSpan.FromHours(1));
        }
        await writer.AppendAsync(Draft(otherProject, 1));

        async Task<long> Count(AuditExportFilter f) => await exporter.ExportAsync(project, f, AuditExportFormat.JsonLines, Stream.Null, Analyst);
        Assert.Equal(5, await Count(new AuditExportFilter { EventTypes = ["query.denied"] }));
        Assert.Equal(3, await Count(new AuditExportFilter { From = start.AddHours(2), To = start.AddHours(5) }));
        Assert.Equal(6, await Count(new AuditExportFilter { Actor = "bob@example.com" }));
        Assert.Equal(6, await Count(new AuditExportFilter { Actor = "u-99" }));
        Assert.Equal(1, await Count(new AuditExportFilter { SecurityLevel = AuditSecurityLevel.Alert }));
        string[] queries = ["query.executed", "query.denied"]; // earlier exports' details hold the search text too
        Assert.Equal(1, await Count(new AuditExportFilter { Text = "SSN from 100%_", EventTypes = queries }));
        Assert.Equal(0, await Count(new AuditExportFilter { Text = "100%x", EventTypes = queries }));
        Assert.Equal(2, await Count(new AuditExportFilter { Text = "100%x", EventTypes = ["audit.exported"] })); // the previous export and this one

        var exports = (await EventsAsync(db, project)).Where(e => e.EventType == "audit.exported").ToList();
        Assert.Equal(8, exports.Count);
        Assert.Contains("query.denied", exports[0].Details);
        Assert.Equal(("ana@example.com", "export"), (exports[0].ActorEmail, exports[0].Action));
        Assert.Single(await EventsAsync(db, otherProject)); // exports of one project never touch another's chain
        var v = await VerifyAsync(db, project);
        Assert.True(v.Ok, v.ToString());

        var bad = await Assert.ThrowsAsync<DomainException>(() => Count(new AuditExportFilter { From = start, To = start }));
        Assert.Equal("To", bad.Field);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Nothing_is_exported_when_the_export_cannot_be_audited(string provider)
    {
        var clock = new ManualClock();
        var (db, writer, exporter, project) = await SeedAsync(provider, clock);
        await using var _ = db;
        await using var __ = writer;
        await ExecAsync(db, "ALTER TABLE audit_events RENAME TO audit_events_away");
        using var output = new MemoryStream();
        var e = await Assert.ThrowsAsync<DomainException>(() => exporter.ExportAsync(project, new AuditExportFilter(), AuditExportFormat.Csv, output, Analyst));
        Assert.Equal(ErrorKind.Unavailable, e.Kind);
        Assert.Equal(0, output.Length);
    }
}
