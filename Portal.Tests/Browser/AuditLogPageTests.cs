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
}
