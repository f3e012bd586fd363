using System.Net;
using Microsoft.Playwright;
using Portal.Domain.Integrations;
using Portal.Domain.Suite;
using Portal.Domain.Tenancy;
using Portal.Tests.Browser;
using Portal.Tests.Infrastructure;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace Portal.Tests.Integrations;

public class IntegrationsPageTests
{
    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Admin_sees_the_integrations_and_retention_pages_and_other_roles_are_refused(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db);
        var (admin, projectId) = await app.SetupAsync();
        await app.InstallSuiteAsync(projectId, admin.Id, Tier.EnterprisePlus, Modules.Integrations);
        await app.AddMemberAsync(projectId, "analyst@bank.test", Roles.User, admin.Id);
        await app.AddMemberAsync(projectId, "sec@bank.test", Roles.Security, admin.Id);

        var adminClient = await app.SignedInClientAsync(admin.Email!);
        var page = await adminClient.GetAsync($"/p/{projectId}/integrations");
        Assert.True(page.StatusCode == HttpStatusCode.OK, app.Logs.Errors);
        var html = await page.Content.ReadAsStringAsync();
        Assert.Contains("id=\"siem-empty\"", html);
        Assert.Contains("id=\"hooks-empty\"", html);
        Assert.Contains($"href=\"p/{projectId}/integrations\"", html);
        Assert.Contains($"href=\"p/{projectId}/retention\"", html);

        await app.Get<WebhookService>().CreateAsync(projectId, admin.Id, new WebhookDraft("<script>alert(1)</script>", "webhook", "https://hooks.example.test/x", [OutboxEvents.AlertCreated]));
        html = await (await adminClient.GetAsync($"/p/{projectId}/integrations")).Content.ReadAsStringAsync();
        Assert.Contains("&lt;script&gt;alert(1)&lt;/script&gt;", html);
        Assert.DoesNotContain("<script>alert(1)</script>", html);
        Assert.DoesNotContain("whsec_", html);

        var retention = await adminClient.GetAsync($"/p/{projectId}/retention");
        Assert.Equal(HttpStatusCode.OK, retention.StatusCode);
        Assert.Contains("Sign-ins and page activity", await retention.Content.ReadAsStringAsync());

        foreach (var email in new[] { "analyst@bank.test", "sec@bank.test" })
        {
            var client = await app.SignedInClientAsync(email);
            foreach (var path in new[] { "integrations", "retention" })
            {
                var denied = await client.GetAsync($"/p/{projectId}/{path}");
                Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
                Assert.DoesNotContain("alert(1)", await denied.Content.ReadAsStringAsync());
            }
        }
        // Archived events download as JSONL for whoever may export the audit trail; the download is audited.
        var writer = app.Get<Portal.Domain.Audit.AuditWriter>();
        for (var i = 0; i < 5; i++)
            await writer.AppendAsync(new Portal.Domain.Audit.AuditEventDraft { ProjectId = projectId, EventType = "auth.sign_in_succeeded", Actor = Portal.Domain.Audit.AuditActor.System, OccurredAt = DateTimeOffset.UtcNow.AddDays(-200) });
        Assert.Equal(5, (await app.Get<Portal.Domain.Compliance.Retention.AuditArchiver>().ArchiveAsync()).EventsArchived);
        var download = await adminClient.GetAsync($"/p/{projectId}/retention/archive.jsonl?from=2000-01-01");
        Assert.Equal(HttpStatusCode.OK, download.StatusCode);
        var lines = (await download.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(5, lines.Length);
        Assert.All(lines, l => Assert.Contains("auth.sign_in_succeeded", l));
        Assert.Equal(HttpStatusCode.BadRequest, (await adminClient.GetAsync($"/p/{projectId}/retention/archive.jsonl?from=yesterday")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await (await app.SignedInClientAsync("analyst@bank.test")).GetAsync($"/p/{projectId}/retention/archive.jsonl")).StatusCode);
        await using (var ctx = db.NewContext())
            Assert.True(await Microsoft.EntityFrameworkCore.EntityFrameworkQueryableExtensions.AnyAsync(ctx.AuditEvents, e => e.EventType == "audit.archive_exported"));

        // Another project's id: the admin of this project is not a member there.
        var outsider = await adminClient.GetAsync($"/p/{Guid.NewGuid()}/integrations");
        Assert.NotEqual(HttpStatusCode.OK, outsider.StatusCode);
        Assert.Empty(app.Logs.Errors);
    }
}

[Collection(BrowserCollection.Name)]
public class IntegrationsPageBrowserTests(BrowserFixture browser, ITestOutputHelper output)
{
    [Fact]
    public async Task Admin_adds_splunk_hec_tests_it_sees_lag_fall_to_zero_then_a_webhook_delivery_verified_by_the_receiver()
    {
        await using var db = await TestDatabase.CreateAsync("sqlite");
        // The portal runs its jobs here, as in the embedded default: the integrations job fires every 10 seconds.
        await using var app = PortalApp.ForBrowser(db, new() { ["Jobs:RunInPortal"] = "true" });
        var (admin, projectId) = await app.SetupAsync("ada@northwind.test");
        await app.InstallSuiteAsync(projectId, admin.Id, Tier.EnterprisePlus, Modules.Integrations);
        await using var splunk = await HttpReceiver.StartAsync();
        splunk.ResponseBody = "{\"text\":\"Success\",\"code\":0}";
        splunk.Behave = (_, r) => r.Headers.GetValueOrDefault("authorization") == "Splunk 11111111-2222-3333-4444-555555555555" ? 200 : 403;
        await using var soc = await HttpReceiver.StartAsync();
        string? secret = null;
        soc.Behave = (_, r) => secret is not null && StandardWebhooks.Verify(secret, r.Headers["webhook-id"], r.Headers["webhook-timestamp"], r.Body, r.Headers["webhook-signature"], DateTimeOffset.UtcNow) ? 200 : 401;
        soc.ResponseBody = "signature verified";
        await using var b = await browser.OpenAsync(app, output);

        await b.RunAsync(async page =>
        {
            await b.SignInAsync("ada@northwind.test");
            await b.GotoAsync($"/p/{projectId}/integrations");
            await b.WaitInteractiveAsync();
            await Expect(page.Locator("#siem-empty")).ToBeVisibleAsync();
            await b.ScreenshotAsync("integrations-empty");

            await page.Locator("#add-siem").ClickAsync();
            await page.Locator("#siem-name").FillAsync("Splunk prod");
            await page.Locator("#siem-endpoint").FillAsync("not a url");
            await page.Locator("#siem-secret").FillAsync("11111111-2222-3333-4444-555555555555");
            await page.Locator("#save-siem").ClickAsync();
            await Expect(page.Locator("#siem-error")).ToContainTextAsync("http://");
            await page.Locator("#siem-endpoint").FillAsync(splunk.Url);
            await page.Locator("#save-siem").ClickAsync();
            await Expect(b.Notifications.Filter(new() { HasText = "SIEM integration added" })).ToBeVisibleAsync();
            await Expect(page.Locator("#siem-form")).ToHaveCountAsync(0);
            var row = page.Locator("#siem-grid").GetByRole(AriaRole.Row).Filter(new() { HasText = "Splunk prod" });
            await Expect(row).ToContainTextAsync("Splunk HEC");
            await Expect(page.Locator("body")).Not.ToContainTextAsync("11111111-2222-3333-4444-555555555555");

            await b.DismissNotificationsAsync();
            await page.Locator("#test-siem-splunk-prod").ClickAsync();
            await Expect(page.Locator("#test-result")).ToContainTextAsync("accepted the test event");
            Assert.Contains(splunk.Requests, r => r.Body.Contains("integration.test"));

            // The job exports the trail (the sign-ins and the integration's own creation are in it): lag falls to zero.
            await Expect(page.Locator("#siem-lag-splunk-prod")).ToHaveTextAsync("0", new() { Timeout = 45_000 });
            await Expect(row).Not.ToContainTextAsync("never");
            Assert.Contains(splunk.Accepted, r => r.Body.Contains("integration.siem_created"));
            await b.DismissNotificationsAsync();
            await b.ScreenshotAsync("integrations-siem");

            await page.Locator("#add-hook").ClickAsync();
            await page.Locator("#hook-name").FillAsync("SOC alerts");
            await page.Locator("#hook-url").FillAsync(soc.Url + "/governance");
            await page.Locator("#save-hook").ClickAsync();
            await Expect(page.Locator("#hook-secret-value")).ToContainTextAsync("whsec_");
            secret = (await page.Locator("#hook-secret-value").TextContentAsync())!.Trim();
            await b.DismissNotificationsAsync();
            await b.ScreenshotAsync("integrations-webhook-secret");
            await page.Locator("#dismiss-hook-secret").ClickAsync();
            await Expect(page.Locator("#hook-secret")).ToHaveCountAsync(0);

            // An alert raised elsewhere in the portal lands in the outbox with its change.
            await using (var ctx = db.NewContext())
            {
                Outbox.Add(ctx, projectId, OutboxEvents.AlertCreated, new { title = "SQL injection attempt blocked", severity = "high" }, DateTimeOffset.UtcNow, "alert", "a-1");
                await ctx.SaveChangesAsync();
            }
            var delivery = page.Locator("#deliveries-grid").GetByRole(AriaRole.Row).Filter(new() { HasText = "alert.created" });
            await Expect(delivery).ToContainTextAsync("delivered", new() { Timeout = 45_000 });
            await Expect(delivery).ToContainTextAsync("signature verified");
            await Expect(page.Locator("#hook-rate-soc-alerts")).ToHaveTextAsync("100%");
            var got = Assert.Single(soc.Requests);
            Assert.Equal(200, got.AnsweredWith);
            await Expect(delivery).ToContainTextAsync(got.Headers["webhook-id"]);
            await b.DismissNotificationsAsync();
            await b.ScreenshotAsync("integrations");
        });
        Assert.Empty(app.Logs.Errors);
    }
}
