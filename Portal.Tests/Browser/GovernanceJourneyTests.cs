using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using Portal.Domain.Gateway;
using Portal.Domain.Gateway.Catalog;
using Portal.Domain.Governance;
using Portal.Domain.Persistence;
using Portal.Domain.Security.ApiKeys;
using Portal.Domain.Suite;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace Portal.Tests.Browser;

[Collection(BrowserCollection.Name)]
public class GovernanceJourneyTests(BrowserFixture browser, ITestOutputHelper output)
{
    private const string HostilePrompt = "<img src=x onerror=alert(1)> Which contact details does customer 7 have?";

    private static async Task<(Guid Admin, Guid ProjectId, DemoCatalogResult Demo)> SeedAsync(PortalApp app, string adminEmail)
    {
        var (admin, projectId) = await app.SetupAsync(adminEmail);
        await app.InstallSuiteAsync(projectId, admin.Id, Tier.EnterprisePlus, Modules.Audit, Modules.AccessControl, Modules.Governance);
        var demo = await app.Get<DemoCatalog>().SeedAsync(projectId, admin.Id, app.Get<DatabaseOptions>().DataDirectory) ?? throw new InvalidOperationException("demo not seeded");
        return (admin.Id, projectId, demo);
    }

    [Fact]
    public async Task Agent_suggests_admin_test_runs_with_masks_and_approves_then_the_agent_runs_it_and_the_audit_log_shows_every_step()
    {
        await using var db = await TestDatabase.CreateAsync("sqlite");
        await using var app = PortalApp.ForBrowser(db);
        var (admin, projectId, demo) = await SeedAsync(app, "ada@northwind.test");
        var key = (await app.Get<ApiKeyService>().CreateAsync(projectId, new CreateApiKeyRequest("support agent", Roles.Data, [ApiKeyRules.SuggestScope]), admin)).Secret;
        using var agent = new HttpClient { BaseAddress = new Uri(app.StartKestrel()) };
        agent.DefaultRequestHeaders.Authorization = new("Bearer", key);

        var submitted = await agent.PostAsJsonAsync("/api/v1/suggestions", new
        {
            datasourceId = demo.DatasourceId, name = "Customer contact card", prompt = HostilePrompt,
            sql = "SELECT id, name, email, ssn, city FROM customers WHERE id = @customer_id",
            parameters = new[] { new { name = "customer_id", type = "int", description = "Customer id" } },
            justification = "The support agent greets customers by name",
        });
        Assert.True(submitted.StatusCode == HttpStatusCode.Created, await submitted.Content.ReadAsStringAsync());
        var suggestionId = (await submitted.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();

        await using var b = await browser.OpenAsync(app, output);
        await b.RunAsync(async page =>
        {
            var dialogs = 0;
            page.Dialog += (_, d) => { dialogs++; _ = d.DismissAsync(); };
            await b.SignInAsync("ada@northwind.test");
            await b.GotoAsync($"/p/{projectId}");
            await b.WaitInteractiveAsync();
            // The bell says a review is waiting and links to it.
            await Expect(page.Locator("#notification-count")).ToHaveTextAsync("1");
            await page.Locator("#notification-bell").ClickAsync();
            await Expect(page.Locator("#notification-panel")).ToContainTextAsync("New suggestion: Customer contact card");
            await b.ScreenshotAsync("notifications");

            await page.GetByRole(AriaRole.Link, new() { Name = "Approvals" }).ClickAsync();
            await b.WaitInteractiveAsync();
            var row = page.Locator("#queue-grid .rz-data-row").Filter(new() { HasText = "Customer contact card" });
            await Expect(row).ToHaveCountAsync(1);
            await Expect(row.Locator("[data-risk='pii_column']")).ToBeVisibleAsync();
            await Expect(row).ToContainTextAsync("support agent");
            await Expect(page.Locator("#count-pending")).ToContainTextAsync("pending 1");
            await b.ScreenshotAsync("approvals-queue");

            await row.Locator(".suggestion-link").ClickAsync();
            await Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex($"/p/{projectId}/approvals/{suggestionId}$"));
            await b.WaitInteractiveAsync();
            await Expect(page.Locator("#suggestion-prompt")).ToHaveTextAsync(HostilePrompt);
            await Expect(page.Locator("#risk-flags [data-risk='pii_column']")).ToBeVisibleAsync();
            await Expect(page.Locator("#columns-read")).ToContainTextAsync("ssn");
            await Expect(page.Locator("#suggestion-sql .sql-kw").First).ToHaveTextAsync("SELECT");

            // The test run shows PII masked for the admin (only compliance sees SSNs and e-mails).
            await page.Locator("#test-param-customer_id").FillAsync("7");
            await page.Locator("#run-test").ClickAsync();
            var results = page.Locator("#test-results");
            await Expect(results.Locator("tbody tr")).ToHaveCountAsync(1);
            await Expect(results.Locator("thead")).ToContainTextAsync("masked: partial");
            await Expect(results.Locator("tbody")).ToContainTextAsync("***@");
            await Expect(results.Locator("tbody")).ToContainTextAsync("*****");
            await results.ScrollIntoViewIfNeededAsync();
            await b.ScreenshotAsync("suggestion-review");

            await page.Locator("#decision-reason").FillAsync("Needed by support; PII stays masked for agents");
            await page.Locator("#approve").ClickAsync();
            await Expect(page.Locator("#decision")).ToContainTextAsync("Approved");
            await Expect(page.Locator("#result-query")).ToContainTextAsync("version 1");
            Assert.Equal(0, await page.Locator("main img, main script").CountAsync());
            Assert.Equal(0, dialogs);
        });

        // The agent lists and runs the new query; the gateway answers with masked PII and the version.
        var list = await (await agent.GetAsync("/api/v1/queries")).Content.ReadFromJsonAsync<JsonElement>();
        var query = list.GetProperty("queries").EnumerateArray().Single(q => q.GetProperty("name").GetString() == "Customer contact card");
        Assert.Equal(1, query.GetProperty("version").GetInt32());
        var queryId = query.GetProperty("id").GetGuid();
        var run = await agent.PostAsJsonAsync($"/api/v1/queries/{queryId}/execute", new { parameters = new { customer_id = 7 } });
        Assert.True(run.StatusCode == HttpStatusCode.OK, await run.Content.ReadAsStringAsync());
        var mine = await (await agent.GetAsync($"/api/v1/suggestions/{suggestionId}")).Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(("approved", 1), (mine.GetProperty("status").GetString(), mine.GetProperty("approvedVersion").GetInt32()));

        // A later change makes a second version for the history page.
        var current = await app.Get<ApprovedQueryService>().GetAsync(projectId, queryId);
        await app.Get<ApprovedQueryService>().UpdateAsync(projectId, queryId,
            new ApprovedQueryRequest(current.DatasourceId, current.Name, current.Description, "SELECT id, name, city\nFROM customers\nWHERE id = @customer_id",
                current.Parameters, current.Classifications, current.RowCap, current.TimeoutMs), admin, reason: "Drop e-mail and SSN: support does not need them");

        await b.RunAsync(async page =>
        {
            await b.GotoAsync($"/p/{projectId}/audit");
            await b.WaitInteractiveAsync();
            var rows = page.Locator("#audit-events .audit-row");
            await Expect(rows.Filter(new() { HasText = "suggestion.submitted" })).ToHaveCountAsync(1);
            await Expect(rows.Filter(new() { HasText = "suggestion.approved" })).ToHaveCountAsync(1);
            await Expect(rows.Filter(new() { HasText = "suggestion.test_run" })).ToHaveCountAsync(1);
            var executed = rows.Filter(new() { HasText = "gateway.query_executed" });
            await Expect(executed).ToHaveCountAsync(1);
            await executed.GetByRole(AriaRole.Button, new() { Name = "Details of event" }).ClickAsync();
            await Expect(page.Locator("#event-detail #detail-details")).ToContainTextAsync("\"version\": 1");
            await page.Locator(".rz-dialog-titlebar-close").ClickAsync();
            await Expect(page.Locator(".rz-dialog-mask")).ToHaveCountAsync(0);
            var approved = rows.Filter(new() { HasText = "suggestion.approved" });
            await approved.GetByRole(AriaRole.Button, new() { Name = "Details of event" }).ClickAsync();
            await Expect(page.Locator("#event-detail #detail-details")).ToContainTextAsync("\"version\": 1");
            await page.Locator(".rz-dialog-titlebar-close").ClickAsync();

            await b.GotoAsync($"/p/{projectId}/queries/{queryId}/history");
            await b.WaitInteractiveAsync();
            await Expect(page.Locator("#current-version")).ToContainTextAsync("version 2");
            await Expect(page.Locator("#versions-grid")).ToContainTextAsync("Drop e-mail and SSN");
            await Expect(page.Locator("#version-diff .removed").First).ToContainTextAsync("SELECT id, name, email, ssn, city");
            await Expect(page.Locator("#version-diff .added").First).ToContainTextAsync("SELECT id, name, city");
            await page.Locator("#compare").ScrollIntoViewIfNeededAsync();
            await b.ScreenshotAsync("query-history");
        });
    }

    [Fact]
    public async Task A_pii_query_needs_two_approvals_from_different_roles_and_its_suggester_cannot_approve_it()
    {
        await using var db = await TestDatabase.CreateAsync("sqlite");
        await using var app = PortalApp.ForBrowser(db);
        var (admin, projectId, demo) = await SeedAsync(app, "ada@northwind.test");
        await app.AddMemberAsync(projectId, "dan@northwind.test", Roles.Data, admin);
        await app.AddMemberAsync(projectId, "dora@northwind.test", Roles.Data, admin);
        await app.Get<ApprovalPolicyService>().SetAsync(projectId, new ApprovalPolicyRequest("pii", 2, [Roles.Admin, Roles.Data], DistinctRoles: true), admin);
        Guid suggestionId = default;

        // Dan (data) suggests a PII query in the portal and cannot approve it himself.
        await using (var dan = await browser.OpenAsync(app, output))
        {
            await dan.RunAsync(async page =>
            {
                await dan.SignInAsync("dan@northwind.test");
                await dan.GotoAsync($"/p/{projectId}/suggestions");
                await dan.WaitInteractiveAsync();
                await Expect(page.Locator("#suggestions-empty")).ToBeVisibleAsync();
                await page.Locator("#suggest-query").ClickAsync();
                await page.Locator("#sg-name").FillAsync("Phone by customer");
                await page.Locator("#sg-prompt").FillAsync("Call a customer back");
                await page.Locator("#sg-sql").FillAsync("SELECT name, phone FROM customers WHERE id = @customer_id");
                await page.Locator("#sg-parameters").FillAsync("[{\"name\": \"customer_id\", \"type\": \"int\"}]");
                await page.Locator("#sg-justification").FillAsync("Call-backs");
                await page.Locator("#submit-suggestion").ClickAsync();
                await Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex($"/p/{projectId}/suggestions/[0-9a-f-]{{36}}$"));
                await dan.WaitInteractiveAsync();
                suggestionId = Guid.Parse(page.Url[^36..]);
                await Expect(page.Locator("#quorum")).ToContainTextAsync("0 of 2 for pii");
                await Expect(page.Locator("#cannot-review")).ToContainTextAsync("You suggested this query; someone else must review it.");
                await Expect(page.Locator("#approve")).ToHaveCountAsync(0);
            });
        }
        // The service refuses it too, whatever the page shows.
        var danId = await UserIdAsync(app, "dan@northwind.test");
        var self = await Assert.ThrowsAsync<Portal.Domain.DomainException>(() => app.Get<SuggestionService>().ApproveAsync(projectId, suggestionId, new ApproveRequest("mine"), danId));
        Assert.Equal(Portal.Domain.ErrorKind.Forbidden, self.Kind);

        // One admin approval is not enough.
        await using (var ada = await browser.OpenAsync(app, output))
        {
            await ada.RunAsync(async page =>
            {
                await ada.SignInAsync("ada@northwind.test");
                await ada.GotoAsync($"/p/{projectId}/approvals/{suggestionId}");
                await ada.WaitInteractiveAsync();
                await page.Locator("#decision-reason").FillAsync("Fine for call-backs");
                await page.Locator("#approve").ClickAsync();
                await Expect(ada.Notifications.Filter(new() { HasText = "More approvals are needed" })).ToBeVisibleAsync();
                await Expect(page.Locator("#quorum")).ToContainTextAsync("1 of 2 for pii");
                await Expect(page.Locator("#quorum")).ToContainTextAsync("Fine for call-backs");
                await Expect(page.Locator("[data-status='pending']")).ToBeVisibleAsync();
                await ada.DismissNotificationsAsync();
                await ada.ScreenshotAsync("suggestion-quorum");
            });
        }

        // Dora (data, named by the policy) finds it waiting for her role and completes the quorum.
        await using (var dora = await browser.OpenAsync(app, output))
        {
            await dora.RunAsync(async page =>
            {
                await dora.SignInAsync("dora@northwind.test");
                await dora.GotoAsync($"/p/{projectId}/suggestions");
                await dora.WaitInteractiveAsync();
                await page.Locator("#awaiting-review").GetByRole(AriaRole.Link, new() { Name = "Phone by customer" }).ClickAsync();
                await dora.WaitInteractiveAsync();
                await page.Locator("#decision-reason").FillAsync("Second role agrees");
                await page.Locator("#approve").ClickAsync();
                await Expect(page.Locator("#decision")).ToContainTextAsync("Approved");
            });
        }
        var approved = await app.Get<SuggestionService>().GetAsync(projectId, suggestionId);
        Assert.Equal((SuggestionStatuses.Approved, 1), (approved.Status, approved.ResultVersion));
    }

    private static async Task<Guid> UserIdAsync(PortalApp app, string email) =>
        await app.WithScopeAsync(async sp => (await sp.GetRequiredService<Microsoft.AspNetCore.Identity.UserManager<PortalUser>>().FindByEmailAsync(email))!.Id);
}
