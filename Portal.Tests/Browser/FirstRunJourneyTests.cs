using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace Portal.Tests.Browser;

/// <summary>The Foundation issue's journey: first-run setup → sign in → install the suite → enable a module → the shell shows it.</summary>
[Collection(BrowserCollection.Name)]
public class FirstRunJourneyTests(BrowserFixture browser, ITestOutputHelper output)
{
    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Setup_sign_in_install_suite_and_toggle_a_module(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = PortalApp.ForBrowser(db);
        app.StartKestrel();
        // The real token went to the console at start-up; issuing a new one retires it, as a restart would.
        var token = await app.WithScopeAsync(sp => sp.GetRequiredService<SetupService>().IssueTokenAsync());
        Assert.NotNull(token);
        await using var b = await browser.OpenAsync(app, output);
        var shots = provider == "sqlite";

        await b.RunAsync(async page =>
        {
            await b.GotoAsync("/");
            await Expect(page).ToHaveURLAsync(new Regex("/setup$"));
            await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Set up the portal" })).ToBeVisibleAsync();
            if (shots) await b.ScreenshotAsync("setup");

            await page.GetByLabel("Setup token (from the console)").FillAsync(token!);
            await page.GetByLabel("Organization name").FillAsync("Northwind Bank");
            await page.GetByLabel("First project name").FillAsync("Payments");
            await page.GetByLabel("Your e-mail").FillAsync("ada@northwind.test");
            await page.GetByLabel("Your name (optional)").FillAsync("Ada Lovelace");
            await page.GetByLabel("Password", new() { Exact = true }).FillAsync(TestUsers.Password);
            await page.GetByLabel("Confirm password").FillAsync(TestUsers.Password);
            await page.Locator("#complete-setup").ClickAsync();

            // Signed in and taken to the only project's overview.
            await Expect(page).ToHaveURLAsync(new Regex("/p/[0-9a-f-]{36}$"));
            await b.WaitInteractiveAsync();
            await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Payments", Level = 1 })).ToBeVisibleAsync();
            await Expect(page.Locator("#stat-modules")).ToHaveTextAsync("0 of 5");
            var nav = page.GetByRole(AriaRole.Navigation, new() { Name = "Main navigation" });
            foreach (var entry in new[] { "Overview", "Members", "Roles", "Enterprise Suite", "Projects" })
                await Expect(nav.GetByRole(AriaRole.Link, new() { Name = entry })).ToBeVisibleAsync();
            if (shots) await b.ScreenshotAsync("project-overview-new");

            await nav.GetByRole(AriaRole.Link, new() { Name = "Enterprise Suite" }).ClickAsync();
            await Expect(page).ToHaveURLAsync(new Regex("/enterprise$"));
            await Expect(page.Locator("#suite-status")).ToHaveTextAsync("Not installed");
            if (shots) await b.ScreenshotAsync("enterprise-not-installed");

            await b.ChooseAsync(page.Locator("#install-tier"), "Enterprise Plus");
            await page.Locator("#install-suite").ClickAsync();
            await Expect(page.Locator("#suite-status")).ToContainTextAsync("Installed");
            await Expect(page.Locator("#suite-tier")).ToHaveTextAsync("Enterprise Plus");
            await Expect(page.Locator("#module-audit")).ToContainTextAsync("Enabled");
            await Expect(page.Locator("#module-governance")).ToContainTextAsync("Disabled");

            await page.Locator("#toggle-governance").ClickAsync();
            await Expect(page.Locator("#module-governance")).ToContainTextAsync("Enabled");
            await Expect(page.Locator("#toggle-governance")).ToHaveTextAsync("Disable");
            // The tiles count this project's trail: Ada installed the suite and turned Governance on.
            await Expect(page.Locator("#tile-events-caption")).ToContainTextAsync("1 active user,");
            await Expect(page.Locator("#tile-events-caption")).ToContainTextAsync("0 blocked gateway calls");
            Assert.NotEqual("0", await page.Locator("#tile-events-count").InnerTextAsync());
            await Expect(page.Locator("#tile-approvals-count")).ToHaveTextAsync("0");
            await Expect(page.Locator("#tile-approvals")).ToContainTextAsync("No suggested query is waiting for review.");
            await b.DismissNotificationsAsync();
            if (shots) await b.ScreenshotAsync("enterprise-installed");

            // The shell's overview follows the toggle without a reload.
            await nav.GetByRole(AriaRole.Link, new() { Name = "Overview" }).ClickAsync();
            await Expect(page.Locator("#stat-modules")).ToHaveTextAsync("2 of 5");
            await Expect(page.Locator("#stat-suite")).ToHaveTextAsync("Enterprise Plus");
            await Expect(page.Locator("#overview-modules li").Filter(new() { HasText = "Governance" })).ToContainTextAsync("On");
            await Expect(page.Locator("#overview-audit-users")).ToHaveTextAsync("1");
            await Expect(page.Locator("#overview-audit-blocked")).ToHaveTextAsync("0");
            await Expect(page.Locator("#overview-audit-blocked-link")).ToHaveCountAsync(0);
            await b.DismissNotificationsAsync();
            if (shots) await b.ScreenshotAsync("project-overview");

            await nav.GetByRole(AriaRole.Link, new() { Name = "Enterprise Suite" }).ClickAsync();
            await page.Locator("#toggle-governance").ClickAsync();
            await b.ConfirmAsync("Disable");
            await Expect(page.Locator("#module-governance")).ToContainTextAsync("Disabled");
            await Expect(page.Locator("#toggle-governance")).ToHaveTextAsync("Enable");

            await nav.GetByRole(AriaRole.Link, new() { Name = "Overview" }).ClickAsync();
            await Expect(page.Locator("#stat-modules")).ToHaveTextAsync("1 of 5");
            await Expect(page.Locator("#overview-modules li").Filter(new() { HasText = "Governance" })).ToContainTextAsync("Off");

            // A module's pages join the navigation when it is enabled and leave it when it is disabled.
            var keysLink = nav.GetByRole(AriaRole.Link, new() { Name = "API keys" });
            await Expect(keysLink).ToHaveCountAsync(0);
            await nav.GetByRole(AriaRole.Link, new() { Name = "Enterprise Suite" }).ClickAsync();
            await page.Locator("#toggle-access_control").ClickAsync();
            await Expect(page.Locator("#module-access_control")).ToContainTextAsync("Enabled");
            await Expect(keysLink).ToBeVisibleAsync();
            await keysLink.ClickAsync();
            await Expect(page).ToHaveURLAsync(new Regex("/keys$"));
            await nav.GetByRole(AriaRole.Link, new() { Name = "Enterprise Suite" }).ClickAsync();
            // Wait for the Enterprise page itself (and the toasts of the enable to go) before clicking its toggle.
            await Expect(page).ToHaveURLAsync(new Regex("/enterprise$"));
            await Expect(page.Locator("#toggle-access_control")).ToHaveTextAsync("Disable");
            await b.DismissNotificationsAsync();
            await page.Locator("#toggle-access_control").ClickAsync();
            await b.ConfirmAsync("Disable");
            await Expect(page.Locator("#module-access_control")).ToContainTextAsync("Disabled");
            await Expect(keysLink).ToHaveCountAsync(0);
        });
    }
}
