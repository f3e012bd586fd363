using System.Text.RegularExpressions;
using Microsoft.Playwright;
using Portal.Tests.Infrastructure;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace Portal.Tests.Browser;

[Collection(BrowserCollection.Name)]
public class SignInTests(BrowserFixture browser, ITestOutputHelper output)
{
    [Fact]
    public async Task Wrong_password_shows_an_error_and_five_failures_lock_the_account()
    {
        await using var db = await TestDatabase.CreateAsync("sqlite");
        await using var app = PortalApp.ForBrowser(db);
        await app.SetupAsync("ada@northwind.test");
        await using var b = await browser.OpenAsync(app, output);

        await b.RunAsync(async page =>
        {
            await b.GotoAsync("/");
            await Expect(page).ToHaveURLAsync(new Regex("/Account/Login"));
            await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Sign in" })).ToBeVisibleAsync();
            await b.ScreenshotAsync("sign-in");

            for (var attempt = 1; attempt <= 4; attempt++)
            {
                await page.GetByLabel("E-mail").FillAsync("ada@northwind.test");
                await page.GetByLabel("Password").FillAsync("Wrong-Password-" + attempt);
                await page.Locator("#sign-in").ClickAsync();
                await Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("The e-mail or password is not correct.");
                await Expect(page).ToHaveURLAsync(new Regex("/Account/Login"));
            }
            await b.ScreenshotAsync("sign-in-error");

            await page.GetByLabel("E-mail").FillAsync("ada@northwind.test");
            await page.GetByLabel("Password").FillAsync("Wrong-Password-5");
            await page.Locator("#sign-in").ClickAsync();
            await Expect(page).ToHaveURLAsync(new Regex("/Account/Lockout$"));
            await Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("locked");

            // Locked means locked: the right password no longer gets in either.
            await b.GotoAsync("/Account/Login");
            await page.GetByLabel("E-mail").FillAsync("ada@northwind.test");
            await page.GetByLabel("Password").FillAsync(TestUsers.Password);
            await page.Locator("#sign-in").ClickAsync();
            await Expect(page).ToHaveURLAsync(new Regex("/Account/Lockout$"));
            await b.ScreenshotAsync("lockout");
        });
    }
}
