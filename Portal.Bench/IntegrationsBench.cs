using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Portal.Domain;
using Portal.Domain.Audit;
using Portal.Domain.Compliance.Retention;
using Portal.Domain.Integrations;
using Portal.Domain.Persistence;
using Portal.Domain.Tenancy;

namespace Portal.Bench;

/// <summary>
/// Integrations throughput (BENCHMARKS.md section 6): SIEM export to loopback receivers (Splunk HEC over HTTP, syslog over
/// TCP), the webhook dispatcher to a fast receiver, and the nightly archive job. Each compares against a baseline measured
/// in the same run on the same data, because the machine is shared and absolute numbers move with its load.
/// </summary>
internal static class IntegrationsBench
{
    // Process CPU (receivers included): on a shared machine it moves far less with the load than wall time does.
    private static TimeSpan Cpu() => Process.GetCurrentProcess().TotalProcessorTime;
    private static string CpuNote(TimeSpan since, long items) { var cpu = (Cpu() - since).TotalSeconds; return $"; process CPU {cpu:F2} s = {items / Math.Max(cpu, 1e-9):N0}/CPU-s"; }

    public static async Task<int> RunAsync(string command, string[] rest)
    {
        var provider = rest.Length > 0 && rest[0] == "postgres" ? DatabaseProvider.Postgres : DatabaseProvider.Sqlite;
        var n = rest.Length > 1 ? long.Parse(rest[1], CultureInfo.InvariantCulture) : command switch { "archive" => 1_000_000, "webhook-dispatch" => 5_000, _ => 300_000 };
        switch (command)
        {
            case "siem-export": await SiemAsync(provider, n); return 0;
            case "webhook-dispatch": await WebhooksAsync(provider, (int)n); return 0;
            case "archive": await ArchiveAsync(provider, n); return 0;
            default: return 2;
        }
    }

    private sealed class World : IAsyncDisposable
    {
        public required BenchDatabase Db { get; init; }
        public required ServiceProvider Services { get; init; }
        public required Guid ProjectId { get; init; }
        public required Guid Admin { get; init; }
        public T Get<T>() where T : notnull => Services.GetRequiredService<T>();
        public async ValueTask DisposeAsync() { await Services.DisposeAsync(); await Db.DisposeAsync(); }
    }

    private static async Task<World> WorldAsync(DatabaseProvider provider)
    {
        var db = await BenchDatabase.CreateAsync(provider);
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Database:Provider"] = provider == DatabaseProvider.Sqlite ? "Sqlite" : "Postgres",
            ["Database:ConnectionString"] = db.Database.ConnectionString,
            ["Database:DataDirectory"] = db.Folder,
            ["Integrations:Parallelism"] = "32",
            ["Integrations:Hostname"] = "bench",
        }).Build();
        var services = new ServiceCollection();
        services.AddLogging(l => l.SetMinimumLevel(LogLevel.Warning));
        services.AddSingleton<IConfiguration>(config);
        services.AddPortalDomain(config);
        services.AddSingleton(new AuditWriterOptions { MaxBatchSize = 20_000 });
        var sp = services.BuildServiceProvider();
        await using var scope = sp.CreateAsyncScope();
        var setup = scope.ServiceProvider.GetRequiredService<SetupService>();
        var token = await setup.IssueTokenAsync() ?? throw new InvalidOperationException("setup already done");
        var admin = await setup.CompleteAsync(new SetupRequest(token, "Bench Bank", "Payments", "admin@bench.test", "Bench Admin", "Bench-Password-2026"));
        var project = (await sp.GetRequiredService<ProjectService>().ListForUserAsync(admin.Id, 0, 10)).Items.Single();
        return new World { Db = db, Services = sp, ProjectId = project.Id, Admin = admin.Id };
    }

    private static async Task SeedAsync(World w, long events, DateTimeOffset? at = null)
    {
        var writer = w.Get<AuditWriter>();
        var sw = Stopwatch.StartNew();
        long next = 0;
        await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => Task.Run(async () =>
        {
            var inFlight = new List<Task>(64);
            while (true)
            {
                var i = Interlocked.Increment(ref next);
                if (i > events) break;
                inFlight.Add(writer.AppendAsync(new AuditEventDraft
                {
                    ProjectId = w.ProjectId, EventType = "gateway.query_executed", Actor = new AuditActor("api_key", "key-" + (i % 50), ClientIp: "10.1.2.3", RequestId: "req-" + i),
                    ResourceType = "query", ResourceId = "q-" + (i % 200), SqlText = "SELECT id, name, region FROM customers WHERE region = @region AND tier = @tier",
                    Details = "{\"parameters\":{\"region\":\"EU\",\"tier\":\"gold\"},\"masked\":[\"email\"]}", RowsReturned = i % 500, DurationMs = i % 40,
                    TablesAccessed = ["customers"], OccurredAt = at is { } t ? t.AddMilliseconds(i) : null,
                }));
                if (inFlight.Count == 64) { await Task.WhenAll(inFlight); inFlight.Clear(); }
            }
            await Task.WhenAll(inFlight);
        })));
        Console.WriteLine($"   seeded {events:N0} events in {sw.Elapsed.TotalSeconds:F1} s");
    }

    private static async Task<(WebApplication App, string Url, Func<long> Requests)> HttpReceiverAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel().UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        long requests = 0;
        app.Run(async ctx =>
        {
            var buffer = new byte[81920];
            while (await ctx.Request.Body.ReadAsync(buffer) > 0) { }
            Interlocked.Increment(ref requests);
            ctx.Response.StatusCode = 200;
            await ctx.Response.WriteAsync("{\"text\":\"Success\",\"code\":0}");
        });
        await app.StartAsync();
        var url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return (app, url, () => Interlocked.Read(ref requests));
    }

    private static (TcpListener Listener, Func<long> Frames) SyslogReceiver()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        long frames = 0;
        _ = Task.Run(async () =>
        {
            while (true)
            {
                TcpClient client;
                try { client = await listener.AcceptTcpClientAsync(); } catch { return; }
                _ = Task.Run(async () =>
                {
                    using (client)
                    {
                        // Counts octet-counted frames without materializing them: "LEN SP MSG" repeated.
                        var s = client.GetStream();
                        var buffer = new byte[1 << 16];
                        long need = 0;
                        var len = 0;
                        int read;
                        while ((read = await s.ReadAsync(buffer)) > 0)
                        {
                            for (var i = 0; i < read;)
                            {
                                if (need > 0) { var take = (int)Math.Min(need, read - i); need -= take; i += take; if (need == 0) Interlocked.Increment(ref frames); continue; }
                                var b = buffer[i++];
                                if (b == (byte)' ') { need = len; len = 0; } else len = len * 10 + (b - '0');
                            }
                        }
                    }
                });
            }
        });
        return (listener, () => Interlocked.Read(ref frames));
    }

    private static async Task SiemAsync(DatabaseProvider provider, long events)
    {
        Console.WriteLine($"== siem-export {provider}: {events:N0} events, batch 1000");
        await using var w = await WorldAsync(provider);
        await SeedAsync(w, events);
        var (app, url, _) = await HttpReceiverAsync();
        var (listener, frames) = SyslogReceiver();
        try
        {
            // Baseline: reading the same events the way the exporter does (EF, seq order, 1000 at a time), no formatting, no network.
            var factory = w.Get<IDbContextFactory<PortalDbContext>>();
            var sw = Stopwatch.StartNew();
            var cpu0 = Cpu();
            long read = 0, cursor = 0;
            await using (var db = await factory.CreateDbContextAsync())
            {
                while (true)
                {
                    var c = cursor;
                    var batch = await db.AuditEvents.AsNoTracking().Where(e => e.ProjectId == w.ProjectId && e.Seq > c).OrderBy(e => e.Seq).Take(1000).ToListAsync();
                    if (batch.Count == 0) break;
                    read += batch.Count;
                    cursor = batch[^1].Seq;
                }
            }
            var baseline = read / sw.Elapsed.TotalSeconds;
            Console.WriteLine($"   baseline: read {read:N0} events in {sw.Elapsed.TotalSeconds:F2} s ({baseline:N0} events/s){CpuNote(cpu0, read)}");

            var siem = w.Get<SiemService>();
            var exporter = w.Get<SiemExporter>();
            foreach (var (kind, format, endpoint) in new[] { (SiemKinds.SplunkHec, SiemFormats.Json, url), (SiemKinds.Syslog, SiemFormats.Cef, $"127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}"), (SiemKinds.Datadog, SiemFormats.Ocsf, url) })
            {
                var i = await siem.CreateAsync(w.ProjectId, w.Admin, new SiemDraft(kind, kind, format, endpoint, kind == SiemKinds.Syslog ? null : "token", null, 1000));
                sw.Restart();
                cpu0 = Cpu();
                long exported = 0;
                while (true)
                {
                    var (n, failed, _) = await exporter.ExportAsync(i.Id, "bench", maxBatches: 100_000);
                    if (failed) throw new InvalidOperationException((await siem.ListAsync(w.ProjectId)).Items.First(x => x.Id == i.Id).LastError);
                    exported += n;
                    if (n == 0 || exported >= events) break;
                }
                var rate = exported / sw.Elapsed.TotalSeconds;
                Console.WriteLine($"   {kind}/{format}: exported {exported:N0} events in {sw.Elapsed.TotalSeconds:F2} s = {rate:N0} events/s ({rate / baseline:P0} of the read-only baseline){CpuNote(cpu0, exported)}");
            }
            Console.WriteLine($"   syslog receiver counted {frames():N0} frames");
        }
        finally
        {
            listener.Stop();
            await app.DisposeAsync();
        }
    }

    private static async Task WebhooksAsync(DatabaseProvider provider, int deliveries)
    {
        Console.WriteLine($"== webhook-dispatch {provider}: {deliveries:N0} deliveries to a fast loopback receiver");
        await using var w = await WorldAsync(provider);
        var (app, url, requests) = await HttpReceiverAsync();
        try
        {
            // Baseline: the same number of signed POSTs straight from HttpClient with the same parallelism, no database.
            var http = w.Get<IHttpClientFactory>().CreateClient(IntegrationsOptions.HttpClientName);
            var secret = StandardWebhooks.NewSecret();
            var body = WebhookDispatcher.Envelope(OutboxEvents.AlertCreated, DateTimeOffset.UtcNow, "{\"title\":\"bench\",\"severity\":\"high\"}");
            var sw = Stopwatch.StartNew();
            var cpu0 = Cpu();
            await Parallel.ForEachAsync(Enumerable.Range(0, deliveries), new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (i, ct) =>
            {
                using var req = new HttpRequestMessage(HttpMethod.Post, url) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
                var ts = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
                req.Headers.TryAddWithoutValidation("webhook-id", "msg_" + i);
                req.Headers.TryAddWithoutValidation("webhook-signature", StandardWebhooks.Sign(secret, "msg_" + i, ts, body));
                using var resp = await http.SendAsync(req, ct);
            });
            var baseline = deliveries / sw.Elapsed.TotalSeconds;
            Console.WriteLine($"   baseline: {deliveries:N0} signed POSTs without the database in {sw.Elapsed.TotalSeconds:F2} s ({baseline:N0}/s){CpuNote(cpu0, deliveries)}");

            await w.Get<WebhookService>().CreateAsync(w.ProjectId, w.Admin, new WebhookDraft("bench", EndpointKinds.Webhook, url, [OutboxEvents.AlertCreated]));
            var factory = w.Get<IDbContextFactory<PortalDbContext>>();
            await using (var db = await factory.CreateDbContextAsync())
            {
                for (var i = 0; i < deliveries; i++) Outbox.Add(db, w.ProjectId, OutboxEvents.AlertCreated, new { title = "bench", severity = "high", n = i }, DateTimeOffset.UtcNow);
                await db.SaveChangesAsync();
            }
            var before = requests();
            var dispatcher = w.Get<WebhookDispatcher>();
            sw.Restart();
            cpu0 = Cpu();
            var delivered = 0;
            var staged = 0;
            while (true) { var k = await dispatcher.StageOutboxAsync(500); staged += k; if (k == 0) break; }
            var stageTime = sw.Elapsed;
            Console.WriteLine($"   staging {staged:N0} outbox messages into deliveries took {stageTime.TotalSeconds:F2} s");
            while (delivered < deliveries)
            {
                var r = await dispatcher.RunOnceAsync("bench", batchSize: 500, maxBatches: 1000);
                delivered += r.Delivered;
                if (r.Attempted == 0 && r.Staged == 0) break;
            }
            var rate = delivered / sw.Elapsed.TotalSeconds;
            Console.WriteLine($"   dispatcher: staged and delivered {delivered:N0} (receiver saw {requests() - before:N0}) in {sw.Elapsed.TotalSeconds:F2} s = {rate:N0} deliveries/s ({rate / baseline:P0} of the baseline){CpuNote(cpu0, delivered)}");
        }
        finally
        {
            await app.DisposeAsync();
        }
    }

    private static async Task ArchiveAsync(DatabaseProvider provider, long events)
    {
        Console.WriteLine($"== archive {provider}: {events:N0} expired events (2 years old, 1 ms apart)");
        await using var w = await WorldAsync(provider);
        await SeedAsync(w, events, DateTimeOffset.UtcNow.AddYears(-2));
        // Baseline: the chain verifier's read-and-hash pass over the same rows (the fastest read path of the audit trail).
        var sw = Stopwatch.StartNew();
        var cpu0 = Cpu();
        var v = await w.Get<AuditVerifier>().VerifyAsync(w.ProjectId);
        var baseline = v.EventsChecked / sw.Elapsed.TotalSeconds;
        Console.WriteLine($"   baseline: verified {v.EventsChecked:N0} events in {sw.Elapsed.TotalSeconds:F2} s ({baseline:N0} events/s){CpuNote(cpu0, v.EventsChecked)}");
        var archiver = w.Get<AuditArchiver>();
        sw.Restart();
        cpu0 = Cpu();
        var r = await archiver.ArchiveAsync();
        var cpuNote = CpuNote(cpu0, r.EventsArchived);
        var rate = r.EventsArchived / sw.Elapsed.TotalSeconds;
        long bytes = Directory.EnumerateFiles(archiver.ArchiveDirectory, "*.gz", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
        Console.WriteLine($"   archived {r.EventsArchived:N0} events into {r.Files} file(s), {bytes / 1048576.0:F1} MB, in {sw.Elapsed.TotalSeconds:F2} s = {rate:N0} events/s ({rate / baseline:P0} of the verify baseline); writing {r.Writing.TotalSeconds:F2} s, deleting {r.Deleting.TotalSeconds:F2} s{cpuNote}");
        sw.Restart();
        var check = await archiver.VerifyAsync(w.ProjectId);
        Console.WriteLine($"   chain across archive+database: {(check.Chain.Ok ? "intact" : check.Chain.Problem)}, {check.ArchivedEvents:N0} archived events re-hashed in {sw.Elapsed.TotalSeconds:F2} s");
    }
}
