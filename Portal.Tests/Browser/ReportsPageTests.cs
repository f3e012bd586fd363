using Microsoft.Playwright;
using Portal.Domain.Compliance;
using Portal.Tests.Compliance;
using Portal.Tests.Infrastructure;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace Portal.Tests.Browser;

[Collection(BrowserCollection.Name)]
public class ReportsPageTests(BrowserFixture browser, ITestOutputHelper output)
{
    [Fact]
    public async Task Compliance_officer_generates_last_months_soc2_report_follows_progress_downloads_pdf_and_csv_and_verifies()
    {
        await using var db = await TestDatabase.CreateAsync("sqlite");
        // Above 5 events a report goes to the report job, so the page shows it queued and then running.
        await using var app = PortalApp.ForBrowser(db, new() { ["Reports:InlineEventLimit"] = "5" });
        var w = await ReportsWorld.CreateAsync(app);
        await using var b = await browser.OpenAsync(app, output);

        await b.RunAsync(async page =>
        {
            await b.SignInAsync(ReportsWorld.Officer);
            await page.GetByRole(AriaRole.Link, new() { Name = "Reports" }).ClickAsync();
            await Expect(page).ToHaveURLAsync($"{page.Url.Split("/p/")[0]}/p/{w.ProjectId}/reports");
            await b.WaitInteractiveAsync();
            await Expect(page.Locator("#reports-grid")).ToContainTextAsync("No reports yet", new() { Timeout = 15_000 });

            await b.ChooseAsync(page.Locator("#report-type"), "SOC 2");
            await b.ChooseAsync(page.Locator("#report-period"), "Last month");
            await Expect(page.Locator("#generate-card")).ToContainTextAsync($"{w.From.UtcDateTime:yyyy-MM-dd} 00:00 – {w.To.UtcDateTime:yyyy-MM-dd} 00:00 UTC");
            await page.Locator("#generate-report").ClickAsync();

            // Queued for the job: the page shows its progress and says it may be left.
            await Expect(page.Locator("#report-progress")).ToBeVisibleAsync();
            await Expect(page.Locator("#report-progress-message")).ToContainTextAsync("report job");
            await Expect(page.Locator("#current-report")).ToContainTextAsync("14 events");
            await b.ScreenshotAsync("reports-progress");

            // A worker (here: the job's own service call) picks it up; the page follows without a reload.
            Assert.Equal(1, await app.Get<ComplianceReportService>().RunQueuedAsync("worker-1"));
            await Expect(page.Locator("#report-ready")).ToBeVisibleAsync(new() { Timeout = 15_000 });
            await Expect(page.Locator("#reports-grid .rz-badge", new() { HasText = "ready" })).ToHaveCountAsync(1);

            var pdf = await page.RunAndWaitForDownloadAsync(() => page.Locator("#current-pdf").ClickAsync());
            Assert.EndsWith(".pdf", pdf.SuggestedFilename);
            var pdfBytes = await File.ReadAllBytesAsync((await pdf.PathAsync())!);
            Assert.True(ReportSigner.Verify(pdfBytes).Valid);
            Assert.Contains("14 audit events were recorded", System.Text.RegularExpressions.Regex.Replace(await PdfTools.TextAsync(pdfBytes), @"\s+", " "));

            var csv = await page.RunAndWaitForDownloadAsync(() => page.Locator("#current-csv").ClickAsync());
            Assert.EndsWith(".csv", csv.SuggestedFilename);
            var lines = (await File.ReadAllTextAsync((await csv.PathAsync())!)).TrimEnd().Split('\n');
            Assert.Equal(15, lines.Length); // header + the 14 events of the period

            await page.Locator(".report-verify").First.ClickAsync();
            await Expect(page.Locator("#verify-result")).ToContainTextAsync("Verified");
            await b.DismissNotificationsAsync();
            await b.ScreenshotAsync("reports");

            // A schedule for the same report each month.
            await b.ChooseAsync(page.Locator("#schedule-frequency"), "quarterly");
            await page.Locator("#add-schedule").ClickAsync();
            await Expect(page.Locator("#schedules-list")).ToContainTextAsync("SOC 2 access review, quarterly");
        });
    }
}
