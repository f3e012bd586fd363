using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace Portal.Tests.Browser;

/// <summary>The shell around every page: project switcher, navigation by role, roles matrix, theme.</summary>
[Collection(BrowserCollection.Name)]
public class ShellTests(BrowserFixture browser, ITestOutputHelper output)
{
    [Fact]
    public async Task Project_switcher_roles_matrix_and_dark_theme()
    {
        await using var db = await TestDatabase.CreateAsync("sqlite");
        await using var app = PortalApp.ForBrowser(db);
        var (admin, payments) = await app.SetupAsync("ada@northwind.test");
        var cards = (await app.WithScopeAsync(sp => sp.GetRequiredService<ProjectService>().CreateAsync(admin.Id, "Cards", "Card issuing and disputes"))).Id;
        await app.InstallSuiteAsync(payments, admin.Id, Domain.Suite.Tier.EnterprisePlus, Domain.Suite.Modules.Governance);
        await using var b = await browser.OpenAsync(app, output);

        await b.RunAsync(async page =>
        {
            await b.SignInAsync("ada@northwind.test");
            await b.GotoAsync($"/p/{payments}");
            await b.WaitInteractiveAsync();
            await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Payments", Level = 1 })).ToBeVisibleAsync();

            await b.ChooseAsync(page.Locator("#project-switcher"), "Cards");
            await Expect(page).ToHaveURLAsync(new Regex($"/p/{cards}$"));
            await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Cards", Level = 1 })).ToBeVisibleAsync();
            await Expect(page.Locator("#project-switcher")).ToContainTextAsync("Cards");

            // The switcher keeps the user on the same page in the other project.
            await b.GotoAsync($"/p/{cards}/roles");
            await b.WaitInteractiveAsync();
            await b.ChooseAsync(page.Locator("#project-switcher"), "Payments");
            await Expect(page).ToHaveURLAsync(new Regex($"/p/{payments}/roles$"));
            var matrix = page.Locator("#roles-matrix");
            await Expect(matrix.Locator("thead th")).ToHaveCountAsync(2 + Roles.All.Count);
            await Expect(matrix.Locator("tbody tr")).ToHaveCountAsync(Permissions.All.Count);
            var membersRow = matrix.Locator("tbody tr").Filter(new() { HasText = Permissions.MembersManage });
            await Expect(membersRow.Locator("[aria-label='granted']")).ToHaveCountAsync(1); // admin only
            await b.ScreenshotAsync("roles");

            // Dark theme: the toggle swaps Radzen's stylesheet and the page keeps working.
            var light = await BackgroundAsync(page);
            await page.GetByRole(AriaRole.Button, new() { Name = "Light or dark theme" }).ClickAsync();
            await Expect(page.Locator("link[href*='material-dark']").First).ToBeAttachedAsync();
            await page.WaitForFunctionAsync(
                "light => getComputedStyle(document.documentElement).getPropertyValue('--rz-base-background-color') !== light", light);
            await b.GotoAsync($"/p/{payments}/enterprise");
            await b.WaitInteractiveAsync();
            await Expect(page.Locator("#module-governance")).ToContainTextAsync("Enabled");
            await b.ScreenshotAsync("enterprise-dark"); // a full page load: the theme choice survives it
            await page.GetByRole(AriaRole.Navigation, new() { Name = "Main navigation" }).GetByRole(AriaRole.Link, new() { Name = "Members" }).ClickAsync();
            await Expect(page.Locator("#members-grid")).ToContainTextAsync("ada@northwind.test");
            await b.ScreenshotAsync("members-dark");
        });
    }

    private static Task<string> BackgroundAsync(IPage page) =>
        page.EvaluateAsync<string>("() => getComputedStyle(document.documentElement).getPropertyValue('--rz-base-background-color')");
}
