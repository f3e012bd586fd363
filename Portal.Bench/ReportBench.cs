using System.Diagnostics;
using System.Globalization;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Portal.Domain;
using Portal.Domain.Audit;
using Portal.Domain.Compliance;
using Portal.Domain.Persistence;
using Portal.Domain.Tenancy;

namespace Portal.Bench;

/// <summary>
/// SOC 2 report over a month holding N events (BENCHMARKS.md "Compliance report"). The events are seeded by a child
/// process (its memory does not count here) through the real AuditWriter, so the chain is valid and verified by the
/// report; this process then requests and generates the report through ComplianceReportService exactly as the portal does.
/// </summary>
internal static class ReportBench
{
    private static readonly string[] Outcomes = ["forbidden", "rateLimited", "invalidParameters", "injectionBlocked", "timeout"];
    private static readonly string[][] Labels = [["pii"], ["financial"], ["internal"], ["pii", "financial"], ["phi"]];

    public static (DateTimeOffset From, DateTimeOffset To) Period()
    {
        var today = DateTimeOffset.UtcNow.Date;
        var to = new DateTimeOffset(today, TimeSpan.Zero);
        return (to.AddDays(-30), to);
    }

    public static async Task RunAsync(DatabaseProvider provider, long events, bool keep = false)
    {
        Console.WriteLine($"== report-soc2 {provider}: SOC 2 report over 30 days holding {events:N0} events");
        var db = await BenchDatabase.CreateAsync(provider);
        var services = Services(db.Database, db.Folder);
        var factory = services.GetRequiredService<IDbContextFactory<PortalDbContext>>();
        var projectId = Guid.CreateVersion7();
        await using (var ctx = await factory.CreateDbContextAsync())
        {
            var org = new Organization { Name = "Bench Org", CreatedAt = DateTimeOffset.UtcNow };
            ctx.Organizations.Add(org);
            ctx.Projects.Add(new Project { Id = projectId, OrganizationId = org.Id, Name = "Bench project", CreatedAt = DateTimeOffset.UtcNow });
            await ctx.SaveChangesAsync();
        }
        var sw = Stopwatch.StartNew();
        var psi = new ProcessStartInfo(Environment.ProcessPath!) { UseShellExecute = false, RedirectStandardOutput = true };
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath!) == "dotnet") psi.ArgumentList.Add(typeof(Program).Assembly.Location);
        foreach (var a in new[] { "report-seed", provider == DatabaseProvider.Sqlite ? "sqlite" : "postgres", db.Database.ConnectionString,
                     events.ToString(CultureInfo.InvariantCulture), projectId.ToString() })
            psi.ArgumentList.Add(a);
        using (var child = Process.Start(psi)!)
        {
            var output = await child.StandardOutput.ReadToEndAsync();
            await child.WaitForExitAsync();
            if (child.ExitCode != 0) throw new InvalidOperationException("seeding failed: " + output);
        }
        Console.WriteLine($"   seeded {events:N0} events in {sw.Elapsed.TotalSeconds:F1} s (child process)");
        await MeasureAsync(services, provider, projectId);
        await services.DisposeAsync();
        if (keep)
        {
            // Seeding a million events takes minutes on a loaded machine: keep the database to measure again with report-soc2-at.
            Console.WriteLine($"   kept: report-soc2-at {(provider == DatabaseProvider.Sqlite ? "sqlite" : "postgres")} \"{db.Database.ConnectionString}\" {projectId} \"{db.Folder}\"");
            return;
        }
        await db.DisposeAsync();
    }

    /// <summary>Measures the report again on a database kept by <c>report-soc2 ... keep=1</c> (the period is the same 30 days while the date stays the same).</summary>
    public static async Task RunExistingAsync(DatabaseProvider provider, string connectionString, Guid projectId, string folder, int runs)
    {
        for (var i = 0; i < runs; i++)
        {
            Console.WriteLine($"== report-soc2-at {provider}: run {i + 1} of {runs}");
            await using var services = Services(new PortalDatabase(provider, connectionString), folder);
            await MeasureAsync(services, provider, projectId);
        }
    }

    private static async Task MeasureAsync(ServiceProvider services, DatabaseProvider provider, Guid projectId)
    {
        var factory = services.GetRequiredService<IDbContextFactory<PortalDbContext>>();
        var reports = services.GetRequiredService<ComplianceReportService>();
        await services.GetRequiredService<ReportSigner>().CertificateAsync(); // the one-time certificate generation is not part of a report
        var (from, to) = Period();
        GC.Collect();
        var before = Process.GetCurrentProcess().WorkingSet64;
        var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
        var sampler = new MemorySampler();
        var sw = Stopwatch.StartNew();
        var requested = await reports.RequestAsync(projectId, Guid.Empty, new ReportParameters { Type = ReportTypes.Soc2, From = from, To = to });
        var requestTime = sw.Elapsed;
        await reports.GenerateAsync(projectId, requested.ReportId, "bench");
        sw.Stop();
        sampler.Dispose();
        var report = await reports.GetAsync(projectId, requested.ReportId);
        if (report.Status != ReportStatus.Ready) throw new InvalidOperationException(report.Error);
        var proc = Process.GetCurrentProcess();
        Console.WriteLine($"   report {report.EventCount:N0} events, PDF {report.PdfSize / 1024.0:F0} KB, chain ok {report.ChainOk}: " +
            $"{sw.Elapsed.TotalSeconds:F2} s (request incl. COUNT {requestTime.TotalSeconds:F2} s), CPU {(proc.TotalProcessorTime - cpuBefore).TotalSeconds:F1} s during the report, " +
            $"{proc.TotalProcessorTime.TotalSeconds:F1} s total in process");
        Console.WriteLine($"   peak working set {proc.PeakWorkingSet64 / 1048576.0:F0} MB (before the report {before / 1048576.0:F0} MB), GC heap peak {GC.GetGCMemoryInfo().HeapSizeBytes / 1048576.0:F0} MB");
        Console.WriteLine($"   {sampler.Describe()}");
        await using var ctx2 = await factory.CreateDbContextAsync();
        var pdf = await ctx2.ComplianceReportFiles.Where(f => f.ReportId == report.Id).Select(f => f.Pdf).SingleAsync();
        var file = Path.Combine(Path.GetTempPath(), $"bench-soc2-{provider}.pdf".ToLowerInvariant());
        await File.WriteAllBytesAsync(file, pdf);
        Console.WriteLine($"   PDF kept at {file}; signature valid: {ReportSigner.Verify(pdf).Valid}");
    }

    private static ServiceProvider Services(PortalDatabase database, string folder)
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Database:Provider"] = database.Provider.ToString(),
            ["Database:ConnectionString"] = database.ConnectionString,
            ["Database:DataDirectory"] = folder,
        }).Build();
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(config);
        services.AddLogging();
        services.AddPortalDomain(config);
        return services.BuildServiceProvider();
    }

    /// <summary>Child process: N events over the period, shaped like gateway traffic, through the real writer.</summary>
    public static async Task SeedAsync(PortalDatabase database, long events, Guid projectId)
    {
        var (from, to) = Period();
        var step = (to - from).Ticks / events;
        await using var writer = new AuditWriter(database, TimeProvider.System, options: new AuditWriterOptions { MaxBatchSize = 20_000 });
        long next = 0;
        var tasks = Enumerable.Range(0, 256).Select(_ => Task.Run(async () =>
        {
            while (true)
            {
                var i = Interlocked.Increment(ref next) - 1;
                if (i >= events) return;
                await writer.AppendAsync(Draft(projectId, i, from.AddTicks(step * i)));
            }
        })).ToArray();
        await Task.WhenAll(tasks);
    }

    private static AuditEventDraft Draft(Guid project, long i, DateTimeOffset at)
    {
        var actor = new AuditActor("api_key", $"0190f000-0000-7000-8000-{i % 150:D12}", Role: "user", ClientIp: "10.1.2.3", RequestId: $"req-{i}");
        var kind = i % 100;
        if (kind < 85)
            return new AuditEventDraft
            {
                ProjectId = project, EventType = "gateway.query_executed", Actor = actor, ResourceType = "approved_query", ResourceId = $"q-{i % 40}",
                Action = "execute", OccurredAt = at, DataClassifications = Labels[i % Labels.Length], RowsReturned = i % 500, DurationMs = i % 90,
                SqlText = "SELECT id, name, email FROM customers WHERE region = @region LIMIT 100", TablesAccessed = ["customers"],
                Details = "{\"outcome\":\"executed\",\"parameters\":{\"region\":\"EU\"},\"truncated\":false}",
            };
        if (kind < 97)
            return new AuditEventDraft
            {
                ProjectId = project, EventType = "gateway.query_denied", Actor = actor, ResourceType = "approved_query", ResourceId = $"q-{i % 40}",
                Action = "execute", OccurredAt = at, Success = false, ErrorMessage = "denied", SecurityLevel = AuditSecurityLevel.Warning,
                Details = $"{{\"outcome\":\"{Outcomes[i % Outcomes.Length]}\"}}",
            };
        if (kind < 99)
            return new AuditEventDraft
            {
                ProjectId = project, EventType = "auth.api_key_rejected", Actor = actor, ResourceType = "api_key", Action = i % 2 == 0 ? "revoked" : "expired",
                OccurredAt = at, Success = false, Details = "{\"outcome\":\"unauthenticated\"}",
            };
        return new AuditEventDraft
        {
            ProjectId = project, EventType = "rate_limit.changed", Actor = new AuditActor("user", "u-1", "admin@bench.test", "admin"), ResourceType = "rate_limit",
            ResourceId = $"rl-{i % 7}", OccurredAt = at, BeforeState = "{\"requests\":100}", AfterState = "{\"requests\":200}",
        };
    }
}
