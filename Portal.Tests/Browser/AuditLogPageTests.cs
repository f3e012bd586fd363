using Microsoft.Playwright;
using Portal.Tests.Audit;
using Portal.Tests.Infrastructure;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace Portal.Tests.Browser;

[Collection(BrowserCollection.Name)]
public class AuditLogPageTests(BrowserFixture browser, ITestOutputHelper output)
{
    [Fact]
    public async Task Compliance_officer_filters_opens_hostile_event_as_text_and_exports_the_filtered_csv()
    {
        await using var db = await TestDatabase.CreateAsync("sqlite");
        await using var app = PortalApp.ForBrowser(db);
        var (projectId, _) = await AuditExportEndpointTests.SeedAsync(app);
        await using var b = await browser.OpenAsync(app, output);

        await b.RunAsync(async page =>
        {
            var dialogs = 0;
            page.Dialog += (_, d) => { dialogs++; _ = d.DismissAsync(); }; // alert(1) would open one
            await b.SignInAsync("carol@northwind.test");
            await page.GetByRole(AriaRole.Link, new() { Name = "Audit log" }).ClickAsync();
            await Expect(page).ToHaveURLAsync($"{page.Url.Split("/p/")[0]}/p/{projectId}/audit");
            await b.WaitInteractiveAsync();
            var rows = page.Locator("#audit-events .audit-row");
            await Expect(page.Locator("#audit-events .audit-day")).ToHaveCountAsync(1);
            await Expect(rows.Filter(new() { HasText = "member.added" })).ToHaveCountAsync(2);
            await Expect(rows.Filter(new() { HasText = "query.executed" })).ToHaveCountAsync(1);

            await page.Locator("#verify-chain").ClickAsync();
            await Expect(page.Locator("#chain-status")).ToContainTextAsync("Chain intact");

            await b.ChooseAsync(page.Locator("#filter-type"), "query.executed");
            await page.Locator("#apply-filters").ClickAsync();
            await Expect(rows).ToHaveCountAsync(1);
            await Expect(rows.First).ToContainTextAsync("alert");
            await Expect(rows.First).ToContainTextAsync(AuditExportEndpointTests.Script); // the summary, as text
            await b.ScreenshotAsync("audit-log");

            await rows.First.GetByRole(AriaRole.Button, new() { Name = "Details of event" }).ClickAsync();
            var detail = page.Locator("#event-detail");
            await Expect(detail.Locator("#detail-prompt")).ToHaveTextAsync(AuditExportEndpointTests.Script);
            await Expect(detail.Locator("#detail-sql")).ToHaveTextAsync(AuditExportEndpointTests.Formula);
            await Expect(detail.Locator("#detail-details")).ToContainTextAsync("\"note\": \"<script>alert(1)</script>\"");
            await Expect(detail).ToContainTextAsync("sess-hostile");
            Assert.Equal(0, await page.Locator("#event-detail script, #audit-events script").CountAsync());
            await b.ScreenshotAsync("audit-event-detail");

            // The session view narrows the log to that session's events.
            await detail.Locator("#show-session").ClickAsync();
            await Expect(page.Locator("#session-filter")).ToContainTextAsync("sess-hostile");
            await Expect(rows).ToHaveCountAsync(1);

            var download = await page.RunAndWaitForDownloadAsync(() => page.Locator("#export-csv").ClickAsync());
            Assert.EndsWith(".csv", download.SuggestedFilename);
            var csv = await File.ReadAllTextAsync((await download.PathAsync())!);
            var lines = csv.TrimEnd().Split('\n');
            Assert.Equal(2, lines.Length); // header + the filtered event
            Assert.Contains("query.executed", lines[1]);
            Assert.Contains("'" + AuditExportEndpointTests.Formula, lines[1]);
            Assert.DoesNotContain("member.added", csv);
            Assert.Equal(0, dialogs);
        });
    }

    [Fact]
    public async Task Auditor_includes_archived_events_sees_them_labelled_and_opens_one_as_text()
    {
        await using var db = await TestDatabase.CreateAsync("sqlite");
        await using var app = PortalApp.ForBrowser(db);
        var (projectId, _) = await Audit.AuditLogArchiveTests.SeedArchivedAsync(app);
        await using var b = await browser.OpenAsync(app, output);

        await b.RunAsync(async page =>
        {
            var dialogs = 0;
            page.Dialog += (_, d) => { dialogs++; _ = d.DismissAsync(); };
            await b.SignInAsync("carol@northwind.test");
            await page.GotoAsync($"{app.BaseUrl}/p/{projectId}/audit");
            await b.WaitInteractiveAsync();
            await Expect(page.Locator("#audit-events .audit-row").First).ToBeVisibleAsync();
            await Expect(page.Locator("#archived-events")).ToHaveCountAsync(0);

            await page.Locator("#include-archived").ClickAsync();
            var archived = page.Locator("#archived-events .archived-row");
            await Expect(page.Locator("#archived-heading")).ToHaveTextAsync("From the archive");
            await Expect(archived).ToHaveCountAsync(4);
            await Expect(archived.First.Locator(".audit-archived")).ToHaveTextAsync("archived");
            Assert.Contains("archived=1", await page.Locator("#export-csv").GetAttributeAsync("href"));

            var hostile = archived.Filter(new() { HasText = AuditExportEndpointTests.Script });
            await Expect(hostile).ToHaveCountAsync(1);
            await b.ScreenshotAsync("audit-log-archived");
            await hostile.GetByRole(AriaRole.Button, new() { Name = "Details of archived event" }).ClickAsync();
            var detail = page.Locator("#event-detail");
            await Expect(detail.Locator("#detail-archived")).ToContainTextAsync("Archived");
            await Expect(detail.Locator("#detail-prompt")).ToHaveTextAsync(AuditExportEndpointTests.Script);
            await Expect(detail.Locator("#detail-sql")).ToHaveTextAsync(AuditExportEndpointTests.Formula);
            Assert.Equal(0, await page.Locator("#event-detail script, #archived-events script").CountAsync());
            await page.Keyboard.PressAsync("Escape");

            // The archive follows the page's filters.
            await page.Locator("#filter-text").FillAsync(Audit.AuditLogArchiveTests.Needle);
            await page.Locator("#apply-filters").ClickAsync();
            await Expect(archived).ToHaveCountAsync(1);
            await Expect(archived.First).ToContainTextAsync("gateway.query_executed");
            Assert.Equal(0, dialogs);
        });
    }

    [Fact]
    public async Task Compliance_officer_sees_the_week_on_the_overview_and_follows_the_blocked_calls_into_the_log()
    {
        await using var db = await TestDatabase.CreateAsync("sqlite");
        await using var app = PortalApp.ForBrowser(db);
        var (projectId, _) = await AuditExportEndpointTests.SeedAsync(app);
        foreach (var key in new[] { "key-sprayed-1", "key-sprayed-2" })
            await app.Get<Portal.Domain.Audit.AuditWriter>().AppendAsync(new Portal.Domain.Audit.AuditEventDraft
            {
                ProjectId = projectId, EventType = Portal.Domain.Gateway.GatewayService.DeniedEvent, Actor = new("api_key", key),
                ResourceType = "approved_query", ResourceId = "q-1", Action = "execute", Success = false, ErrorMessage = "The API key was revoked.",
                SecurityLevel = Portal.Domain.Audit.AuditSecurityLevel.Warning,
            });
        await using var b = await browser.OpenAsync(app, output);

        await b.RunAsync(async page =>
        {
            await b.SignInAsync("carol@northwind.test");
            await page.GotoAsync($"{app.BaseUrl}/p/{projectId}");
            await b.WaitInteractiveAsync();
            var card = page.Locator("#overview-audit");
            await Expect(card.GetByRole(AriaRole.Heading, new() { Name = "Audit trail, last 7 days" })).ToBeVisibleAsync();
            await Expect(page.Locator("#overview-audit-blocked")).ToHaveTextAsync("2");
            await Expect(page.Locator("#overview-audit-keys")).ToHaveTextAsync("3"); // the two refused keys and key-hostile
            await Expect(page.Locator("#overview-audit-users")).ToHaveTextAsync("1"); // Ada, who added the members
            var events = int.Parse(await page.Locator("#overview-audit-events").InnerTextAsync(), System.Globalization.NumberStyles.AllowThousands);
            Assert.True(events >= 5, $"{events} events"); // the suite's own events, two members, the query, two denials
            await b.ScreenshotAsync("project-overview-audit");

            await page.Locator("#overview-audit-blocked-link").ClickAsync();
            await Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex($"/p/{projectId}/audit\\?type=gateway.query_denied$"));
            await b.WaitInteractiveAsync();
            var rows = page.Locator("#audit-events .audit-row");
            await Expect(rows).ToHaveCountAsync(2);
            await Expect(rows.Filter(new() { HasText = "gateway.query_denied" })).ToHaveCountAsync(2);
            await Expect(page.Locator("#filter-type")).ToContainTextAsync("gateway.query_denied");
        });
    }

    [Fact]
    public async Task A_project_user_without_audit_access_sees_no_audit_figures_on_the_overview()
    {
        await using var db = await TestDatabase.CreateAsync("sqlite");
        await using var app = PortalApp.ForBrowser(db);
        var (projectId, _) = await AuditExportEndpointTests.SeedAsync(app);
        await using var b = await browser.OpenAsync(app, output);

        await b.RunAsync(async page =>
        {
            await b.SignInAsync("uma@northwind.test");
            await page.GotoAsync($"{app.BaseUrl}/p/{projectId}");
            await b.WaitInteractiveAsync();
            await Expect(page.Locator("#stat-members")).ToBeVisibleAsync();
            await Expect(page.Locator("#overview-audit")).ToHaveCountAsync(0);
        });
    }
}
