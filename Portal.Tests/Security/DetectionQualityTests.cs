using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Portal.Domain.Audit;
using Portal.Domain.Security.Detectors;
using Portal.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Portal.Tests.Security;

/// <summary>
/// The labeled scenario (50 users/keys, 30 days, incidents of every scan rule) through the real scan, one scan per
/// simulated day. Seeded, so the figures are the same on every run; the full-size figures are in BENCHMARKS.md.
/// </summary>
public class DetectionQualityTests(ITestOutputHelper output)
{
    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Every_scan_rule_reaches_precision_and_recall_of_at_least_0_9_on_the_labeled_scenario(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        var scenario = new DetectionScenario(w.ProjectId, seed: 20261122, callsPerDay: 15);
        var writer = w.Services.GetRequiredService<AuditWriter>();
        var scanner = w.Services.GetRequiredService<AnomalyScanner>();
        long examined = 0;
        foreach (var (day, events) in scenario.Generate())
        {
            foreach (var chunk in events.Chunk(500)) await Task.WhenAll(chunk.Select(e => writer.AppendAsync(e)));
            w.Clock.Set(DetectionScenario.Start.AddDays(day + 1));
            examined += (await scanner.ScanAsync()).EventsExamined;
        }
        await using var db = w.Db.NewContext();
        var alerts = (await db.SecurityAlerts.AsNoTracking().Where(a => a.ProjectId == w.ProjectId).ToListAsync())
            .Select(a => (a.Rule, a.SubjectId, a.FirstSeenAt, a.LastSeenAt)).ToList();
        var quality = DetectionScenario.Evaluate(scenario.Incidents, alerts);
        foreach (var q in quality)
            output.WriteLine($"{q.Rule,-17} incidents {q.Incidents,2} detected {q.Detected,2} alerts {q.Alerts,3} precision {q.Precision:F2} recall {q.Recall:F2}");
        output.WriteLine($"{examined:N0} events examined");
        Assert.Equal(7, quality.Count);
        Assert.All(quality, q => Assert.Equal(5, q.Incidents));
        Assert.All(quality, q => Assert.True(q.Precision >= 0.9 && q.Recall >= 0.9, $"{q.Rule}: precision {q.Precision:F2}, recall {q.Recall:F2}"));
    }
}
