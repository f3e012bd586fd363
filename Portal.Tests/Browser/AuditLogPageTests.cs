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
}
