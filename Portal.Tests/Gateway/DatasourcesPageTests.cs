using System.Net;
using Microsoft.Playwright;
using Portal.Domain.Gateway.Catalog;
using Portal.Domain.Gateway.Demo;
using Portal.Domain.Suite;
using Portal.Domain.Tenancy;
using Portal.Tests.Browser;
using Portal.Tests.Infrastructure;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace Portal.Tests.Gateway;

public class DatasourcesPageTests
{
    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Admin_sees_datasources_a_user_is_refused_and_an_outsider_finds_nothing(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db);
        var (admin, projectId) = await app.SetupAsync();
        await app.InstallSuiteAsync(projectId, admin.Id, Tier.EnterprisePlus, Modules.AccessControl);
        await app.AddMemberAsync(projectId, "analyst@bank.test", Roles.User, admin.Id);
        var other = await app.Get<ProjectService>().CreateAsync(admin.Id, "Other bank unit", null);
        await app.AddMemberAsync(other.Id, "outsider@bank.test", Roles.Admin, admin.Id);

        var adminClient = await app.SignedInClientAsync(admin.Email!);
        var empty = await adminClient.GetAsync($"/p/{projectId}/datasources");
        Assert.True(empty.StatusCode == HttpStatusCode.OK, app.Logs.Errors);
        var html = await empty.Content.ReadAsStringAsync();
        Assert.Contains("id=\"datasources-empty\"", html);
        Assert.Contains("id=\"add-datasource\"", html);
        Assert.Contains($"href=\"p/{projectId}/datasources\"", html); // the navigation entry

        await app.Get<DatasourceService>().CreateAsync(projectId,
            new DatasourceRequest("warehouse", "postgres", null, "db.internal", 5433, "sales", "reader", "s3cret-Passw0rd"), admin.Id);
        var listed = await (await adminClient.GetAsync($"/p/{projectId}/datasources")).Content.ReadAsStringAsync();
        Assert.Contains("warehouse", listed);
        Assert.Contains("reader@db.internal:5433/sales", listed);
        Assert.DoesNotContain("s3cret-Passw0rd", listed);
        Assert.DoesNotContain("id=\"datasources-empty\"", listed);

        var userClient = await app.SignedInClientAsync("analyst@bank.test");
        var denied = await userClient.GetAsync($"/p/{projectId}/datasources");
        var deniedHtml = await denied.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
        Assert.DoesNotContain("warehouse", deniedHtml);
        Assert.Contains("have access to this page", deniedHtml);

        var outsider = await app.SignedInClientAsync("outsider@bank.test");
        var missing = await outsider.GetAsync($"/p/{projectId}/datasources");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.DoesNotContain("warehouse", await missing.Content.ReadAsStringAsync());
        Assert.Empty(app.Logs.Errors);
    }
}

[Collection(BrowserCollection.Name)]
public class DatasourcesPageBrowserTests(BrowserFixture browser, ITestOutputHelper output)
{
    [Fact]
    public async Task Admin_tests_and_adds_a_sqlite_datasource_and_a_wrong_path_fails_clearly()
    {
        await using var db = await TestDatabase.CreateAsync("sqlite");
        await using var app = PortalApp.ForBrowser(db);
        var (admin, projectId) = await app.SetupAsync("ada@northwind.test");
        await app.InstallSuiteAsync(projectId, admin.Id, Tier.EnterprisePlus, Modules.AccessControl);
        var sample = Path.Combine(db.DataDirectory, DatasourceService.DatasourcesFolder, "sample.db");
        Directory.CreateDirectory(Path.GetDirectoryName(sample)!);
        await SampleDatasource.CreateSqliteAsync(sample);
        await using var b = await browser.OpenAsync(app, output);

        await b.RunAsync(async page =>
        {
            await b.SignInAsync("ada@northwind.test");
            await b.GotoAsync($"/p/{projectId}/datasources");
            await b.WaitInteractiveAsync();
            await Expect(page.Locator("#datasources-empty")).ToBeVisibleAsync();

            await page.Locator("#add-datasource").ClickAsync();
            await page.Locator("#ds-name").FillAsync("Northwind sample");

            // A relative path is refused by the service, next to the field.
            await page.Locator("#ds-sqlite-path").FillAsync("sample.db");
            await page.Locator("#test-form-connection").ClickAsync();
            await Expect(page.Locator("#ds-error-sqlitePath")).ToContainTextAsync("full path");

            // A file that does not exist: a clear failure, nothing saved.
            await page.Locator("#ds-sqlite-path").FillAsync(Path.Combine(Path.GetDirectoryName(sample)!, "missing.db"));
            await page.Locator("#test-form-connection").ClickAsync();
            var result = page.Locator("#ds-test-result");
            await Expect(result).ToContainTextAsync("Connection failed");
            await Expect(result).ToHaveClassAsync(new System.Text.RegularExpressions.Regex("rz-danger"));

            await page.Locator("#ds-sqlite-path").FillAsync(sample);
            await page.Locator("#test-form-connection").ClickAsync();
            await Expect(result).ToContainTextAsync("Connected to the SQLite file");
            await b.ScreenshotAsync("datasources");

            await page.Locator("#save-datasource").ClickAsync();
            await Expect(b.Notifications.Filter(new() { HasText = "Datasource added" })).ToBeVisibleAsync();
            var row = page.Locator("#datasources-grid").GetByRole(AriaRole.Row).Filter(new() { HasText = "Northwind sample" });
            await Expect(row).ToContainTextAsync(sample);
            await Expect(page.Locator("#datasources-empty")).ToHaveCountAsync(0);

            await row.GetByRole(AriaRole.Button, new() { Name = "Test connection to Northwind sample" }).ClickAsync();
            await Expect(page.Locator("#row-test-result")).ToContainTextAsync("Connected to the SQLite file");
            await b.DismissNotificationsAsync();
            await b.ScreenshotAsync("datasources");
        });
        Assert.Empty(app.Logs.Errors);
    }
}
