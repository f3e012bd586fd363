using Portal.Domain.Audit;
using Portal.Domain.Gateway;

namespace Portal.Domain.Security.Detectors;

/// <summary>An attack the scenario injected: the scan rule(s) that should catch it, on which subject, and when.</summary>
public sealed record ScenarioIncident(IReadOnlyList<string> Rules, string Subject, DateTimeOffset At);

/// <summary>
/// A generated, labeled audit trail for measuring the scan rules' precision and recall (the Portal.Bench
/// "security-quality" command and a test run it; "security-scan" uses it, without incidents, as bulk traffic).
/// Normal traffic: each user or key works its own hours from its own addresses, with noisy daily volumes, an occasional
/// sensitive query and stray failed logins from random addresses. Then, after two weeks of learning, incidents of every
/// rule are injected and labeled. Deterministic for a seed.
/// </summary>
public sealed class DetectionScenario(Guid projectId, int seed, int actors = 50, int days = 30, int callsPerDay = 40, bool incidents = true)
{
    public static readonly DateTimeOffset Start = new(2026, 9, 1, 0, 0, 0, TimeSpan.Zero);
    public List<ScenarioIncident> Incidents { get; } = [];
    public Guid ProjectId => projectId;
    public int Days => days;

    private sealed record Actor(string Id, string Type, string? Email, int FirstHour, string Ip, string Ip2, string Ua, double Calls);

    /// <summary>The events of each day in time order (day -15 holds the dormant keys' last use).</summary>
    public IEnumerable<(int Day, List<AuditEventDraft> Events)> Generate()
    {
        var rng = new Random(seed);
        var people = Enumerable.Range(0, actors).Select(i => new Actor(
            Guid.CreateVersion7(Start.AddSeconds(i)).ToString(), i % 5 == 0 ? "user" : "api_key", i % 5 == 0 ? $"analyst{i}@bank.test" : null,
            6 + rng.Next(5), $"10.{i / 200}.{i % 200}.{10 + rng.Next(200)}", $"10.{i / 200}.{i % 200}.{210 + rng.Next(40)}",
            $"agent-{i % 7}/{1 + rng.Next(3)}.{rng.Next(10)}", callsPerDay * (0.5 + rng.NextDouble()))).ToList();
        var sleepers = incidents ? Enumerable.Range(0, 5).Select(i => new Actor(Guid.CreateVersion7(Start.AddDays(-20).AddSeconds(i)).ToString(), "api_key", null, 9, $"10.99.0.{i}", $"10.99.0.{i}", "batch/1.0", 3)).ToList() : [];

        if (sleepers.Count > 0)
            yield return (-15, sleepers.SelectMany(s => Enumerable.Range(0, 3).Select(k => Call(s, Start.AddDays(-15).AddHours(10 + k), 20, s.Ip, s.Ua, "q-report", null))).ToList());

        // Which day and actor each incident falls on, chosen up front (days 16..days-1, after the learning period).
        var plan = new Dictionary<int, List<(string Rule, int Actor)>>();
        if (incidents)
        {
            var rules = new[] { DetectorRules.OffHours, DetectorRules.NewSource, DetectorRules.VolumeSpike, DetectorRules.BulkExport, DetectorRules.BruteForce, DetectorRules.PrivilegeChange };
            var used = new HashSet<(int, int)>();
            foreach (var rule in rules)
                for (var k = 0; k < 5; k++)
                {
                    int day, actor;
                    do { day = 16 + rng.Next(days - 16); actor = rng.Next(actors); } while (!used.Add((day, actor)));
                    (plan.TryGetValue(day, out var l) ? l : plan[day] = []).Add((rule, actor));
                }
        }

        for (var day = 0; day < days; day++)
        {
            var list = new List<AuditEventDraft>();
            var date = Start.AddDays(day);
            var todays = plan.GetValueOrDefault(day) ?? [];
            foreach (var (a, index) in people.Select((a, i) => (a, i)))
            {
                var incident = todays.Where(p => p.Actor == index).Select(p => p.Rule).FirstOrDefault();
                // Weekends are quieter; volumes vary ±50 % around the actor's own mean.
                var n = (int)Math.Round(a.Calls * (date.DayOfWeek is DayOfWeek.Saturday or DayOfWeek.Sunday ? 0.4 : 1) * (0.5 + rng.NextDouble()));
                for (var c = 0; c < n; c++)
                {
                    var at = date.AddHours(a.FirstHour + rng.NextDouble() * 8);
                    var sensitive = rng.NextDouble() < 0.05;
                    list.Add(Call(a, at, 5 + rng.Next(45), rng.NextDouble() < 0.8 ? a.Ip : a.Ip2, a.Ua, sensitive ? $"q-s{rng.Next(3)}" : $"q-{rng.Next(12)}", sensitive ? ["pii"] : ["internal"]));
                }
                if (incident is null) continue;
                switch (incident)
                {
                    case DetectorRules.OffHours:
                        var odd = date.AddHours((a.FirstHour + 14) % 24).AddMinutes(rng.Next(50));
                        for (var k = 0; k < 3; k++) list.Add(Call(a, odd.AddMinutes(k * 3), 10, a.Ip, a.Ua, "q-1", ["internal"]));
                        Incidents.Add(new([DetectorRules.OffHours], a.Id, odd));
                        break;
                    case DetectorRules.NewSource:
                        var t = date.AddHours(a.FirstHour + 2);
                        list.Add(Call(a, t, 10, $"203.0.113.{rng.Next(250)}", "python-requests/2.31", "q-2", ["internal"]));
                        Incidents.Add(new([DetectorRules.NewSource], a.Id, t));
                        break;
                    case DetectorRules.VolumeSpike:
                        var v = date.AddHours(a.FirstHour + 3);
                        for (var k = 0; k < 10; k++) list.Add(Call(a, v.AddMinutes(k * 7), 2_000 + rng.Next(2_000), a.Ip, a.Ua, "q-3", ["internal"]));
                        Incidents.Add(new([DetectorRules.VolumeSpike], a.Id, v));
                        break;
                    case DetectorRules.BulkExport:
                        var x = date.AddHours(a.FirstHour + 1);
                        for (var k = 0; k < 7; k++) list.Add(Call(a, x.AddMinutes(k), 20, a.Ip, a.Ua, $"q-x{k}", ["pii", "financial"]));
                        Incidents.Add(new([DetectorRules.BulkExport], a.Id, x));
                        break;
                    case DetectorRules.PrivilegeChange:
                        // Done by the project's admin (the first actor) during the admin's own working hours.
                        var p = date.AddHours(people[0].FirstHour + 1 + rng.Next(6)).AddMinutes(rng.Next(60));
                        var target = Guid.CreateVersion7(p).ToString();
                        list.Add(new AuditEventDraft
                        {
                            ProjectId = projectId, EventType = "member.role_changed", OccurredAt = p, Actor = new AuditActor("user", people[0].Id, people[0].Email, "admin", ClientIp: people[0].Ip),
                            ResourceType = "member", ResourceId = Guid.CreateVersion7(p).ToString(), Action = "role_changed",
                            BeforeState = $$"""{"user_id":"{{target}}","email":"x{{index}}@bank.test","role":"user","suspended":false}""",
                            AfterState = $$"""{"user_id":"{{target}}","email":"x{{index}}@bank.test","role":"admin","suspended":false}""",
                            SecurityLevel = AuditSecurityLevel.Warning,
                        });
                        Incidents.Add(new([DetectorRules.PrivilegeChange], target, p));
                        break;
                    case DetectorRules.BruteForce:
                        var ip = $"198.51.100.{1 + rng.Next(250)}";
                        var b = date.AddHours(rng.Next(24));
                        for (var k = 0; k < 8; k++) list.Add(Rejected(b.AddSeconds(k * 15 + rng.Next(10)), ip, $"gp_{rng.Next(100_000):x5}x"));
                        Incidents.Add(new([DetectorRules.BruteForce], ip, b));
                        break;
                }
            }
            // Noise: stray failed attempts (typos, expired bookmarks), a benign role change, rare larger reports.
            for (var k = 0; k < 3; k++) list.Add(Rejected(date.AddHours(rng.NextDouble() * 24), $"192.0.2.{rng.Next(250)}", $"gp_{rng.Next(100_000):x5}y"));
            if (rng.NextDouble() < 0.3)
            {
                var u = Guid.CreateVersion7(date).ToString();
                list.Add(new AuditEventDraft
                {
                    ProjectId = projectId, EventType = "member.role_changed", OccurredAt = date.AddHours(people[0].FirstHour + 2), Actor = new AuditActor("user", people[0].Id, people[0].Email, "admin"),
                    ResourceType = "member", ResourceId = u, Action = "role_changed",
                    BeforeState = $$"""{"user_id":"{{u}}","role":"user"}""", AfterState = $$"""{"user_id":"{{u}}","role":"data"}""",
                });
            }
            if (incidents && day == days - 4)
                foreach (var s in sleepers)
                {
                    var at = date.AddHours(10);
                    list.AddRange(Enumerable.Range(0, 3).Select(k => Call(s, at.AddMinutes(k * 5), 20, s.Ip, s.Ua, "q-report", null)));
                    Incidents.Add(new([DetectorRules.DormantKey], s.Id, at));
                }
            list.Sort((l, r) => l.OccurredAt!.Value.CompareTo(r.OccurredAt!.Value));
            yield return (day, list);
        }
    }

    private AuditEventDraft Call(Actor a, DateTimeOffset at, long rows, string ip, string ua, string query, string[]? classes) => new()
    {
        ProjectId = projectId, EventType = GatewayService.ExecutedEvent, OccurredAt = at,
        Actor = new AuditActor(a.Type, a.Id, a.Email, "user", ClientIp: ip, UserAgent: ua),
        ResourceType = "approved_query", ResourceId = query, Action = "execute", RowsReturned = rows, DataClassifications = classes, DurationMs = 3,
        Details = """{"outcome":"executed"}""",
    };

    private static AuditEventDraft Rejected(DateTimeOffset at, string ip, string prefix) => new()
    {
        ProjectId = AuditEventDraft.OrganizationChain, EventType = GatewayService.KeyRejectedEvent, OccurredAt = at, Success = false,
        Actor = new AuditActor("api_key", null, ClientIp: ip, UserAgent: "curl/8.5"), ResourceType = "api_key", Action = "unknown",
        Details = $$"""{"keyPrefix":"{{prefix}}","outcome":"unauthenticated","reason":"unknown"}""", SecurityLevel = AuditSecurityLevel.Warning,
    };

    /// <summary>Precision and recall of one rule: an alert is a true positive when it names an incident's subject within a day of it.</summary>
    public sealed record RuleQuality(string Rule, int Incidents, int Detected, int Alerts, int TruePositiveAlerts)
    {
        public double Recall => Incidents == 0 ? 1 : (double)Detected / Incidents;
        public double Precision => Alerts == 0 ? (Incidents == 0 ? 1 : 0) : (double)TruePositiveAlerts / Alerts;
    }

    public static IReadOnlyList<RuleQuality> Evaluate(IReadOnlyList<ScenarioIncident> incidents, IReadOnlyList<(string Rule, string Subject, DateTimeOffset First, DateTimeOffset Last)> alerts)
    {
        static bool Match(ScenarioIncident i, (string Rule, string Subject, DateTimeOffset First, DateTimeOffset Last) a) =>
            i.Rules.Contains(a.Rule) && i.Subject == a.Subject && a.Last >= i.At.AddDays(-1) && a.First <= i.At.AddDays(1);
        return DetectorRules.All.Where(r => !r.RealTime).Select(r =>
        {
            var mine = incidents.Where(i => i.Rules.Contains(r.Rule)).ToList();
            var found = alerts.Where(a => a.Rule == r.Rule).ToList();
            return new RuleQuality(r.Rule, mine.Count, mine.Count(i => found.Any(a => Match(i, a))), found.Count, found.Count(a => mine.Any(i => Match(i, a))));
        }).ToList();
    }
}
