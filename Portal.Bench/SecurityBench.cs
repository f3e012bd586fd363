using System.Diagnostics;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Portal.Domain;
using Portal.Domain.Audit;
using Portal.Domain.Persistence;
using Portal.Domain.Security.Alerts;
using Portal.Domain.Security.Detectors;
using Portal.Domain.Tenancy;

namespace Portal.Bench;

/// <summary>Anomaly scan throughput (security-scan) and detection quality on the labeled scenario (security-quality).</summary>
internal static class SecurityBench
{
    private static async Task<(ServiceProvider Services, Guid Project)> WorldAsync(BenchDatabase db)
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Database:Provider"] = db.Database.Provider.ToString(), ["Database:ConnectionString"] = db.Database.ConnectionString,
            ["Database:DataDirectory"] = db.Folder,
        }).Build();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton<IConfiguration>(config);
        services.AddPortalDomain(config);
        services.AddDataProtection().UseEphemeralDataProtectionProvider();
        services.AddSingleton(new AuditWriterOptions { MaxBatchSize = 20_000 });
        var sp = services.BuildServiceProvider();
        await using var scope = sp.CreateAsyncScope();
        var setup = scope.ServiceProvider.GetRequiredService<SetupService>();
        var token = await setup.IssueTokenAsync() ?? throw new InvalidOperationException("setup done");
        var admin = await setup.CompleteAsync(new SetupRequest(token, "Bench Bank", "Payments", "admin@bench.test", "Bench Admin", "Correct-Horse-42-Battery"));
        var project = (await sp.GetRequiredService<ProjectService>().ListForUserAsync(admin.Id, 0, 10)).Items.Single().Id;
        return (sp, project);
    }

    private static async Task AppendAsync(AuditWriter writer, IEnumerable<AuditEventDraft> events)
    {
        foreach (var chunk in events.Chunk(20_000)) await Task.WhenAll(chunk.Select(e => writer.AppendAsync(e)));
    }

    public static async Task ScanAsync(DatabaseProvider provider, long target)
    {
        await using var db = await BenchDatabase.CreateAsync(provider);
        var (sp, project) = await WorldAsync(db);
        await using var _ = sp;
        var writer = sp.GetRequiredService<AuditWriter>();
        // 200 users/keys over 30 days; calls per day sized so the 26 seeded days (the full scan's input) hold about
        // `target` events (the generator emits ~0.82 events per nominal call once weekends and quiet days are drawn).
        var perDay = (int)Math.Max(1, Math.Ceiling(target / (200 * 26 * 0.82)));
        var scenario = new DetectionScenario(project, seed: 7, actors: 200, days: 30, callsPerDay: perDay);
        var held = new List<AuditEventDraft>();
        var sw = Stopwatch.StartNew();
        long seeded = 0;
        foreach (var (day, events) in scenario.Generate())
        {
            if (day >= 26) { held.AddRange(events); continue; }
            await AppendAsync(writer, events);
            seeded += events.Count;
        }
        Console.WriteLine($"== security-scan on {provider}: seeded {seeded:N0} events (200 users/keys, 26 days) in {sw.Elapsed.TotalSeconds:F1} s; uptime: {Uptime()}");

        // Baseline: one plain aggregate pass over the project's events, the least any full scan must read.
        sw.Restart();
        await using (var ctx = sp.GetRequiredService<IDbContextFactory<PortalDbContext>>().CreateDbContext())
        {
            var rows = await ctx.AuditEvents.Where(e => e.ProjectId == project).SumAsync(e => e.RowsReturned ?? 0);
            var n = await ctx.AuditEvents.CountAsync(e => e.ProjectId == project);
            Console.WriteLine($"   baseline: count + sum(rows) over {n:N0} events: {sw.Elapsed.TotalSeconds:F2} s ({rows:N0} rows)");
        }
        var baseline = sw.Elapsed;

        var scanner = sp.GetRequiredService<AnomalyScanner>();
        sw.Restart();
        var full = await scanner.ScanAsync();
        var fullTime = sw.Elapsed;
        Console.WriteLine($"   full scan: {full.EventsExamined:N0} events in {fullTime.TotalSeconds:F2} s = {full.EventsExamined / fullTime.TotalSeconds:N0} events/s " +
                          $"({fullTime / baseline:F1}x baseline); {full.Findings} findings, {full.Alerts.Created} alerts");
        foreach (var n in new[] { 10_000, 100_000 })
        {
            var batch = held.Take(n).ToList();
            held.RemoveRange(0, batch.Count);
            await AppendAsync(writer, batch);
            sw.Restart();
            var inc = await scanner.ScanAsync();
            Console.WriteLine($"   incremental scan: {inc.EventsExamined:N0} new events in {sw.Elapsed.TotalSeconds:F2} s = {inc.EventsExamined / sw.Elapsed.TotalSeconds:N0} events/s " +
                              $"({sw.Elapsed.TotalMilliseconds / fullTime.TotalMilliseconds * 100:F1} % of the full scan for {100.0 * inc.EventsExamined / full.EventsExamined:F1} % of its events)");
        }
        sw.Restart();
        var idle = await scanner.ScanAsync();
        Console.WriteLine($"   scan with nothing new: {idle.EventsExamined} events in {sw.Elapsed.TotalMilliseconds:F0} ms");
    }

    public static async Task QualityAsync(DatabaseProvider provider, int seed, int callsPerDay)
    {
        await using var db = await BenchDatabase.CreateAsync(provider);
        var (sp, project) = await WorldAsync(db);
        await using var _ = sp;
        var writer = sp.GetRequiredService<AuditWriter>();
        var scanner = sp.GetRequiredService<AnomalyScanner>();
        var scenario = new DetectionScenario(project, seed, actors: 50, days: 30, callsPerDay: callsPerDay);
        long events = 0;
        foreach (var (_, list) in scenario.Generate())
        {
            await AppendAsync(writer, list);
            events += (await scanner.ScanAsync()).EventsExamined; // one scan per simulated day
        }
        await using var ctx = sp.GetRequiredService<IDbContextFactory<PortalDbContext>>().CreateDbContext();
        var alerts = (await ctx.SecurityAlerts.AsNoTracking().Where(a => a.ProjectId == project).ToListAsync())
            .Select(a => (a.Rule, a.SubjectId, a.FirstSeenAt, a.LastSeenAt)).ToList();
        Console.WriteLine($"== security-quality on {provider}: seed {seed}, 50 users/keys, 30 days, {events:N0} events, {scenario.Incidents.Count} labeled incidents");
        Console.WriteLine("   | rule | incidents | detected | alerts | precision | recall |");
        foreach (var q in DetectionScenario.Evaluate(scenario.Incidents, alerts))
            Console.WriteLine($"   | {q.Rule} | {q.Incidents} | {q.Detected} | {q.Alerts} | {q.Precision:F2} | {q.Recall:F2} |");
    }

    private static string Uptime() => File.Exists("/proc/loadavg") ? "load " + File.ReadAllText("/proc/loadavg").Trim() : "n/a";
}
