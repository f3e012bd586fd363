using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace Portal.Tests.Browser;

[Collection(BrowserCollection.Name)]
public class AccessTests(BrowserFixture browser, ITestOutputHelper output)
{
    [Fact]
    public async Task User_role_sees_only_its_pages_and_other_projects_look_missing()
    {
        await using var db = await TestDatabase.CreateAsync("sqlite");
        await using var app = PortalApp.ForBrowser(db);
        var (admin, payments) = await app.SetupAsync("ada@northwind.test");
        var cards = (await app.WithScopeAsync(sp => sp.GetRequiredService<ProjectService>().CreateAsync(admin.Id, "Cards", null))).Id;
        await app.AddMemberAsync(payments, "uma@northwind.test", Roles.User, admin.Id);
        await using var b = await browser.OpenAsync(app, output);

        // The denied and missing pages below answer 403 and 404 on purpose; Chromium logs each as a console error.
        b.AllowConsoleError("Failed to load resource: the server responded with a status of 40[34]");
        await b.RunAsync(async page =>
        {
            await b.SignInAsync("uma@northwind.test");
            await b.GotoAsync($"/p/{payments}");
            await b.WaitInteractiveAsync();
            await Expect(page.GetByText("You are user in this project.")).ToBeVisibleAsync();
            var nav = page.GetByRole(AriaRole.Navigation, new() { Name = "Main navigation" });
            await Expect(nav.GetByRole(AriaRole.Link, new() { Name = "Overview" })).ToBeVisibleAsync();
            await Expect(nav.GetByRole(AriaRole.Link, new() { Name = "Roles" })).ToBeVisibleAsync();
            await Expect(nav.GetByRole(AriaRole.Link, new() { Name = "Members" })).ToHaveCountAsync(0);
            await Expect(nav.GetByRole(AriaRole.Link, new() { Name = "Enterprise Suite" })).ToHaveCountAsync(0);
            await Expect(nav.GetByRole(AriaRole.Link, new() { Name = "Background jobs" })).ToHaveCountAsync(0);
            // The only project is Payments: the switcher offers nothing else.
            await page.Locator("#project-switcher").ClickAsync();
            await Expect(page.Locator(".rz-dropdown-panel:visible .rz-dropdown-item")).ToHaveCountAsync(1);
            await page.Keyboard.PressAsync("Escape");

            // Typed addresses get the same answer as the navigation.
            await b.GotoAsync($"/p/{payments}/members");
            await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "You don't have access to this page" })).ToBeVisibleAsync();
            await Expect(page.GetByText("Your role in this project (user)")).ToBeVisibleAsync();
            await b.ScreenshotAsync("access-denied");
            await b.GotoAsync($"/p/{payments}/enterprise");
            await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "You don't have access to this page" })).ToBeVisibleAsync();

            // A project the user is not in looks exactly like one that does not exist.
            await b.GotoAsync($"/p/{cards}");
            await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Not found", Level = 1 })).ToBeVisibleAsync();
            await Expect(page.GetByText("Cards")).ToHaveCountAsync(0);
            await b.GotoAsync($"/p/{Guid.CreateVersion7()}/members");
            await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Not found", Level = 1 })).ToBeVisibleAsync();
        });
    }
}
