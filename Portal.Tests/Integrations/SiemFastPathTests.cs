using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Portal.Domain.Audit;
using Portal.Domain.Integrations;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Integrations;

/// <summary>
/// The export's fast path (raw row cursor, UTF-8 formatting, read-ahead) must produce exactly what the string-based
/// formats produced: CEF and syslog are compared byte for byte with the original StringBuilder implementation, and an
/// exported event with every field set is compared with the same event read through EF.
/// </summary>
public class SiemFastPathTests
{
    private static AuditEvent Event(string type, string? sql, string? error, string? email, string? resourceType) => new()
    {
        ProjectId = Guid.Parse("0193a0b0-0000-7000-8000-000000000001"), Seq = 7, Id = Guid.Parse("0193a0b0-0000-7000-8000-0000000000aa"),
        OccurredAt = new DateTimeOffset(2026, 11, 1, 9, 0, 0, 123, TimeSpan.Zero).AddTicks(4567), EventType = type, ActorType = "user", ActorId = "ü|id\\=",
        ActorEmail = email, ClientIp = "::1", SqlText = sql, ErrorMessage = error, SecurityLevel = "alert", ResourceType = resourceType,
        ResourceId = resourceType is null ? null : "r=1\n", Action = "run\r", Success = true, Hash = new byte[32], PrevHash = new byte[32],
    };

    public static TheoryData<string, string?, string?, string?, string?> Cases() => new()
    {
        { "gateway.query_executed", "SELECT 'é' = \\ \n", null, "a=b@bänk.test", "query" },
        { "evil|type\\with\r\nbreaks", null, "fehler: ü=1\\", null, null },
        { "日本語.event", "", "", "", "" },
        { "x", "a\u2028b \ud83d\ude00 = |", null, "p|q", "r" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Utf8_cef_and_syslog_lines_are_byte_for_byte_the_string_formats(string type, string? sql, string? error, string? email, string? resourceType)
    {
        var e = Event(type, sql, error, email, resourceType);
        var reference = ReferenceCef(e);
        Assert.Equal(reference, SiemFormatting.Cef(e));
        var utf8 = new ArrayBufferWriter<byte>();
        SiemFormatting.WriteCef(utf8, e);
        Assert.Equal(Encoding.UTF8.GetBytes(reference), utf8.WrittenSpan.ToArray());

        Assert.Equal(ReferenceSyslogLine(e, reference, "höst"), SiemFormatting.SyslogLine(e, reference, "höst"));
        var framed = new ArrayBufferWriter<byte>();
        var header = new ArrayBufferWriter<byte>();
        SiemFormatting.WriteSyslogHeader(header, e, "höst");
        header.Write(utf8.WrittenSpan);
        SiemFormatting.Frame(framed, header.WrittenSpan);
        var byString = new ArrayBufferWriter<byte>();
        SiemFormatting.Frame(byString, ReferenceSyslogLine(e, reference, "höst"));
        Assert.Equal(byString.WrittenSpan.ToArray(), framed.WrittenSpan.ToArray());
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Exported_events_carry_every_field_exactly_as_read_through_ef_in_order_across_read_ahead_batches(string provider)
    {
        await using var world = await IntegrationWorld.CreateAsync(provider);
        await using var receiver = await HttpReceiver.StartAsync();
        await using var receiverAll = await HttpReceiver.StartAsync();
        var writer = world.Services.GetService(typeof(AuditWriter)) as AuditWriter ?? throw new InvalidOperationException();
        for (var i = 0; i < 23; i++)
            await writer.AppendAsync(new AuditEventDraft
            {
                ProjectId = world.ProjectId, EventType = i % 3 == 0 ? "member.role_changed" : "gateway.query_executed",
                Actor = new AuditActor("user", "u-ü" + i, Email: i % 2 == 0 ? $"user{i}@bänk.test" : null, Role: "admin", ClientIp: "10.0.0." + i, RequestId: "rq" + i),
                ResourceType = i % 4 == 0 ? null : "query", ResourceId = "q=" + i, Action = "run", SqlText = i % 5 == 0 ? null : "SELECT \"x\" FROM t WHERE a = 'é\n'",
                Success = i % 2 == 1, ErrorMessage = i % 2 == 1 ? "denied \\ " + i : null, DurationMs = i % 3 == 0 ? null : i, RowsReturned = i,
                SecurityLevel = (AuditSecurityLevel)(i % 3), Details = "{\"n\":" + i + "}",
            });
        // Batches of 5 and a filter: several read-ahead batches, some selecting nothing.
        var hec = await world.Siem.CreateAsync(world.ProjectId, world.Admin, new SiemDraft("Splunk", "splunk_hec", "json", receiver.Url, "t", "member.", 5));
        var all = await world.Siem.CreateAsync(world.ProjectId, world.Admin, new SiemDraft("Splunk all", "splunk_hec", "json", receiverAll.Url, "t", null, 5));
        for (var i = 0; i < 3; i++) { await world.Exporter.RunOnceAsync("w"); world.Clock.Advance(TimeSpan.FromSeconds(1)); }

        List<AuditEvent> stored;
        await using (var db = await world.Factory.CreateDbContextAsync())
            stored = await db.AuditEvents.AsNoTracking().Where(e => e.ProjectId == world.ProjectId).OrderBy(e => e.Seq).ToListAsync();
        var expected = stored.ToDictionary(e => e.Seq, e =>
        {
            var buffer = new ArrayBufferWriter<byte>();
            using (var w = new Utf8JsonWriter(buffer)) SiemFormatting.WriteJson(w, e);
            return Encoding.UTF8.GetString(buffer.WrittenSpan);
        });

        var filtered = receiver.Accepted.SelectMany(r => Events(r.Body)).Select(e => e.GetProperty("event")).ToList();
        var hecRow = await world.IntegrationAsync(hec.Id);
        Assert.Equal(stored.Where(e => e.EventType.StartsWith("member.", StringComparison.Ordinal) && e.Seq <= hecRow.CursorSeq).Select(e => e.Seq),
            filtered.Select(e => e.GetProperty("seq").GetInt64()));
        Assert.Equal(filtered.Count, hecRow.ExportedCount);

        var everything = receiverAll.Accepted.SelectMany(r => Events(r.Body)).Select(e => e.GetProperty("event")).ToList();
        var allRow = await world.IntegrationAsync(all.Id);
        Assert.True(allRow.CursorSeq >= 25); // 23 events, the two integrations' creation
        Assert.Equal(Enumerable.Range(1, (int)allRow.CursorSeq).Select(n => (long)n), everything.Select(e => e.GetProperty("seq").GetInt64()));
        foreach (var e in filtered.Concat(everything)) Assert.Equal(expected[e.GetProperty("seq").GetInt64()], e.GetRawText());
    }

    private static List<JsonElement> Events(string concatenated) => SiemExportTests.Events(concatenated);

    // The string implementation the UTF-8 writers replaced, kept as the reference.
    private static string ReferenceCef(AuditEvent e)
    {
        var sb = new StringBuilder(256);
        sb.Append("CEF:0|");
        SiemFormatting.Header(sb, SiemFormatting.Vendor); sb.Append('|');
        SiemFormatting.Header(sb, SiemFormatting.Product); sb.Append('|');
        SiemFormatting.Header(sb, SiemFormatting.ProductVersion); sb.Append('|');
        SiemFormatting.Header(sb, e.EventType); sb.Append('|');
        SiemFormatting.Header(sb, e.EventType); sb.Append('|');
        sb.Append(e.SecurityLevel switch { "alert" => 8, "warning" => 5, _ => 3 }).Append('|');
        Ext(sb, "rt", e.OccurredAt.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture), first: true);
        Ext(sb, "externalId", e.Seq.ToString(CultureInfo.InvariantCulture));
        Ext(sb, "outcome", e.Success ? "success" : "failure");
        Ext(sb, "suser", e.ActorEmail ?? e.ActorId);
        Ext(sb, "suid", e.ActorId);
        Ext(sb, "src", e.ClientIp);
        Ext(sb, "act", e.Action);
        Ext(sb, "cs1Label", e.ResourceType is null ? null : "resourceType");
        Ext(sb, "cs1", e.ResourceType);
        Ext(sb, "cs2Label", e.ResourceId is null ? null : "resourceId");
        Ext(sb, "cs2", e.ResourceId);
        Ext(sb, "cs3Label", "projectId");
        Ext(sb, "cs3", e.ProjectId.ToString());
        Ext(sb, "msg", e.ErrorMessage ?? e.SqlText);
        return sb.ToString();

        static void Ext(StringBuilder sb, string key, string? value, bool first = false)
        {
            if (value is null) return;
            if (!first) sb.Append(' ');
            sb.Append(key).Append('=');
            SiemFormatting.ExtValue(sb, value);
        }
    }

    private static string ReferenceSyslogLine(AuditEvent e, string message, string hostname)
    {
        var pri = 13 * 8 + SiemFormatting.SyslogSeverity(e.SecurityLevel);
        var msgId = new string(e.EventType.Where(ch => ch is > (char)32 and < (char)127).Take(32).ToArray());
        if (msgId.Length == 0) msgId = "-";
        return string.Create(CultureInfo.InvariantCulture, $"<{pri}>1 {e.OccurredAt.UtcDateTime:yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'} {hostname} governance-portal - {msgId} - {message}");
    }
}
