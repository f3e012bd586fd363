using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace Portal.Tests.Browser;

[Collection(BrowserCollection.Name)]
public class MembersPageTests(BrowserFixture browser, ITestOutputHelper output)
{
    [Fact]
    public async Task Admin_adds_changes_and_removes_members_but_not_the_last_admin()
    {
        await using var db = await TestDatabase.CreateAsync("sqlite");
        await using var app = PortalApp.ForBrowser(db);
        var (admin, projectId) = await app.SetupAsync("ada@northwind.test");
        // More members than one page holds (20), so the pager has somewhere to go.
        await app.WithScopeAsync(async sp =>
        {
            var members = sp.GetRequiredService<MembershipService>();
            string[] roles = [Roles.User, Roles.Data, Roles.Compliance, Roles.Security];
            for (var i = 1; i <= 22; i++)
                await members.AddAsync(projectId, $"member{i:00}@northwind.test", roles[i % roles.Length], admin.Id, $"Member {i:00}");
            return 0;
        });
        await using var b = await browser.OpenAsync(app, output);

        await b.RunAsync(async page =>
        {
            await b.SignInAsync("ada@northwind.test");
            await b.GotoAsync($"/p/{projectId}/members");
            await b.WaitInteractiveAsync();
            var grid = page.Locator("#members-grid");
            await Expect(grid.GetByRole(AriaRole.Row)).ToHaveCountAsync(21); // header + 20 on the first page
            await Expect(grid.Locator(".rz-pager")).ToContainTextAsync("of 2");
            await Expect(grid.Locator(".rz-pager")).ToContainTextAsync("23");

            // A new e-mail gets a new account and a one-time password shown once.
            await page.Locator("#add-member").ClickAsync();
            await page.Locator("#member-email").FillAsync("aaron@northwind.test");
            await page.Locator("#member-name").FillAsync("Aaron Auditor");
            await b.ChooseAsync(page.Locator("#member-role"), "compliance");
            await page.Locator("#confirm-add-member").ClickAsync();
            var banner = page.Locator("#temp-password");
            await Expect(banner).ToContainTextAsync("aaron@northwind.test");
            await Expect(banner.Locator("code")).ToHaveTextAsync(new Regex("^\\S{12,}$"));
            var aaron = grid.GetByRole(AriaRole.Row).Filter(new() { HasText = "aaron@northwind.test" });
            await Expect(aaron).ToContainTextAsync("compliance");
            await b.DismissNotificationsAsync();
            await b.ScreenshotAsync("members");

            // Role change through the row's dropdown, after a confirmation.
            await b.ChooseAsync(aaron.Locator(".rz-dropdown"), "security");
            await b.ConfirmAsync("Change role");
            await Expect(b.Notifications.Filter(new() { HasText = "Role changed" })).ToBeVisibleAsync();
            await Expect(aaron.Locator(".rz-dropdown")).ToContainTextAsync("security");
            await Expect(page.Locator("#changes-grid")).ToContainTextAsync("compliance → security");

            // Removal, after a confirmation.
            await aaron.GetByRole(AriaRole.Button, new() { Name = "Remove aaron@northwind.test" }).ClickAsync();
            await b.ConfirmAsync("Remove");
            await Expect(b.Notifications.Filter(new() { HasText = "Member removed" })).ToBeVisibleAsync();
            await Expect(aaron).ToHaveCountAsync(0);

            // The only admin is not offered removal or demotion: the project would be left without one
            // (the service refuses it too, even under concurrent changes; MembershipServiceTests prove that).
            var ada = grid.GetByRole(AriaRole.Row).Filter(new() { HasText = "ada@northwind.test" });
            await Expect(ada.GetByRole(AriaRole.Button, new() { Name = "Remove ada@northwind.test" })).ToHaveCountAsync(0);
            await Expect(ada).ToContainTextAsync("last admin");
            await Expect(ada.Locator(".rz-dropdown")).ToHaveClassAsync(new Regex("rz-state-disabled"));

            // The pager reaches the second page.
            await grid.Locator(".rz-pager").GetByRole(AriaRole.Button, new() { Name = "Go to next page." }).ClickAsync();
            await Expect(grid.GetByRole(AriaRole.Row).Filter(new() { HasText = "member22@northwind.test" })).ToHaveCountAsync(1);
        });
        Assert.Empty(app.Logs.Errors);
    }

    [Fact]
    public async Task An_organization_admin_resets_a_members_password_and_the_old_one_and_open_sessions_stop_working()
    {
        await using var db = await TestDatabase.CreateAsync("sqlite");
        // Re-check the security stamp on every request instead of once a minute, so the ended session shows at once.
        await using var app = PortalApp.ForBrowser(db, services: s =>
            s.Configure<Microsoft.AspNetCore.Identity.SecurityStampValidatorOptions>(o => o.ValidationInterval = TimeSpan.Zero));
        var (admin, projectId) = await app.SetupAsync("ada@northwind.test");
        var bobFirst = await app.WithScopeAsync(async sp =>
            (await sp.GetRequiredService<MembershipService>().AddAsync(projectId, "bob@northwind.test", Roles.User, admin.Id, "Bob User")).TemporaryPassword!);
        await app.WithScopeAsync(async sp =>
        {
            // Carol uses an authenticator, which she lost.
            var members = sp.GetRequiredService<MembershipService>();
            await members.AddAsync(projectId, "carol@northwind.test", Roles.Data, admin.Id, "Carol Data");
            var users = sp.GetRequiredService<Microsoft.AspNetCore.Identity.UserManager<Portal.Domain.Tenancy.PortalUser>>();
            var carol = (await users.FindByEmailAsync("carol@northwind.test"))!;
            await users.ResetAuthenticatorKeyAsync(carol);
            await users.SetTwoFactorEnabledAsync(carol, true);
            return 0;
        });

        // Bob is signed in in his own browser when the reset happens.
        await using var bob = await browser.OpenAsync(app, output, "bob-session");
        string second = "";
        await bob.RunAsync(async page =>
        {
            await bob.SignInAsync("bob@northwind.test", bobFirst);
            await bob.GotoAsync($"/p/{projectId}");
            await bob.WaitInteractiveAsync();
        });

        await using var b = await browser.OpenAsync(app, output);
        await b.RunAsync(async page =>
        {
            await b.SignInAsync("ada@northwind.test");
            await b.GotoAsync($"/p/{projectId}/members");
            await b.WaitInteractiveAsync();
            var grid = page.Locator("#members-grid");
            // Not offered for yourself: that is the account page's job.
            var ada = grid.GetByRole(AriaRole.Row).Filter(new() { HasText = "ada@northwind.test" });
            await Expect(ada.GetByRole(AriaRole.Button, new() { Name = "Reset the password of ada@northwind.test" })).ToHaveCountAsync(0);

            var row = grid.GetByRole(AriaRole.Row).Filter(new() { HasText = "bob@northwind.test" });
            // Cancelling changes nothing.
            await row.GetByRole(AriaRole.Button, new() { Name = "Reset the password of bob@northwind.test" }).ClickAsync();
            await b.ConfirmAsync("Cancel");
            await Expect(page.Locator("#temp-password")).ToHaveCountAsync(0);

            await row.GetByRole(AriaRole.Button, new() { Name = "Reset the password of bob@northwind.test" }).ClickAsync();
            await b.ConfirmAsync("Reset password");
            var banner = page.Locator("#temp-password");
            await Expect(banner).ToContainTextAsync("The password of bob@northwind.test was reset.");
            await Expect(banner.Locator("code")).ToHaveTextAsync(new Regex("^\\S{12,}$"));
            second = (await banner.Locator("code").InnerTextAsync()).Trim();
            await b.DismissNotificationsAsync();
            await b.ScreenshotAsync("members-password-reset");

            // Two-factor sign-in can be turned off only where it is on.
            await Expect(row.GetByRole(AriaRole.Button, new() { Name = "Turn off two-factor sign-in for bob@northwind.test" })).ToHaveCountAsync(0);
            var carol = grid.GetByRole(AriaRole.Row).Filter(new() { HasText = "carol@northwind.test" });
            await Expect(carol.Locator("td").Nth(3)).ToHaveTextAsync("on");
            await carol.GetByRole(AriaRole.Button, new() { Name = "Turn off two-factor sign-in for carol@northwind.test" }).ClickAsync();
            await b.ConfirmAsync("Turn off two-factor");
            await Expect(b.Notifications.Filter(new() { HasText = "Two-factor sign-in turned off" })).ToBeVisibleAsync();
            await Expect(carol.GetByRole(AriaRole.Button, new() { Name = "Turn off two-factor sign-in for carol@northwind.test" })).ToHaveCountAsync(0);
            await Expect(carol.Locator("td").Nth(3)).ToHaveTextAsync("off");
        });
        Assert.NotEqual(bobFirst, second);

        await bob.RunAsync(async page =>
        {
            // His open session has ended: the next page load asks him to sign in.
            await bob.GotoAsync($"/p/{projectId}");
            await Expect(page).ToHaveURLAsync(new Regex("/Account/Login"));
            // The old password no longer works; the new one does.
            await page.GetByLabel("E-mail").FillAsync("bob@northwind.test");
            await page.GetByLabel("Password").FillAsync(bobFirst);
            await page.Locator("#sign-in").ClickAsync();
            await Expect(page.Locator("body")).ToContainTextAsync("The e-mail or password is not correct");
            await bob.SignInAsync("bob@northwind.test", second);
        });

        // The audit trail says who reset whose password, never the password.
        var events = await app.WithScopeAsync(async sp =>
        {
            await using var ctx = db.NewContext();
            return await Microsoft.EntityFrameworkCore.EntityFrameworkQueryableExtensions.ToListAsync(
                ctx.AuditEvents.Where(e => e.ProjectId == projectId && e.EventType == "member.password_reset"));
        });
        var reset = Assert.Single(events);
        Assert.Equal("ada@northwind.test", reset.ActorEmail);
        Assert.Contains("bob@northwind.test", reset.Details);
        Assert.DoesNotContain(second, reset.Details);
        Assert.Empty(app.Logs.Errors);
    }
}
