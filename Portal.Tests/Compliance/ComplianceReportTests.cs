using System.Text.RegularExpressions;
using Portal.Domain;
using Portal.Domain.Audit;
using Portal.Domain.Compliance;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Compliance;

public class ComplianceReportTests
{
    private static async Task<(ComplianceReport Report, byte[] Pdf)> GenerateAsync(PortalApp app, ReportsWorld w, ReportParameters p)
    {
        var service = app.Get<ComplianceReportService>();
        var requested = await service.RequestAsync(w.ProjectId, w.OfficerId, p);
        Assert.True(await service.GenerateAsync(w.ProjectId, requested.ReportId, "test"));
        var report = await service.GetAsync(w.ProjectId, requested.ReportId);
        Assert.True(report.Status == ReportStatus.Ready, report.Error);
        var (_, pdf) = await service.DownloadPdfAsync(w.ProjectId, report.Id, new AuditActor("user", w.OfficerId.ToString(), ReportsWorld.Officer));
        return (report, pdf);
    }

    private static string Squash(string s) => Regex.Replace(s, @"\s+", " ");

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Soc2_report_shows_the_seeded_numbers_is_signed_and_a_one_byte_change_fails(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db);
        var w = await ReportsWorld.CreateAsync(app);

        var (report, pdf) = await GenerateAsync(app, w, new ReportParameters { Type = ReportTypes.Soc2, From = w.From, To = w.To });
        await PdfTools.KeepAsync(pdf, $"soc2-{provider}.pdf");
        Assert.Equal(14, report.EventCount);
        Assert.True(report.ChainOk);
        Assert.Matches("^[0-9a-f]{64}$", report.PdfSha256!);

        var text = Squash(await PdfTools.TextAsync(pdf));
        Assert.Contains("SOC 2 access review", text);
        Assert.Contains(report.Id.ToString(), text);
        Assert.Contains("14 audit events were recorded", text);
        Assert.Matches(@"5\s+Queries executed|Queries executed", text);
        Assert.Contains("Forbidden 2", text);
        Assert.Contains("Rate limited 1", text);
        Assert.Contains("API key revoked 1", text);
        Assert.Contains("suggestion.approved", text);
        Assert.Contains("member.role_changed", text);
        Assert.Contains("{\"role\":\"user\"} →", text);
        Assert.Contains("{\"role\":\"data\"}", text);
        Assert.Contains("alert-1", text);
        Assert.Contains("30 min", text);
        Assert.Contains("2.0 h", text);
        Assert.Contains(report.DataSha256!, text);
        Assert.Contains("PASSED", text);
        var pages = await PdfTools.PagesAsync(pdf);
        Assert.Contains($"page 1 of {pages}", text);
        Assert.Contains($"page {pages} of {pages}", text);
        var fonts = await PdfTools.FontsAsync(pdf);
        Assert.Contains("DejaVu Sans", fonts);
        var fontLines = fonts.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(2).ToList();
        Assert.NotEmpty(fontLines);
        Assert.All(fontLines, l => Assert.Matches(@"\byes\s+yes\b", l)); // every font embedded (as a subset)

        // The stored file verifies; the same file with one byte changed does not.
        var service = app.Get<ComplianceReportService>();
        Assert.True((await service.VerifyAsync(w.ProjectId, report.Id)).Ok);
        var sig = ReportSigner.Verify(pdf);
        Assert.True(sig.Valid, sig.Message);
        var tampered = (byte[])pdf.Clone();
        var at = pdf.AsSpan().IndexOf("14 audit events"u8.ToArray());
        var index = at > 0 ? at : pdf.Length / 3;
        tampered[index] ^= 0x01;
        Assert.False(ReportSigner.Verify(tampered).Valid);
        var check = await service.VerifyBytesAsync(tampered, report.PdfSha256);
        Assert.False(check.Ok);
        Assert.False(check.HashMatches);
        Assert.False(check.Signature.Valid);
        // Also a change inside the signature itself.
        var sigStart = System.Text.Encoding.Latin1.GetString(pdf).LastIndexOf("/Contents <", StringComparison.Ordinal) + 20;
        var tampered2 = (byte[])pdf.Clone();
        tampered2[sigStart] = tampered2[sigStart] == (byte)'A' ? (byte)'B' : (byte)'A';
        Assert.False(ReportSigner.Verify(tampered2).Valid);
        Assert.True(app.Logs.Errors.Length == 0, app.Logs.Errors);
    }
}

public class ComplianceReportContentTests
{
    private static readonly AuditActor Officer = new("user", null, ReportsWorld.Officer);

    private static async Task<(ComplianceReport Report, byte[] Pdf)> GenerateAsync(PortalApp app, ReportsWorld w, ReportParameters p)
    {
        var service = app.Get<ComplianceReportService>();
        var requested = await service.RequestAsync(w.ProjectId, w.OfficerId, p);
        Assert.True(await service.GenerateAsync(w.ProjectId, requested.ReportId, "test"));
        var report = await service.GetAsync(w.ProjectId, requested.ReportId);
        Assert.True(report.Status == ReportStatus.Ready, report.Error);
        return (report, (await service.DownloadPdfAsync(w.ProjectId, report.Id, Officer)).Pdf);
    }

    private static string Squash(string s) => Regex.Replace(s, @"\s+", " ");

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task A_long_table_breaks_across_pages_and_repeats_its_header_on_each(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db);
        var w = await ReportsWorld.CreateAsync(app, seedEvents: false);
        var writer = app.Get<AuditWriter>();
        var start = w.From.AddDays(1);
        await Task.WhenAll(Enumerable.Range(0, 400).Select(i => writer.AppendAsync(new AuditEventDraft
        {
            ProjectId = w.ProjectId, EventType = "gateway.query_executed", Actor = new AuditActor("user", null, $"analyst{i % 7}@northwind.test"),
            ResourceType = "approved_query", ResourceId = $"q-{i}", OccurredAt = start.AddMinutes(i), Details = $"{{\"outcome\":\"executed\",\"n\":{i}}}",
        })));

        var (report, pdf) = await GenerateAsync(app, w, new ReportParameters { Type = ReportTypes.Custom, From = w.From, To = w.To, EventTypes = ["gateway."] });
        await PdfTools.KeepAsync(pdf, $"custom-long-{provider}.pdf");
        Assert.Equal(400, report.EventCount);
        var pages = await PdfTools.PagesAsync(pdf);
        Assert.InRange(pages, 10, 20); // 400 rows at ~35 a page, plus cover, summary, integrity
        var tablePages = 0;
        for (var page = 3; page < pages; page++)
        {
            var text = await PdfTools.TextAsync(pdf, page);
            if (!text.Contains("gateway.query_executed")) continue;
            tablePages++;
            Assert.Matches(@"When \(UTC\)\s+Event\s+Actor\s+Resource\s+Detail", text); // the header on every page of the table
            Assert.Contains($"page {page} of {pages}", text);
        }
        Assert.True(tablePages >= 8, $"the event table spans {tablePages} pages");
        var all = await PdfTools.TextAsync(pdf);
        Assert.Contains("Events (continued)", all);
        Assert.Contains("q-0 ", all);
        Assert.Contains("q-399", all);
        Assert.Contains("Event types: gateway.", all);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task An_empty_period_gives_a_valid_no_activity_report_and_bad_ranges_are_refused(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db);
        var w = await ReportsWorld.CreateAsync(app);
        var service = app.Get<ComplianceReportService>();

        var (report, pdf) = await GenerateAsync(app, w, new ReportParameters { Type = ReportTypes.Hipaa, From = w.From.AddMonths(-6), To = w.From.AddMonths(-5) });
        await PdfTools.KeepAsync(pdf, $"hipaa-empty-{provider}.pdf");
        Assert.Equal(0, report.EventCount);
        var text = Squash(await PdfTools.TextAsync(pdf));
        Assert.Contains("No activity", text);
        Assert.Contains("No activity in the period", text); // the chart says so rather than drawing nothing
        Assert.Contains("None in period.", text);
        Assert.Contains("PASSED", text);
        Assert.True(ReportSigner.Verify(pdf).Valid);

        var now = DateTimeOffset.UtcNow;
        var backwards = await Assert.ThrowsAsync<DomainException>(() => service.RequestAsync(w.ProjectId, w.OfficerId, new ReportParameters { Type = ReportTypes.Soc2, From = w.To, To = w.From }));
        Assert.Equal("To", backwards.Field);
        Assert.Contains("after its start", backwards.Message);
        var future = await Assert.ThrowsAsync<DomainException>(() => service.RequestAsync(w.ProjectId, w.OfficerId, new ReportParameters { Type = ReportTypes.Soc2, From = now.AddDays(-1), To = now.AddDays(3) }));
        Assert.Contains("ends in the future", future.Message);
        var unknown = await Assert.ThrowsAsync<DomainException>(() => service.RequestAsync(w.ProjectId, w.OfficerId, new ReportParameters { Type = "sox", From = w.From, To = w.To }));
        Assert.Equal("Type", unknown.Field);
        var tooLong = await Assert.ThrowsAsync<DomainException>(() => service.RequestAsync(w.ProjectId, w.OfficerId, new ReportParameters { Type = ReportTypes.Soc2, From = now.AddYears(-5), To = now }));
        Assert.Contains("three years", tooLong.Message);
        var oversized = await Assert.ThrowsAsync<DomainException>(() => service.RequestAsync(w.ProjectId, w.OfficerId, new ReportParameters { Type = ReportTypes.Gdpr, From = w.From, To = w.To, SubjectIdentifier = new string('x', 201) }));
        Assert.Equal("SubjectIdentifier", oversized.Field);
        var tooMany = await Assert.ThrowsAsync<DomainException>(() => service.RequestAsync(w.ProjectId, w.OfficerId, new ReportParameters
            { Type = ReportTypes.Custom, From = w.From, To = w.To, EventTypes = Enumerable.Range(0, 51).Select(i => $"t{i}").ToList() }));
        Assert.Equal("EventTypes", tooMany.Field);
        // Other project's id and unknown ids answer NotFound.
        await Assert.ThrowsAsync<DomainException>(() => service.GetAsync(Guid.CreateVersion7(), report.Id));
        var missing = await Assert.ThrowsAsync<DomainException>(() => service.GetAsync(w.ProjectId, Guid.CreateVersion7()));
        Assert.Equal(ErrorKind.NotFound, missing.Kind);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Gdpr_report_finds_the_data_subject_in_parameters_and_lists_pii_access(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db);
        var w = await ReportsWorld.CreateAsync(app);

        var (report, pdf) = await GenerateAsync(app, w, new ReportParameters { Type = ReportTypes.Gdpr, From = w.From, To = w.To, SubjectIdentifier = "JANE.DOE@example.com" });
        await PdfTools.KeepAsync(pdf, $"gdpr-{provider}.pdf");
        var text = Squash(await PdfTools.TextAsync(pdf));
        Assert.Contains("GDPR personal data access", text);
        Assert.Contains("Data subject search: \"JANE.DOE@example.com\"", text);
        Assert.Equal(2, Regex.Matches(text, "jane.doe@example.com", RegexOptions.IgnoreCase).Count(m => m.Value == "jane.doe@example.com"));
        Assert.Contains("not the result rows themselves", text); // says what the trail does not record
        // Retention settings in force: the project's policies (defaults here), from the retention feature.
        Assert.Contains("Query executions: kept 365 days (1 year) in the live trail, then archived (default).", text);
        Assert.Contains("Sign-ins and page activity: kept 90 days", text);
        Assert.Contains("Access to personal data", text);

        // The CSV holds the underlying events with the report's filters: pii events and subject matches, formula neutralized.
        var csv = new MemoryStream();
        var rows = await app.Get<ComplianceReportService>().WriteCsvAsync(w.ProjectId, report.Id, new AuditActor("user", null, ReportsWorld.Officer), csv);
        Assert.Equal(5, rows); // the 5 pii executions in the period (the 6th is after it)
        var content = System.Text.Encoding.UTF8.GetString(csv.ToArray());
        Assert.Contains("'" + ReportsWorld.Formula.Replace("\"", "\"\""), content);
        Assert.DoesNotContain(",=HYPERLINK", content);
        Assert.DoesNotContain("suggestion.approved", content);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Queued_reports_are_claimed_once_by_racing_workers_and_schedules_produce_each_period_once(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db, new() { ["Reports:InlineEventLimit"] = "0" });
        var w = await ReportsWorld.CreateAsync(app);
        var service = app.Get<ComplianceReportService>();
        var requested = await service.RequestAsync(w.ProjectId, w.OfficerId, new ReportParameters { Type = ReportTypes.Soc2, From = w.From, To = w.To });
        Assert.True(requested.RunsInBackground);
        Assert.Equal(ReportStatus.Queued, (await service.GetAsync(w.ProjectId, requested.ReportId)).Status);

        var runs = await Task.WhenAll(Enumerable.Range(0, 3).Select(i => service.RunQueuedAsync($"worker-{i}")));
        Assert.Equal(1, runs.Sum());
        var report = await service.GetAsync(w.ProjectId, requested.ReportId);
        Assert.Equal(ReportStatus.Ready, report.Status);
        Assert.Equal(100, report.Progress);
        Assert.StartsWith("worker-", report.ClaimedBy);
        var generated = (await app.Get<AuditSearch>().SearchAsync(w.ProjectId, new AuditExportFilter { EventTypes = ["report.generated"] })).Events;
        Assert.Single(generated);
        Assert.Equal(ReportsWorld.Officer, generated[0].ActorEmail);
        var notes = await app.Get<Portal.Domain.Integrations.NotificationService>().ListAsync(w.OfficerId);
        Assert.Contains(notes.Items, n => n.Title == "SOC 2 access review is ready");

        // A schedule due now produces last month's report once, however many workers run the job.
        var schedules = app.Get<ReportScheduleService>();
        var schedule = await schedules.CreateAsync(w.ProjectId, w.AdminId, ReportTypes.Soc2, ReportFrequency.Monthly);
        await Assert.ThrowsAsync<DomainException>(() => schedules.CreateAsync(w.ProjectId, w.AdminId, ReportTypes.Soc2, ReportFrequency.Monthly));
        var bad = await Assert.ThrowsAsync<DomainException>(() => schedules.CreateAsync(w.ProjectId, w.AdminId, ReportTypes.Soc2, "weekly"));
        Assert.Equal("frequency", bad.Field);
        await using (var ctx = await app.Get<Microsoft.EntityFrameworkCore.IDbContextFactory<Portal.Domain.Persistence.PortalDbContext>>().CreateDbContextAsync())
        {
            var row = await ctx.ComplianceReportSchedules.FindAsync(schedule.Id);
            row!.NextRunAt = w.To; // due: last month has just ended
            await ctx.SaveChangesAsync();
        }
        var produced = await Task.WhenAll(Enumerable.Range(0, 3).Select(i => schedules.RunDueAsync($"worker-{i}")));
        Assert.Equal(1, produced.Sum());
        var list = await service.ListAsync(w.ProjectId);
        var scheduled = Assert.Single(list.Items, r => r.ScheduleId == schedule.Id);
        Assert.Equal(w.From, scheduled.PeriodStart);
        Assert.Equal(w.To, scheduled.PeriodEnd);
        Assert.Equal(ReportStatus.Ready, scheduled.Status);
        Assert.Equal(14, scheduled.EventCount);
        Assert.True((await schedules.ListAsync(w.ProjectId)).Single().NextRunAt > DateTimeOffset.UtcNow);
        await Assert.ThrowsAsync<DomainException>(() => schedules.DeleteAsync(Guid.CreateVersion7(), schedule.Id, w.AdminId));
        await schedules.DeleteAsync(w.ProjectId, schedule.Id, w.AdminId);
        Assert.Empty(await schedules.ListAsync(w.ProjectId));
    }
}
