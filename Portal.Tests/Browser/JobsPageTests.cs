using System.Text.RegularExpressions;
using Microsoft.Playwright;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace Portal.Tests.Browser;

/// <summary>The Background jobs page as an organization admin uses it, against a portal that runs the jobs itself.</summary>
[Collection(BrowserCollection.Name)]
public class JobsPageTests(BrowserFixture browser, ITestOutputHelper output)
{
    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Org_admin_runs_pauses_resumes_housekeeping_and_reads_its_history(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        // The test portal leaves jobs to workers by default; here it runs them, so Run now really executes.
        await using var app = PortalApp.ForBrowser(db, new() { ["Jobs:RunInPortal"] = "true", ["Jobs:InstanceName"] = "portal" });
        await app.SetupAsync("ada@northwind.test");
        await using var b = await browser.OpenAsync(app, output);

        await b.RunAsync(async page =>
        {
            await b.SignInAsync("ada@northwind.test");
            await page.GetByRole(AriaRole.Navigation, new() { Name = "Main navigation" })
                .GetByRole(AriaRole.Link, new() { Name = "Background jobs" }).ClickAsync();
            await Expect(page).ToHaveURLAsync(new Regex("/admin/jobs$"));
            await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Background jobs", Level = 1 })).ToBeVisibleAsync();
            await b.WaitInteractiveAsync();

            var grid = page.Locator("#jobs-grid");
            var row = grid.Locator("tbody tr").Filter(new() { HasText = "housekeeping" });
            await Expect(row).ToHaveCountAsync(1);
            await Expect(row).ToContainTextAsync("Every hour, on the hour");
            await Expect(row).ToContainTextAsync("0 0 * * * ?");
            await Expect(row).ToContainTextAsync("never");
            // The next firing is the coming full hour (UTC); the page shows it to the second.
            await Expect(row.Locator("td").Nth(4)).ToHaveTextAsync(new Regex(@"^\s*\d{4}-\d{2}-\d{2} \d{2}:00:00\s*$"));
            await Expect(page.Locator("#nodes")).ToContainTextAsync("this portal included");
            await Expect(page.Locator("#no-nodes")).ToHaveCountAsync(0);

            // Run now queues a firing; the portal's own scheduler takes it, and a refresh shows the outcome.
            await row.GetByRole(AriaRole.Button, new() { Name = "Run housekeeping now" }).ClickAsync();
            await Expect(b.Notifications.Filter(new() { HasText = "housekeeping queued" })).ToBeVisibleAsync();
            var succeeded = row.Locator("td").Nth(3).GetByText("succeeded");
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (await succeeded.CountAsync() == 0)
            {
                Assert.True(DateTime.UtcNow < deadline, $"Run now did not succeed within 30 s; the row shows: {await row.InnerTextAsync()}");
                await Task.Delay(500);
                await page.Locator("#refresh-jobs").ClickAsync();
            }
            await Expect(row.Locator("td").Nth(3)).ToContainTextAsync(new Regex(@"on portal"));

            // Pause asks first, then stops the schedule: no next run while paused.
            await row.GetByRole(AriaRole.Button, new() { Name = "Pause housekeeping" }).ClickAsync();
            await b.ConfirmAsync("Pause");
            await Expect(b.Notifications.Filter(new() { HasText = "Job paused" })).ToBeVisibleAsync();
            await Expect(row.Locator("td").Nth(2)).ToHaveTextAsync(new Regex(@"^\s*paused\s*$"));
            await Expect(row.Locator("td").Nth(4)).ToHaveTextAsync(new Regex(@"^\s*—\s*$"));
            await Expect(row.GetByRole(AriaRole.Button, new() { Name = "Pause housekeeping" })).ToHaveCountAsync(0);

            await row.GetByRole(AriaRole.Button, new() { Name = "Resume housekeeping" }).ClickAsync();
            await Expect(b.Notifications.Filter(new() { HasText = "Job resumed" })).ToBeVisibleAsync();
            await Expect(row.Locator("td").Nth(2)).ToHaveTextAsync(new Regex(@"^\s*normal\s*$"));
            await Expect(row.Locator("td").Nth(4)).ToHaveTextAsync(new Regex(@"\d{2}:00:00"));

            // History lists the run Run now made, with its node and the job's own summary.
            await row.GetByRole(AriaRole.Button, new() { Name = "History of housekeeping" }).ClickAsync();
            await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Recent runs of housekeeping" })).ToBeVisibleAsync();
            var runs = page.Locator("#runs-grid tbody tr");
            await Expect(runs).ToHaveCountAsync(1);
            await Expect(runs.First).ToContainTextAsync("succeeded");
            await Expect(runs.First).ToContainTextAsync("portal");
            await Expect(runs.First).ToContainTextAsync(new Regex(@"Deleted \d+ setup token\(s\) and \d+ job run\(s\); closed \d+ interrupted run\(s\); re-encrypted \d+ stored secret\(s\) under the newest key\."));

            await b.DismissNotificationsAsync();
            if (provider == "sqlite") await b.ScreenshotAsync("jobs");
        });
    }

    [Fact]
    public async Task Project_admin_who_is_not_org_admin_has_no_jobs_link()
    {
        await using var db = await TestDatabase.CreateAsync("sqlite");
        await using var app = PortalApp.ForBrowser(db);
        var (admin, projectId) = await app.SetupAsync("ada@northwind.test");
        await app.AddMemberAsync(projectId, "pat@northwind.test", Roles.Admin, admin.Id);
        await using var b = await browser.OpenAsync(app, output);

        await b.RunAsync(async page =>
        {
            await b.SignInAsync("pat@northwind.test");
            await b.GotoAsync($"/p/{projectId}");
            await b.WaitInteractiveAsync();
            var nav = page.GetByRole(AriaRole.Navigation, new() { Name = "Main navigation" });
            // Project admin: the project's admin pages are there, the organization's job controls are not.
            await Expect(nav.GetByRole(AriaRole.Link, new() { Name = "Members" })).ToBeVisibleAsync();
            await Expect(nav.GetByRole(AriaRole.Link, new() { Name = "Projects" })).ToBeVisibleAsync();
            await Expect(nav.GetByRole(AriaRole.Link, new() { Name = "Background jobs" })).ToHaveCountAsync(0);
        });
    }
}
