using System.Net;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using Portal.Domain.Access;
using Portal.Domain.Gateway;
using Portal.Domain.Gateway.Catalog;
using Portal.Domain.Persistence;
using Portal.Domain.Suite;
using Portal.Domain.Tenancy;
using Portal.Tests.Browser;
using Portal.Tests.Infrastructure;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace Portal.Tests.Gateway;

/// <summary>The Query catalog and Access control pages over real HTTP: who may open them, and what they show.</summary>
public class QueryPagesTests
{
    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Catalog_shows_a_member_their_queries_and_access_control_is_for_admins(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db);
        var (admin, projectId) = await app.SetupAsync();
        await app.InstallSuiteAsync(projectId, admin.Id, Tier.EnterprisePlus, Modules.AccessControl);
        var demo = (await app.Get<DemoCatalog>().SeedAsync(projectId, admin.Id, app.Get<DatabaseOptions>().DataDirectory))!;
        await app.AddMemberAsync(projectId, "uma@bank.test", Roles.User, admin.Id);
        var other = await app.Get<ProjectService>().CreateAsync(admin.Id, "Other bank", null);
        await app.InstallSuiteAsync(other.Id, admin.Id, Tier.EnterprisePlus, Modules.AccessControl);
        var otherDemo = (await app.Get<DemoCatalog>().SeedAsync(other.Id, admin.Id, app.Get<DatabaseOptions>().DataDirectory))!;
        await app.AddMemberAsync(other.Id, "outsider@bank.test", Roles.Admin, admin.Id);

        var uma = await app.SignedInClientAsync("uma@bank.test");
        var catalog = await uma.GetAsync($"/p/{projectId}/queries");
        var html = await catalog.Content.ReadAsStringAsync();
        Assert.True(catalog.StatusCode == HttpStatusCode.OK, app.Logs.Errors);
        Assert.Contains(DemoCatalog.CustomerLookup, html);
        Assert.DoesNotContain(DemoCatalog.SalarySummary, html); // not granted to users
        Assert.Contains($"href=\"p/{projectId}/queries\"", html);
        Assert.DoesNotContain($"href=\"p/{projectId}/access\"", html);

        var detail = await (await uma.GetAsync($"/p/{projectId}/queries?query={demo.Queries[DemoCatalog.CustomerLookup]}")).Content.ReadAsStringAsync();
        Assert.Contains("id=\"query-sql\"", detail);
        Assert.Contains("FROM customers WHERE id = @customer_id", detail);
        Assert.Contains("id=\"run-query\"", detail);
        // Another project's query id, or one not granted, shows no detail at all.
        foreach (var hidden in new[] { otherDemo.Queries[DemoCatalog.CustomerLookup], demo.Queries[DemoCatalog.SalarySummary], Guid.NewGuid() })
        {
            var page = await uma.GetAsync($"/p/{projectId}/queries?query={hidden}");
            Assert.Equal(HttpStatusCode.OK, page.StatusCode);
            Assert.DoesNotContain("id=\"query-detail\"", await page.Content.ReadAsStringAsync());
        }

        var denied = await uma.GetAsync($"/p/{projectId}/access");
        Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
        Assert.DoesNotContain("id=\"grant-query\"", await denied.Content.ReadAsStringAsync());

        var adminClient = await app.SignedInClientAsync(admin.Email!);
        var access = await adminClient.GetAsync($"/p/{projectId}/access");
        Assert.Equal(HttpStatusCode.OK, access.StatusCode);
        Assert.Contains("Access control", await access.Content.ReadAsStringAsync());

        var outsider = await app.SignedInClientAsync("outsider@bank.test");
        Assert.Equal(HttpStatusCode.NotFound, (await outsider.GetAsync($"/p/{projectId}/queries")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await outsider.GetAsync($"/p/{projectId}/access")).StatusCode);

        // With the access-control module off, neither page opens.
        await app.Get<SuiteService>().SetModuleAsync(projectId, Modules.AccessControl, false, admin.Id);
        Assert.Equal(HttpStatusCode.Forbidden, (await uma.GetAsync($"/p/{projectId}/queries")).StatusCode);
        Assert.Empty(app.Logs.Errors);
    }
}

[Collection(BrowserCollection.Name)]
public class QueryPagesBrowserTests(BrowserFixture browser, ITestOutputHelper output)
{
    private static ILocator Input(IPage page, string id) => page.Locator($"#{id}").Locator("xpath=descendant-or-self::input").First;

    private static async Task<(PortalApp App, Guid Admin, Guid ProjectId, DemoCatalogResult Demo)> WorldAsync(TestDatabase db)
    {
        var app = PortalApp.ForBrowser(db);
        var (admin, projectId) = await app.SetupAsync("ada@northwind.test");
        await app.InstallSuiteAsync(projectId, admin.Id, Tier.EnterprisePlus, Modules.AccessControl, Modules.Audit);
        var demo = (await app.Get<DemoCatalog>().SeedAsync(projectId, admin.Id, app.Get<DatabaseOptions>().DataDirectory))!;
        await app.AddMemberAsync(projectId, "uma@northwind.test", Roles.User, admin.Id);
        return (app, admin.Id, projectId, demo);
    }

    [Fact]
    public async Task A_user_runs_a_query_sees_masked_columns_and_the_event_id_and_a_bad_value_is_named()
    {
        await using var db = await TestDatabase.CreateAsync("sqlite");
        var (app, admin, projectId, demo) = await WorldAsync(db);
        await using var _ = app;
        // Hostile text in a query's name and description must render as text.
        const string hostileName = "<img src=x onerror=\"window.__pwned=1\">Hostile report";
        const string hostileDescription = "<script>window.__pwned=2</script><b>bold?</b>";
        var hostile = await app.Get<ApprovedQueryService>().CreateAsync(projectId, new ApprovedQueryRequest(demo.DatasourceId, hostileName, hostileDescription,
            "SELECT city FROM customers WHERE id = 1"), admin);
        await app.Get<QueryPermissionService>().SetAsync(projectId, hostile.Id, new QueryGrant(PrincipalTypes.All, null, true, true, false), admin);
        await using var b = await browser.OpenAsync(app, output);

        await b.RunAsync(async page =>
        {
            await b.SignInAsync("uma@northwind.test");
            await b.GotoAsync($"/p/{projectId}/queries");
            await b.WaitInteractiveAsync();
            var grid = page.Locator("#catalog-grid");
            await Expect(grid).ToContainTextAsync(DemoCatalog.CustomerLookup);
            await Expect(grid).ToContainTextAsync(hostileName);
            await Expect(grid).ToContainTextAsync(hostileDescription);
            await Expect(grid).Not.ToContainTextAsync(DemoCatalog.SalarySummary);
            Assert.Equal(0, await page.Locator("#catalog-grid img[src='x']").CountAsync());
            Assert.True(await page.EvaluateAsync<bool>("() => window.__pwned === undefined"));
            await b.ScreenshotAsync("query-catalog");

            // Search narrows the list.
            await page.Locator("#catalog-search").FillAsync("city");
            await page.Locator("#catalog-search").PressAsync("Tab");
            await Expect(grid).ToContainTextAsync(DemoCatalog.ContactsByCity);
            await Expect(grid).Not.ToContainTextAsync(DemoCatalog.CustomerLookup);
            await page.Locator("#catalog-search").FillAsync("");
            await page.Locator("#catalog-search").PressAsync("Tab");

            await grid.GetByRole(AriaRole.Link, new() { Name = DemoCatalog.CustomerLookup }).ClickAsync();
            await Expect(page.Locator("#query-detail-name")).ToHaveTextAsync(DemoCatalog.CustomerLookup);
            await Expect(page.Locator("#query-sql")).ToContainTextAsync("WHERE id = @customer_id");
            await Expect(page.Locator("#query-parameters")).ToContainTextAsync("int");
            await Input(page, "param-customer_id").FillAsync("7");
            await page.Locator("#run-query").ClickAsync();
            var result = page.Locator("#run-result");
            await Expect(result).ToBeVisibleAsync();
            await Expect(page.Locator("#run-row-count")).ToHaveTextAsync("1");
            await Expect(page.Locator("#run-event-id")).ToHaveTextAsync(new Regex("^[0-9a-f-]{36}$"));
            var masked = page.Locator("#run-grid .masked-col");
            await Expect(masked.Filter(new() { HasText = "ssn" })).ToHaveAttributeAsync("title", "Masked for your role (partial)");
            await Expect(masked.Filter(new() { HasText = "card_number" })).ToHaveCountAsync(1);
            await Expect(masked.Filter(new() { HasText = "email" })).ToHaveAttributeAsync("data-mask", "email_domain");
            await Expect(page.Locator("#run-grid .masked-col", new() { HasText = "city" })).ToHaveCountAsync(0);
            await Expect(page.Locator("#run-grid tbody")).ToContainTextAsync("***@");
            await b.ScreenshotAsync("query-run");

            // The event id on screen is the executed event in the audit trail, with the member as actor.
            var eventId = Guid.Parse(await page.Locator("#run-event-id").InnerTextAsync());
            await using (var ctx = await app.Get<Microsoft.EntityFrameworkCore.IDbContextFactory<PortalDbContext>>().CreateDbContextAsync())
            {
                var ev = ctx.AuditEvents.Single(e => e.Id == eventId);
                Assert.Equal(GatewayService.ExecutedEvent, ev.EventType);
                Assert.Equal("user", ev.ActorType);
                Assert.Equal("uma@northwind.test", ev.ActorEmail);
            }

            // One listing event per page visit: the interactive page reuses what the prerendered page listed.
            await using (var ctx = await app.Get<Microsoft.EntityFrameworkCore.IDbContextFactory<PortalDbContext>>().CreateDbContextAsync())
                Assert.Equal(1, ctx.AuditEvents.Count(e => e.EventType == GatewayService.ListedEvent && e.ActorEmail == "uma@northwind.test"));

            // A value the parameter's pattern refuses is named next to its field, in the API's words.
            await b.GotoAsync($"/p/{projectId}/queries?query={demo.Queries[DemoCatalog.ContactsByCity]}");
            await b.WaitInteractiveAsync();
            await Expect(page.Locator("#query-detail-name")).ToHaveTextAsync(DemoCatalog.ContactsByCity);
            await page.Locator("#param-city").FillAsync("Paris1");
            await page.Locator("#run-query").ClickAsync();
            await Expect(page.Locator("#param-error-city")).ToBeVisibleAsync();
            await Expect(page.Locator("#run-denied")).ToContainTextAsync("One or more parameters are invalid.");
            await Expect(page.Locator("#run-result")).ToHaveCountAsync(0);
            await b.ScreenshotAsync("query-run-invalid");
        });
        Assert.Empty(app.Logs.Errors);
    }

    [Fact]
    public async Task An_admin_adds_a_mask_with_a_live_preview_and_the_next_run_shows_the_column_masked()
    {
        await using var db = await TestDatabase.CreateAsync("sqlite");
        var (app, _, projectId, demo) = await WorldAsync(db);
        await using var __ = app;
        await using var b = await browser.OpenAsync(app, output);

        await b.RunAsync(async page =>
        {
            await b.SignInAsync("ada@northwind.test");
            await b.GotoAsync($"/p/{projectId}/access");
            await b.WaitInteractiveAsync();
            await Expect(page.Locator("#grants-grid")).ToContainTextAsync("role user");
            await b.ScreenshotAsync("access-permissions");

            // A grant to one member, then removed after confirmation.
            await b.ChooseAsync(page.Locator("#grant-type"), "user");
            await b.ChooseAsync(page.Locator("#grant-member"), "uma@northwind.test");
            await page.Locator("#save-grant").ClickAsync();
            await Expect(b.Notifications.Filter(new() { HasText = "Grant saved" })).ToBeVisibleAsync();
            var umaRow = page.Locator("#grants-grid").GetByRole(AriaRole.Row).Filter(new() { HasText = "uma@northwind.test" });
            await Expect(umaRow).ToHaveCountAsync(1);
            await umaRow.GetByRole(AriaRole.Button, new() { Name = "Remove grant to uma@northwind.test" }).ClickAsync();
            await b.ConfirmAsync("Remove");
            await Expect(umaRow).ToHaveCountAsync(0);
            await b.DismissNotificationsAsync();

            await page.GetByRole(AriaRole.Tab, new() { Name = "Column masks" }).ClickAsync();
            await Expect(page.Locator("#masks-grid")).ToContainTextAsync("customers.ssn");
            await page.Locator("#add-mask").ClickAsync();
            await b.ChooseAsync(page.Locator("#mask-table"), "customers");
            await b.ChooseAsync(page.Locator("#mask-column"), "name");
            await b.ChooseAsync(page.Locator("#mask-type"), "redact");
            await page.Locator("#mask-sample").FillAsync("Ada Lovelace");
            var preview = page.Locator("#mask-preview");
            await Expect(preview.Locator("tr[data-role='user']")).ToContainTextAsync("[REDACTED]");
            await Expect(preview.Locator("tr[data-role='admin']")).ToContainTextAsync("[REDACTED]");
            // Partial shows the chosen characters; a role allowed through sees the raw value.
            await b.ChooseAsync(page.Locator("#mask-type"), "partial");
            await Input(page, "mask-last").FillAsync("3");
            await Input(page, "mask-last").PressAsync("Tab");
            await Expect(preview.Locator("tr[data-role='user']")).ToContainTextAsync("*********ace");
            await b.ChooseAsync(page.Locator("#mask-type"), "redact");
            await page.Locator("#mask-classification").FillAsync("pii");
            await b.ScreenshotAsync("access-masks");
            await page.Locator("#save-mask").ClickAsync();
            await Expect(b.Notifications.Filter(new() { HasText = "Mask added" })).ToBeVisibleAsync();
            await Expect(page.Locator("#masks-grid")).ToContainTextAsync("customers.name");

            await b.GotoAsync($"/p/{projectId}/queries?query={demo.Queries[DemoCatalog.CustomerLookup]}");
            await b.WaitInteractiveAsync();
            await Input(page, "param-customer_id").FillAsync("3");
            await page.Locator("#run-query").ClickAsync();
            await Expect(page.Locator("#run-grid .masked-col", new() { HasText = "name" })).ToHaveAttributeAsync("data-mask", "redact");
            await Expect(page.Locator("#run-grid tbody")).ToContainTextAsync("[REDACTED]");
        });
        Assert.Empty(app.Logs.Errors);
    }

    [Fact]
    public async Task A_data_engineer_writes_a_query_the_engine_refuses_fixes_it_runs_it_and_archives_it()
    {
        await using var db = await TestDatabase.CreateAsync("sqlite");
        var (app, admin, projectId, _) = await WorldAsync(db);
        await using var __ = app;
        await app.AddMemberAsync(projectId, "dan@northwind.test", Roles.Data, admin);
        await using var b = await browser.OpenAsync(app, output);

        await b.RunAsync(async page =>
        {
            await b.SignInAsync("dan@northwind.test");
            await b.GotoAsync($"/p/{projectId}/queries");
            await b.WaitInteractiveAsync();
            await page.Locator("#new-query").ClickAsync();
            await page.Locator("#q-name").FillAsync("Orders of one customer");
            await page.Locator("#q-description").FillAsync("Every order of a customer, newest first.");
            await page.Locator("#q-sql").FillAsync("DELETE FROM orders WHERE customer_id = @customer_id");
            await page.Locator("#add-parameter").ClickAsync();
            await page.Locator("#qp-name-0").FillAsync("customer_id");
            await b.ChooseAsync(page.Locator("#qp-type-0"), "Int");
            await page.Locator("#save-query").ClickAsync();
            // The engine, not string matching, refuses a write; its words appear under the SQL.
            await Expect(page.Locator("#q-error-sql")).ToBeVisibleAsync();
            await Expect(page.Locator("#q-error-sql")).ToContainTextAsync("read-only");

            await page.Locator("#q-sql").FillAsync("SELECT id, amount, ordered_on FROM orders WHERE customer_id = @customer_id ORDER BY ordered_on DESC");
            await page.Locator("#save-query").ClickAsync();
            await Expect(b.Notifications.Filter(new() { HasText = "Query created" })).ToBeVisibleAsync();
            await Expect(page.Locator("#query-detail-name")).ToHaveTextAsync("Orders of one customer");
            await Input(page, "param-customer_id").FillAsync("7");
            await page.Locator("#run-query").ClickAsync();
            await Expect(page.Locator("#run-result")).ToBeVisibleAsync();
            await Expect(page.Locator("#run-grid .masked-col")).ToHaveCountAsync(0);
            await Expect(page.Locator("#query-impact")).ToContainTextAsync("No consumers registered");

            // The run's audit event is one click away: the log opens with that event's detail.
            var eventId = (await page.Locator("#run-event-id").TextContentAsync())!.Trim();
            await page.Locator("#run-event-link").ClickAsync();
            await Expect(page.Locator("#event-detail")).ToBeVisibleAsync();
            await Expect(page.Locator("#event-detail")).ToContainTextAsync(eventId);
            await Expect(page.Locator("#event-detail")).ToContainTextAsync("dan@northwind.test");
            await page.GoBackAsync();
            await b.WaitInteractiveAsync();
            await Expect(page.Locator("#query-detail-name")).ToHaveTextAsync("Orders of one customer");

            // A dashboard starts relying on the query (registered on its history page, here directly): changing it now
            // asks for a confirmation that names the dashboard, and the query page shows the impact.
            var queryId = (await app.Get<ApprovedQueryService>().ListAsync(projectId, 0, 50)).Items.Single(q => q.Name == "Orders of one customer").Id;
            await app.Get<Portal.Domain.Governance.QueryHistoryService>().AddConsumerAsync(projectId, queryId,
                new Portal.Domain.Governance.ConsumerRequest("dashboard", "Weekly revenue"), admin);
            await page.Locator("#edit-query").ClickAsync();
            await page.Locator("#q-description").FillAsync("Every order of one customer, newest first.");
            await page.Locator("#save-query").ClickAsync();
            var dialog = page.GetByRole(AriaRole.Alertdialog);
            await Expect(dialog).ToContainTextAsync("1 dashboard");
            await Expect(dialog).ToContainTextAsync("Weekly revenue");
            await b.ConfirmAsync("Save and affect them");
            await Expect(b.Notifications.Filter(new() { HasText = "Query saved" })).ToBeVisibleAsync();
            await Expect(page.Locator("#query-impact")).ToContainTextAsync("Used by 1 dashboard: Weekly revenue");
            await Expect(page.Locator("#query-history-link")).ToHaveAttributeAsync("href", $"p/{projectId}/queries/{queryId}/history");
            await b.DismissNotificationsAsync();
            await b.ScreenshotAsync("query-detail-consumers");

            await page.Locator("#archive-query").ClickAsync();
            await Expect(dialog).ToContainTextAsync("dashboard Weekly revenue");
            await b.ConfirmAsync("Archive and affect them");
            await Expect(b.Notifications.Filter(new() { HasText = "Query archived" })).ToBeVisibleAsync();
            await Expect(page.Locator("#query-detail")).ToHaveCountAsync(0);
            await Expect(page.Locator("#catalog-grid")).Not.ToContainTextAsync("Orders of one customer");
        });
        Assert.Empty(app.Logs.Errors);
    }
}
