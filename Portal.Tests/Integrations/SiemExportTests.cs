using System.Text;
using System.Text.Json;
using Portal.Domain;
using Portal.Domain.Audit;
using Portal.Domain.Integrations;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Integrations;

public class SiemFormatTests
{
    private static AuditEvent Event(string type = "gateway.query_executed", string level = "normal") => new()
    {
        ProjectId = Guid.Parse("0193a0b0-0000-7000-8000-000000000001"), Seq = 42, Id = Guid.Parse("0193a0b0-0000-7000-8000-0000000000aa"),
        OccurredAt = new DateTimeOffset(2026, 11, 1, 9, 0, 0, TimeSpan.Zero), EventType = type, ActorType = "api_key", ActorId = "key|1\\x",
        ActorEmail = "a=b@bank.test", ClientIp = "10.0.0.9", SqlText = "SELECT *\nFROM t WHERE a = 'x=y' -- \\", Success = false,
        ErrorMessage = "denied\r\nline2", SecurityLevel = level, ResourceType = "query", ResourceId = "q1", Hash = new byte[32], PrevHash = new byte[32],
    };

    [Fact]
    public void Cef_escapes_pipes_and_backslashes_in_the_header_and_equals_backslashes_and_newlines_in_extensions()
    {
        var cef = SiemFormatting.Cef(Event("evil|type\\x", "alert"));
        Assert.StartsWith("CEF:0|GovernancePortal|Governance Portal|1.0|evil\\|type\\\\x|evil\\|type\\\\x|8|", cef);
        Assert.Contains("suser=a\\=b@bank.test", cef);
        Assert.Contains("suid=key|1\\\\x", cef); // a pipe needs no escape in an extension value
        Assert.Contains("msg=denied\\r\\nline2", cef);
        Assert.Contains("rt=1793523600000", cef);
        Assert.Contains("outcome=failure", cef);
        Assert.DoesNotContain('\n', cef);

        var header = new StringBuilder();
        SiemFormatting.Header(header, "a|b\\c");
        Assert.Equal("a\\|b\\\\c", header.ToString());
        var ext = new StringBuilder();
        SiemFormatting.ExtValue(ext, "k=v\\w\nx");
        Assert.Equal("k\\=v\\\\w\\nx", ext.ToString());
    }

    [Theory]
    [InlineData("gateway.query_executed", 6, 6005, 4, 600504)]
    [InlineData("gateway.query_denied", 6, 6005, 4, 600504)]
    [InlineData("gateway.queries_listed", 6, 6003, 2, 600302)]
    [InlineData("auth.sign_in_succeeded", 3, 3002, 1, 300201)]
    [InlineData("auth.signed_out", 3, 3002, 2, 300202)]
    [InlineData("alert.created", 2, 2004, 1, 200401)]
    [InlineData("alert.updated", 2, 2004, 2, 200402)]
    [InlineData("member.added", 6, 6003, 1, 600301)]
    [InlineData("api_key.revoked", 6, 6003, 4, 600304)]
    [InlineData("member.role_changed", 6, 6003, 3, 600303)]
    public void Ocsf_class_and_type_uids_follow_the_schema_arithmetic(string type, int category, int classUid, int activity, int typeUid)
    {
        var c = SiemFormatting.Classify(type);
        Assert.Equal(category, c.CategoryUid);
        Assert.Equal(classUid, c.ClassUid);
        Assert.Equal(category * 1000 + classUid % 1000, c.ClassUid);
        Assert.Equal(activity, c.ActivityId);
        Assert.Equal(typeUid, c.TypeUid);
        Assert.Equal(c.ClassUid * 100 + c.ActivityId, c.TypeUid);

        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer)) SiemFormatting.WriteOcsf(w, Event(type));
        using var doc = JsonDocument.Parse(buffer.WrittenMemory);
        var root = doc.RootElement;
        Assert.Equal(classUid, root.GetProperty("class_uid").GetInt32());
        Assert.Equal(category, root.GetProperty("category_uid").GetInt32());
        Assert.Equal(typeUid, root.GetProperty("type_uid").GetInt32());
        Assert.Equal(1793523600000, root.GetProperty("time").GetInt64());
        Assert.Equal(2, root.GetProperty("status_id").GetInt32());
        Assert.Equal("1.1.0", root.GetProperty("metadata").GetProperty("version").GetString());
        Assert.Equal(42, root.GetProperty("metadata").GetProperty("sequence").GetInt64());
    }

    [Fact]
    public void Syslog_lines_follow_rfc_5424_and_octet_counting_frames_parse_back_across_reads()
    {
        var e = Event("auth.sign_in_failed", "warning");
        var line = SiemFormatting.SyslogLine(e, "héllo wörld", "portal-test");
        Assert.Equal("<108>1 2026-11-01T09:00:00.000000Z portal-test governance-portal - auth.sign_in_failed - héllo wörld", line);
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        SiemFormatting.Frame(buffer, line);
        SiemFormatting.Frame(buffer, "second\nline");
        var bytes = buffer.WrittenSpan.ToArray();
        Assert.StartsWith($"{Encoding.UTF8.GetByteCount(line)} <108>", Encoding.UTF8.GetString(bytes));
        // Delivered in two arbitrary pieces, as TCP may.
        var pending = new List<byte>(bytes[..17]);
        Assert.Empty(SiemFormatting.ParseFrames(pending));
        pending.AddRange(bytes[17..]);
        Assert.Equal([line, "second\nline"], SiemFormatting.ParseFrames(pending));
        Assert.Empty(pending);
    }
}

public class SiemExportTests
{
    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Splunk_hec_receiver_down_for_an_hour_gets_every_event_once_in_order_after_recovery(string provider)
    {
        await using var world = await IntegrationWorld.CreateAsync(provider);
        await using var receiver = await HttpReceiver.StartAsync();
        var down = true;
        receiver.Behave = (_, _) => down ? 503 : 200;
        receiver.ResponseBody = "{\"text\":\"Success\",\"code\":0}";
        await world.AuditAsync(250);
        var hec = await world.Siem.CreateAsync(world.ProjectId, world.Admin, new SiemDraft("Splunk", "splunk_hec", "json", receiver.Url, "hec-token-123", null, 100));
        var start = world.Clock.GetUtcNow();
        var attempts = 0;
        while (world.Clock.GetUtcNow() - start < TimeSpan.FromHours(1))
        {
            var r = await world.Exporter.RunOnceAsync("w");
            attempts += r.Integrations;
            world.Clock.Advance(TimeSpan.FromSeconds(30));
        }
        var i = await world.IntegrationAsync(hec.Id);
        Assert.Equal(SiemStatus.Retrying, i.Status);
        Assert.Equal(0, i.CursorSeq);
        Assert.Contains("503", i.LastError);
        // Exponential backoff with jitter, capped at an hour: far fewer attempts than the 120 polls.
        Assert.InRange(attempts, 5, 12);
        var listed = (await world.Siem.ListAsync(world.ProjectId)).Items.Single();
        Assert.True(listed.EventsBehind >= 250);
        Assert.NotNull(listed.OldestUnexportedAge);

        down = false;
        world.Clock.Advance(TimeSpan.FromHours(1));
        await world.Exporter.RunOnceAsync("w");
        i = await world.IntegrationAsync(hec.Id);
        Assert.Equal(SiemStatus.Active, i.Status);
        var accepted = receiver.Accepted;
        Assert.All(accepted, r => Assert.Equal("Splunk hec-token-123", r.Headers["authorization"]));
        Assert.All(accepted, r => Assert.Equal("/services/collector/event", r.Path));
        var seqs = accepted.SelectMany(r => Events(r.Body)).Select(e => e.GetProperty("event").GetProperty("seq").GetInt64()).ToList();
        Assert.Equal(Enumerable.Range(1, (int)i.CursorSeq).Select(n => (long)n).ToList(), seqs); // every event once, in order
        Assert.True(i.CursorSeq >= 251); // the audited creation of the integration is exported too
        Assert.Equal(0, (await world.Siem.ListAsync(world.ProjectId)).Items.Single().EventsBehind);
    }

    /// <summary>The events of a Splunk HEC body (JSON objects concatenated without separators).</summary>
    internal static List<JsonElement> Events(string concatenated)
    {
        var list = new List<JsonElement>();
        var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(concatenated), new JsonReaderOptions { AllowMultipleValues = true });
        while (reader.Read())
        {
            using var doc = JsonDocument.ParseValue(ref reader);
            list.Add(doc.RootElement.Clone());
        }
        return list;
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task A_refusing_4xx_stops_the_integration_with_a_visible_error_until_resumed(string provider)
    {
        await using var world = await IntegrationWorld.CreateAsync(provider);
        await using var receiver = await HttpReceiver.StartAsync();
        var refuse = true;
        receiver.Behave = (_, _) => refuse ? 403 : 200;
        receiver.ResponseBody = "{\"text\":\"Invalid token\",\"code\":4}";
        await world.AuditAsync(10);
        var hec = await world.Siem.CreateAsync(world.ProjectId, world.Admin, new SiemDraft("Splunk", "splunk_hec", "ocsf", receiver.Url, "bad", null, 100));
        var r = await world.Exporter.RunOnceAsync("w");
        Assert.Equal(1, r.Failures);
        var row = (await world.Siem.ListAsync(world.ProjectId)).Items.Single();
        Assert.Equal(SiemStatus.Stopped, row.Status);
        Assert.Contains("403", row.LastError);
        Assert.Contains("Invalid token", row.LastError);
        world.Clock.Advance(TimeSpan.FromHours(2));
        Assert.Equal(0, (await world.Exporter.RunOnceAsync("w")).Integrations);
        Assert.Single(receiver.Requests);

        refuse = false;
        await world.Siem.ResumeAsync(world.ProjectId, hec.Id, world.Admin);
        await world.Exporter.RunOnceAsync("w");
        row = (await world.Siem.ListAsync(world.ProjectId)).Items.Single();
        Assert.Equal(SiemStatus.Active, row.Status);
        Assert.True(row.CursorSeq >= 11);
        var ocsf = Events(receiver.Accepted.Last().Body).First().GetProperty("event");
        Assert.Equal(6005, ocsf.GetProperty("class_uid").GetInt32());
        Assert.Equal("ocsf", Events(receiver.Accepted.Last().Body).First().GetProperty("sourcetype").GetString());
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task A_crash_after_the_receiver_accepted_resends_only_that_batch(string provider)
    {
        await using var world = await IntegrationWorld.CreateAsync(provider);
        await using var receiver = await HttpReceiver.StartAsync();
        await world.AuditAsync(30);
        var hec = await world.Siem.CreateAsync(world.ProjectId, world.Admin, new SiemDraft("Splunk", "splunk_hec", "json", receiver.Url, "t", null, 10));
        var batches = 0;
        world.Exporter.AfterSendBeforeAdvance = () => ++batches == 2 ? throw new InvalidOperationException("process killed") : Task.CompletedTask;
        await Assert.ThrowsAsync<InvalidOperationException>(() => world.Exporter.ExportAsync(hec.Id, "crashing"));
        world.Exporter.AfterSendBeforeAdvance = null;
        Assert.Equal(10, (await world.IntegrationAsync(hec.Id)).CursorSeq);
        await world.Exporter.RunOnceAsync("w2");
        var seqs = receiver.Accepted.SelectMany(r => Events(r.Body)).Select(e => e.GetProperty("event").GetProperty("seq").GetInt64()).ToList();
        var dupes = seqs.GroupBy(s => s).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        Assert.Equal(Enumerable.Range(11, 10).Select(n => (long)n).ToList(), dupes); // exactly the interrupted batch
        Assert.Equal(seqs.Distinct().Order().ToList(), seqs.Distinct().ToList());
        Assert.Equal((await world.IntegrationAsync(hec.Id)).CursorSeq, seqs.Max());
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Datadog_gets_gzip_json_arrays_of_at_most_1000_entries_with_the_api_key(string provider)
    {
        await using var world = await IntegrationWorld.CreateAsync(provider);
        await using var receiver = await HttpReceiver.StartAsync();
        receiver.Behave = (_, _) => 202;
        await world.AuditAsync(1500);
        var dd = await world.Siem.CreateAsync(world.ProjectId, world.Admin, new SiemDraft("Datadog", "datadog", "cef", receiver.Url, "dd-key-1", "gateway.", 5000));
        Assert.Equal(1000, dd.BatchSize); // capped to Datadog's limit
        await world.Exporter.RunOnceAsync("w");
        Assert.Equal(2, receiver.Accepted.Count);
        var total = 0;
        foreach (var r in receiver.Accepted)
        {
            Assert.Equal("gzip", r.Headers["content-encoding"]);
            Assert.Equal("dd-key-1", r.Headers["dd-api-key"]);
            Assert.Equal("/api/v2/logs", r.Path);
            using var doc = JsonDocument.Parse(r.Body);
            Assert.InRange(doc.RootElement.GetArrayLength(), 1, 1000);
            total += doc.RootElement.GetArrayLength();
            Assert.All(doc.RootElement.EnumerateArray(), e => Assert.StartsWith("CEF:0|GovernancePortal|", e.GetProperty("message").GetString()));
        }
        Assert.Equal(1500, total); // the filter keeps gateway.* only: the integration's own audit event is skipped

        // The 5 MB limit splits a batch of large entries.
        var exporter = world.Exporter;
        var big = Enumerable.Range(1, 30).Select(n => new AuditEvent
        {
            ProjectId = world.ProjectId, Seq = n, Id = Guid.NewGuid(), EventType = "gateway.query_executed", ActorType = "api_key", SecurityLevel = "normal",
            SqlText = new string('x', 400_000), Hash = new byte[32], PrevHash = new byte[32],
        }).ToList();
        var bodies = exporter.DatadogBodies(new SiemIntegration { Format = "json" }, big).ToList();
        Assert.True(bodies.Count >= 3);
        Assert.All(bodies, b => Assert.True(b.Length <= SiemExporter.MaxDatadogBytes));
        Assert.Equal(30, bodies.Sum(b => JsonDocument.Parse(b).RootElement.GetArrayLength()));
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Syslog_over_tcp_sends_octet_counted_rfc_5424_frames_with_cef_or_json(string provider)
    {
        await using var world = await IntegrationWorld.CreateAsync(provider);
        await using var receiver = new SyslogReceiver();
        await world.AuditAsync(120);
        await world.Siem.CreateAsync(world.ProjectId, world.Admin, new SiemDraft("Syslog CEF", "syslog", "cef", receiver.Endpoint, null, null, 50));
        await world.Siem.CreateAsync(world.ProjectId, world.Admin, new SiemDraft("Syslog JSON", "syslog", "json", receiver.Endpoint, null, "gateway.query_executed", 50));
        var r = await world.Exporter.RunOnceAsync("w");
        Assert.Equal(2, r.Integrations);
        var frames = receiver.Frames.ToList();
        var cef = frames.Where(f => f.Contains(" - CEF:0|")).ToList();
        var json = frames.Where(f => f.Contains(" - {")).ToList();
        Assert.True(cef.Count >= 121);
        Assert.Equal(120, json.Count);
        Assert.All(frames, f => Assert.Matches(@"^<1\d\d>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z portal-test governance-portal - [a-z_.]+ - ", f));
        using var doc = JsonDocument.Parse(json[0][(json[0].IndexOf(" - {", StringComparison.Ordinal) + 3)..]);
        Assert.Equal(1, doc.RootElement.GetProperty("seq").GetInt64());

        // Receiver gone: the export retries later instead of losing events.
        var port = receiver.Port;
        await receiver.DisposeAsync();
        await world.AuditAsync(5);
        world.Clock.Advance(TimeSpan.FromSeconds(1));
        var failed = await world.Exporter.RunOnceAsync("w");
        Assert.Equal(2, failed.Failures);
        Assert.All((await world.Siem.ListAsync(world.ProjectId)).Items, i => Assert.Equal(SiemStatus.Retrying, i.Status));
        Assert.True(port > 0);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Test_connection_reports_the_receivers_answer_and_bad_settings_name_the_field(string provider)
    {
        await using var world = await IntegrationWorld.CreateAsync(provider);
        await using var receiver = await HttpReceiver.StartAsync();
        var hec = await world.Siem.CreateAsync(world.ProjectId, world.Admin, new SiemDraft("Splunk", "splunk_hec", "json", receiver.Url, "secret-token-xyz", null));
        Assert.True((await world.Siem.TestConnectionAsync(world.ProjectId, hec.Id)).Accepted);
        Assert.Contains("integration.test", Assert.Single(receiver.Requests).Body);
        Assert.Equal(0, (await world.IntegrationAsync(hec.Id)).CursorSeq);
        receiver.Behave = (_, _) => 401;
        var refused = await world.Siem.TestConnectionAsync(world.ProjectId, hec.Id);
        Assert.False(refused.Accepted);
        Assert.Contains("401", refused.Message);
        Assert.DoesNotContain("secret-token-xyz", string.Join("\n", await world.Db.RawRowsAsync("siem_integrations")));

        var other = await world.OtherProjectAsync();
        Assert.Equal(ErrorKind.NotFound, (await Assert.ThrowsAsync<DomainException>(() => world.Siem.TestConnectionAsync(other, hec.Id))).Kind);
        Assert.Equal(ErrorKind.NotFound, (await Assert.ThrowsAsync<DomainException>(() => world.Siem.PauseAsync(other, hec.Id, world.Admin))).Kind);

        async Task<string?> Field(SiemDraft d) => (await Assert.ThrowsAsync<DomainException>(() => world.Siem.CreateAsync(world.ProjectId, world.Admin, d))).Field;
        Assert.Equal("kind", await Field(new SiemDraft("a", "elastic", "json", "http://x", "t", null)));
        Assert.Equal("format", await Field(new SiemDraft("a", "splunk_hec", "xml", "http://x", "t", null)));
        Assert.Equal("endpoint", await Field(new SiemDraft("a", "splunk_hec", "json", "x", "t", null)));
        Assert.Equal("endpoint", await Field(new SiemDraft("a", "syslog", "cef", "siem.example.com", null, null)));
        Assert.Equal("endpoint", await Field(new SiemDraft("a", "syslog", "cef", "siem.example.com:99999", null, null)));
        Assert.Equal("secret", await Field(new SiemDraft("a", "datadog", "json", "http://x", null, null)));
        Assert.Equal("batchSize", await Field(new SiemDraft("a", "splunk_hec", "json", "http://x", "t", null, 0)));
        Assert.Equal("eventTypes", await Field(new SiemDraft("a", "splunk_hec", "json", "http://x", "t", "DROP TABLE;")));
        Assert.Equal("name", await Field(new SiemDraft(" ", "splunk_hec", "json", "http://x", "t", null)));
    }
}

public class TwoWorkerTests
{
    [Fact]
    public async Task Two_workers_on_one_postgresql_deliver_each_message_and_export_each_event_once()
    {
        await using var first = await IntegrationWorld.CreateAsync("postgres");
        // A second, independent process: its own services, connection pools and HTTP clients over the same database.
        await using var second = await IntegrationWorld.CreateAsync("postgres", first.Db, first.Clock);
        await using var receiver = await HttpReceiver.StartAsync();
        await using var hec = await HttpReceiver.StartAsync();
        await first.Webhooks.CreateAsync(first.ProjectId, first.Admin, new WebhookDraft("SOC", "webhook", receiver.Url, [OutboxEvents.AlertCreated]));
        await first.Webhooks.CreateAsync(first.ProjectId, first.Admin, new WebhookDraft("SOC 2", "webhook", receiver.Url + "/2", [OutboxEvents.AlertCreated]));
        await using (var db = await first.Factory.CreateDbContextAsync())
        {
            for (var i = 0; i < 600; i++) Outbox.Add(db, first.ProjectId, OutboxEvents.AlertCreated, new { n = i }, first.Clock.GetUtcNow());
            await db.SaveChangesAsync();
        }
        await first.AuditAsync(3000);
        var integration = await first.Siem.CreateAsync(first.ProjectId, first.Admin, new SiemDraft("Splunk", "splunk_hec", "json", hec.Url, "t", null, 100));

        // Small batches so the two workers really interleave.
        var sent = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
        async Task Work(IntegrationWorld w, string name)
        {
            for (var round = 0; round < 40; round++)
            {
                var r = await w.Dispatcher.RunOnceAsync(name, batchSize: 50, maxBatches: 3);
                sent.AddOrUpdate(name, r.Attempted, (_, v) => v + r.Attempted);
                await w.Exporter.RunOnceAsync(name, maxBatches: 3);
            }
        }
        await Task.WhenAll(Task.Run(() => Work(first, "worker-a")), Task.Run(() => Work(second, "worker-b")), Task.Run(() => Work(first, "worker-a2")));
        Assert.True(sent.GetValueOrDefault("worker-a") > 0 && sent.GetValueOrDefault("worker-b") > 0, $"both processes took part: {string.Join(", ", sent)}");
        for (var i = 0; i < 5; i++) { await first.Dispatcher.RunOnceAsync("final"); await first.Exporter.RunOnceAsync("final"); }

        var ids = receiver.Requests.Select(r => r.Headers["webhook-id"]).ToList();
        Assert.Equal(1200, ids.Count); // 600 messages x 2 endpoints
        Assert.Equal(1200, ids.Distinct().Count());
        var deliveries = await first.DeliveriesAsync();
        Assert.Equal(1200, deliveries.Count);
        Assert.All(deliveries, d => Assert.Equal(DeliveryStatus.Delivered, d.Status));
        Assert.All(deliveries, d => Assert.Equal(1, d.Attempts));

        var seqs = hec.Requests.SelectMany(r => Events(r.Body)).Select(e => e.GetProperty("event").GetProperty("seq").GetInt64()).ToList();
        var cursor = (await first.IntegrationAsync(integration.Id)).CursorSeq;
        Assert.True(cursor >= 3001);
        Assert.Equal(Enumerable.Range(1, (int)cursor).Select(n => (long)n).ToList(), seqs);
    }

    private static List<JsonElement> Events(string concatenated) => SiemExportTests.Events(concatenated);
}
