using System.Globalization;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Portal.Domain.Audit;
using Portal.Domain.Compliance;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Compliance;

/// <summary>
/// The report's figures come from one GROUP BY pass over the period (ReportTotals) rolled up in memory. These tests
/// seed every event type, denial reason, classification set and kind of principal the report distinguishes, and check
/// every figure and grouped table against the same figures computed here, event by event, from what was written.
/// </summary>
public class ReportFiguresTests
{
    private static readonly string[] Outcomes = ["forbidden", "rateLimited", "invalidParameters", "injectionBlocked", "timeout"];
    private static readonly string[]?[] LabelSets = [["pii"], ["financial"], ["pii", "financial"], ["phi"], [], null];

    private static readonly AuditActor[] Principals =
    [
        new("api_key", "0190f000-0000-7000-8000-000000000001", Role: "user"),
        new("api_key", "0190f000-0000-7000-8000-000000000002", Role: "user"),
        new("user", "0190f000-0000-7000-8000-0000000000a1", "uma@northwind.test", "user"),
        new("user", "0190f000-0000-7000-8000-0000000000a2", "ada@northwind.test", "admin"),
        new("user", "0190f000-0000-7000-8000-0000000000a3"),
        new("agent", "agent-7"),
        AuditActor.System,
    ];

    /// <summary>About 2,200 events in the period: executions, denials with every reason, rejections, other failures, changes, approvals, alerts.</summary>
    private static List<AuditEventDraft> Events(Guid project, DateTimeOffset from)
    {
        var list = new List<AuditEventDraft>();
        for (var i = 0; i < 1_700; i++)
        {
            var at = from.AddMinutes(37 * i + i % 11); // spread over about 44 days: the tail falls after the period
            var who = Principals[i % Principals.Length];
            var kind = i % 20;
            list.Add(kind switch
            {
                < 8 => new AuditEventDraft
                {
                    ProjectId = project, EventType = "gateway.query_executed", Actor = who, ResourceType = "approved_query", ResourceId = $"q-{i % 4}",
                    Action = "execute", OccurredAt = at, DataClassifications = LabelSets[i % LabelSets.Length], RowsReturned = i % 3 == 0 ? null : i % 50,
                    // A few executions fail after running (a timeout while reading): they count as executions and as failures.
                    Success = i % 97 != 0, ErrorMessage = i % 97 == 0 ? "timeout" : null,
                    SecurityLevel = i % 53 == 0 ? AuditSecurityLevel.Alert : AuditSecurityLevel.Normal,
                    Details = "{\"outcome\":\"executed\"}",
                },
                < 12 => new AuditEventDraft
                {
                    ProjectId = project, EventType = "gateway.query_denied", Actor = who, ResourceType = "approved_query", ResourceId = $"q-{i % 4}",
                    Action = i % 7 == 0 ? "validate" : "execute", OccurredAt = at, Success = false, ErrorMessage = "denied", SecurityLevel = AuditSecurityLevel.Warning,
                    // Every reason, plus details without an outcome and details that are not JSON at all ("Denied").
                    Details = ((i / 20) % 7) switch { 5 => "{\"reason\":\"other\"}", 6 => "not json", var r => $"{{\"outcome\":\"{Outcomes[r]}\"}}" },
                },
                12 => new AuditEventDraft
                {
                    ProjectId = project, EventType = "auth.api_key_rejected", Actor = who, ResourceType = "api_key",
                    Action = ((i / 20) % 3) switch { 0 => "revoked", 1 => "expired", _ => null }, OccurredAt = at, Success = false,
                    Details = "{\"outcome\":\"unauthenticated\"}",
                },
                13 => new AuditEventDraft
                {
                    ProjectId = project, EventType = "member.invite_failed", Actor = who, ResourceType = "member", Action = "invite", OccurredAt = at,
                    Success = false, ErrorMessage = "mail server down", Details = "{\"outcome\":\"failed\"}",
                },
                14 or 15 or 16 => new AuditEventDraft
                {
                    ProjectId = project, EventType = kind == 14 ? "rate_limit.changed" : kind == 15 ? "member.role_changed" : "column_mask.removed",
                    Actor = who, ResourceType = "setting", ResourceId = $"s-{i % 9}", OccurredAt = at,
                    BeforeState = kind == 16 ? "{\"masked\":true}" : $"{{\"v\":{i}}}", AfterState = kind == 16 ? null : $"{{\"v\":{i + 1}}}",
                },
                17 => new AuditEventDraft
                {
                    ProjectId = project, EventType = (i / 20) % 2 == 0 ? "suggestion.approved" : "suggestion.rejected", Actor = who,
                    ResourceType = "suggestion", ResourceId = $"sugg-{i}", OccurredAt = at,
                    // A decision with states is an approval, not a configuration change, though the headline counts it as a change.
                    AfterState = (i / 20) % 4 == 0 ? "{\"status\":\"approved\"}" : null,
                },
                18 => new AuditEventDraft
                {
                    ProjectId = project, EventType = ((i / 20) % 3) switch { 0 => "alert.created", 1 => "alert.acknowledged", _ => "alert.resolved" },
                    Actor = who, ResourceType = "alert", ResourceId = $"alert-{i / 60}", Action = "injection_attempt", OccurredAt = at,
                    AfterState = (i / 20) % 3 == 2 ? "{\"status\":\"resolved\"}" : null, SecurityLevel = AuditSecurityLevel.Alert,
                },
                _ => new AuditEventDraft
                {
                    ProjectId = project, EventType = "audit.exported", Actor = who, ResourceType = "audit", Action = "export", OccurredAt = at,
                },
            });
        }
        // More configuration changes than the PDF lists (1,000): the list shows the first ones and the total.
        for (var i = 0; i < 1_050; i++)
            list.Add(new AuditEventDraft
            {
                ProjectId = project, EventType = "rate_limit.changed", Actor = Principals[3], ResourceType = "rate_limit", ResourceId = $"rl-{i % 5}",
                OccurredAt = from.AddDays(2).AddSeconds(20 * i + 7), BeforeState = $"{{\"requests\":{i}}}", AfterState = $"{{\"requests\":{i + 1}}}",
            });
        // On the edges: the first instant counts, the end of the period does not, nor does anything before it.
        list.Add(new AuditEventDraft { ProjectId = project, EventType = "gateway.query_executed", Actor = Principals[0], OccurredAt = from, DataClassifications = ["pii"], RowsReturned = 1 });
        list.Add(new AuditEventDraft { ProjectId = project, EventType = "gateway.query_executed", Actor = Principals[0], OccurredAt = from.AddSeconds(-1), DataClassifications = ["pii"], RowsReturned = 1 });
        return list;
    }

    private static string Principal(string type, string? id, string? email) =>
        email is { Length: > 0 } ? email : type == "api_key" ? $"API key {id ?? "(unknown)"}" : id is { Length: > 0 } ? $"{type} {id}" : type;

    private static string? Outcome(string? details)
    {
        if (details is null) return null;
        try { return JsonDocument.Parse(details).RootElement.TryGetProperty("outcome", out var o) ? o.GetString() : null; }
        catch (JsonException) { return null; }
    }

    private static string Reason(AuditEventDraft e) =>
        e.EventType == "gateway.query_denied" ? ReportDataBuilder.Humanize(Outcome(e.Details) ?? "denied")
        : e.EventType == "auth.api_key_rejected" ? "API key " + (e.Action ?? "rejected")
        : e.EventType;

    private static string Labels(IReadOnlyList<string>? labels) => labels is { Count: > 0 } l ? string.Join(", ", l) : "(none)";

    private static bool HasState(AuditEventDraft e) => e.BeforeState is not null || e.AfterState is not null;

    private static ReportSection SectionOf(ReportData data, string title) => Assert.Single(data.Sections, s => s.Title == title);

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Soc2_figures_from_the_single_aggregation_pass_match_the_events_one_by_one(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db);
        var w = await ReportsWorld.CreateAsync(app, seedEvents: false);
        var writer = app.Get<AuditWriter>();
        var events = Events(w.ProjectId, w.From);
        foreach (var chunk in events.Chunk(200)) await Task.WhenAll(chunk.Select(e => writer.AppendAsync(e)));

        var service = app.Get<ComplianceReportService>();
        var p = new ReportParameters { Type = ReportTypes.Soc2, From = w.From, To = w.To };
        var requested = await service.RequestAsync(w.ProjectId, w.OfficerId, p);
        // Written after the request, inside the period: beyond the chain position the report covers, so never counted.
        await writer.AppendAsync(new AuditEventDraft
        {
            ProjectId = w.ProjectId, EventType = "gateway.query_denied", Actor = Principals[0], OccurredAt = w.From.AddDays(3), Success = false,
            Details = "{\"outcome\":\"forbidden\"}",
        });
        var row = await service.GetAsync(w.ProjectId, requested.ReportId);
        var data = await app.Get<ReportDataBuilder>().BuildAsync(row, p, "test", DateTimeOffset.UtcNow, (_, _) => Task.CompletedTask, CancellationToken.None);

        var counted = events.Where(e => e.OccurredAt >= w.From && e.OccurredAt < w.To).ToList();
        Assert.True(counted.Count is > 2_000 and < 2_800, $"{counted.Count} events in the period");
        Assert.Equal(counted.Count, requested.EventCount);
        Assert.Equal(counted.Count, row.EventCount);
        Assert.Equal(counted.Count, data.EventCount);

        string H(string label) => Assert.Single(data.Headlines, h => h.Label == label).Value;
        Assert.Equal(ReportDataBuilder.N(counted.Count), H("Events in period"));
        Assert.Equal(ReportDataBuilder.N(counted.Count(e => e.EventType == "gateway.query_executed")), H("Queries executed"));
        Assert.Equal(ReportDataBuilder.N(counted.Count(e => e.EventType == "gateway.query_denied")), H("Queries denied"));
        Assert.Equal(ReportDataBuilder.N(counted.Count(e => e.EventType == "auth.api_key_rejected")), H("API keys rejected"));
        Assert.Equal(ReportDataBuilder.N(counted.Count(e => !e.Success)), H("Failed or refused actions"));
        Assert.Equal(ReportDataBuilder.N(counted.Count(HasState)), H("Configuration changes"));
        Assert.Equal(ReportDataBuilder.N(counted.Count(e => e.SecurityLevel == AuditSecurityLevel.Alert)), H("Alert-level events"));

        // Daily activity: every day of the period, with the day's succeeded and failed events.
        var expectedDays = new List<DayActivity>();
        for (var d = DateOnly.FromDateTime(w.From.UtcDateTime); d.ToDateTime(TimeOnly.MinValue) < w.To.UtcDateTime; d = d.AddDays(1))
        {
            var day = counted.Where(e => DateOnly.FromDateTime(e.OccurredAt!.Value.UtcDateTime) == d).ToList();
            expectedDays.Add(new DayActivity(d, day.Count(e => e.Success), day.Count(e => !e.Success)));
        }
        Assert.Equal(expectedDays, data.DailyActivity);

        var expectedReasons = counted.Where(e => !e.Success).GroupBy(Reason).Select(g => new ReasonCount(g.Key, g.LongCount()))
            .OrderByDescending(r => r.Count).ThenBy(r => r.Reason, StringComparer.Ordinal).ToList();
        Assert.Equal(expectedReasons, data.DenialsByReason);
        Assert.Contains(data.DenialsByReason, r => r.Reason == "Denied"); // details without an outcome, or not JSON
        Assert.Contains(data.DenialsByReason, r => r.Reason == "Injection blocked");
        Assert.Contains(data.DenialsByReason, r => r.Reason == "API key rejected"); // a rejection without an action
        Assert.Contains(data.DenialsByReason, r => r.Reason == "member.invite_failed");

        // Executions by principal and classification: one row per principal and classification set.
        var executions = SectionOf(data, "Query executions by principal and classification").Table!;
        var expectedExecutions = counted.Where(e => e.EventType == "gateway.query_executed")
            .GroupBy(e => (e.Actor.Type, e.Actor.Id, e.Actor.Email, Labels: e.DataClassifications is null ? null : JsonSerializer.Serialize(e.DataClassifications)))
            .Select(g => (Who: Principal(g.Key.Type, g.Key.Id, g.Key.Email), Labels: Labels(g.First().DataClassifications), Count: g.LongCount(),
                Rows: g.Sum(e => e.RowsReturned ?? 0), Last: g.Max(e => e.OccurredAt!.Value)))
            .OrderByDescending(r => r.Count).ThenBy(r => r.Who, StringComparer.Ordinal).ThenBy(r => r.Labels, StringComparer.Ordinal)
            .ThenByDescending(r => r.Rows).ThenByDescending(r => r.Last)
            .Select(r => new[] { r.Who, r.Labels, ReportDataBuilder.N(r.Count), ReportDataBuilder.N(r.Rows), ReportDataBuilder.Stamp(r.Last) }).ToList();
        Assert.Equal(expectedExecutions.Count, executions.TotalRows);
        Assert.Equal(expectedExecutions, executions.Rows);
        Assert.Contains(executions.Rows, r => r[1] == "(none)"); // no classifications, and an empty list
        Assert.Contains(executions.Rows, r => r[1] == "pii, financial");
        Assert.Contains(executions.Rows, r => r[0] == "system");
        Assert.Contains(executions.Rows, r => r[0] == "user 0190f000-0000-7000-8000-0000000000a3");

        // Denied and blocked attempts: one row per principal and the reason's raw parts (event type, outcome, action).
        var denials = SectionOf(data, "Denied and blocked attempts").Table!;
        var expectedDenials = counted.Where(e => !e.Success)
            .GroupBy(e => (e.Actor.Type, e.Actor.Id, e.Actor.Email, e.EventType, Outcome: Outcome(e.Details), e.Action))
            .Select(g => (Count: g.LongCount(), Last: g.Max(e => e.OccurredAt!.Value),
                Row: new[] { Principal(g.Key.Type, g.Key.Id, g.Key.Email), Reason(g.First()), ReportDataBuilder.N(g.LongCount()), ReportDataBuilder.Stamp(g.Max(e => e.OccurredAt!.Value)) }))
            .OrderByDescending(s => s.Count).ThenBy(s => s.Row[0], StringComparer.Ordinal).ThenBy(s => s.Row[1], StringComparer.Ordinal).ThenByDescending(s => s.Last)
            .Select(s => s.Row).ToList();
        Assert.Equal(expectedDenials.Count, denials.TotalRows);
        Assert.Equal(expectedDenials, denials.Rows);

        // The lists read only their own event types: approvals, configuration changes (over 1,000: the first 1,000 and the total), alerts.
        var approvals = SectionOf(data, "Approvals given").Table!;
        var expectedApprovals = counted.Where(e => e.EventType.StartsWith("suggestion.", StringComparison.Ordinal)).OrderBy(e => e.OccurredAt).ToList();
        Assert.Equal(expectedApprovals.Count, approvals.TotalRows);
        Assert.Equal(expectedApprovals.Select(e => (ReportDataBuilder.Stamp(e.OccurredAt!.Value), e.EventType)), approvals.Rows.Select(r => (r[0], r[1])));

        var changes = SectionOf(data, "Configuration changes").Table!;
        var expectedChanges = counted.Where(e => HasState(e) && !e.EventType.StartsWith("suggestion.", StringComparison.Ordinal) && !e.EventType.StartsWith("alert.", StringComparison.Ordinal))
            .OrderBy(e => e.OccurredAt).ToList();
        Assert.True(expectedChanges.Count > ReportDataBuilder.MaxRows);
        Assert.Equal(expectedChanges.Count, changes.TotalRows);
        Assert.Equal(expectedChanges.Take(ReportDataBuilder.MaxRows).Select(e => (ReportDataBuilder.Stamp(e.OccurredAt!.Value), e.EventType)),
            changes.Rows.Select(r => (r[0], r[1])));
        Assert.Contains(changes.Rows, r => r[4] == "{\"masked\":true} → —");

        var alerts = SectionOf(data, "Security alerts").Table!;
        var expectedAlerts = counted.Where(e => e.EventType.StartsWith("alert.", StringComparison.Ordinal)).GroupBy(e => e.ResourceId)
            .OrderBy(g => g.Min(e => e.OccurredAt)).Select(g => g.Key!).ToList();
        Assert.Equal(expectedAlerts.Count, alerts.TotalRows);
        Assert.Equal(expectedAlerts, alerts.Rows.Select(r => r[0]));

        // The chain positions of the period's events, and a real verification of the whole chain.
        await using (var ctx = db.NewContext())
        {
            var inPeriod = ctx.AuditEvents.Where(e => e.ProjectId == w.ProjectId && e.OccurredAt >= w.From && e.OccurredAt < w.To && e.Seq <= row.MaxSeq);
            Assert.Equal(await inPeriod.MinAsync(e => e.Seq), data.Chain.FirstSeq);
            Assert.Equal(await inPeriod.MaxAsync(e => e.Seq), data.Chain.LastSeq);
            var last = await ctx.AuditEvents.Where(e => e.ProjectId == w.ProjectId && e.Seq == data.Chain.LastSeq).Select(e => e.Hash).SingleAsync();
            Assert.Equal(Convert.ToHexStringLower(last), data.Chain.LastHash);
            Assert.Equal(await ctx.AuditEvents.CountAsync(e => e.ProjectId == w.ProjectId), data.Chain.EventsChecked);
        }
        Assert.True(data.Chain.Ok, data.Chain.Message);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task An_event_inserted_beyond_the_chain_head_is_not_counted_and_the_report_says_the_chain_is_broken(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db);
        var w = await ReportsWorld.CreateAsync(app);
        long head;
        await using (var ctx = db.NewContext())
        {
            head = await ctx.AuditChainHeads.Where(h => h.ProjectId == w.ProjectId).Select(h => h.Seq).SingleAsync();
            var template = await ctx.AuditEvents.AsNoTracking().Where(e => e.ProjectId == w.ProjectId && e.OccurredAt >= w.From).OrderBy(e => e.Seq).FirstAsync();
            // Far beyond the head, so the writer's own next appends (the report's audit events) do not collide with it.
            template.Seq = head + 1_000;
            template.Id = Guid.CreateVersion7();
            template.OccurredAt = w.From.AddDays(1);
            ctx.AuditEvents.Add(template);
            await ctx.SaveChangesAsync();
        }

        var service = app.Get<ComplianceReportService>();
        var requested = await service.RequestAsync(w.ProjectId, w.OfficerId, new ReportParameters { Type = ReportTypes.Soc2, From = w.From, To = w.To });
        Assert.Equal(14, requested.EventCount); // the forged row sits beyond the recorded head: outside what the report covers
        Assert.True(await service.GenerateAsync(w.ProjectId, requested.ReportId, "test"));
        var report = await service.GetAsync(w.ProjectId, requested.ReportId);
        Assert.True(report.Status == ReportStatus.Ready, report.Error);
        Assert.Equal(14, report.EventCount);
        Assert.False(report.ChainOk);
        var (_, pdf) = await service.DownloadPdfAsync(w.ProjectId, report.Id, new AuditActor("user", w.OfficerId.ToString(), ReportsWorld.Officer));
        var text = await PdfTools.TextAsync(pdf);
        Assert.Contains("FAILED", text);
        Assert.Contains($"BROKEN at seq {(head + 1).ToString(CultureInfo.InvariantCulture)}", text); // the verification found the gap before it
    }
}
