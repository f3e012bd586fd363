using System.Net;
using System.Net.Http.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Playwright;
using Portal.Domain.Gateway.Catalog;
using Portal.Domain.Persistence;
using Portal.Domain.Security.Alerts;
using Portal.Domain.Security.ApiKeys;
using Portal.Domain.Security.RateLimits;
using Portal.Domain.Suite;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace Portal.Tests.Browser;

[Collection(BrowserCollection.Name)]
public class SecurityJourneyTests(BrowserFixture browser, ITestOutputHelper output)
{
    [Fact]
    public async Task Analyst_triages_an_attacker_key_from_de_duplicated_alerts_to_revocation_and_the_audit_shows_every_step()
    {
        await using var db = await TestDatabase.CreateAsync("sqlite");
        await using var app = PortalApp.ForBrowser(db);
        var (admin, projectId) = await app.SetupAsync();
        await app.InstallSuiteAsync(projectId, admin.Id, Tier.EnterprisePlus, Modules.AccessControl, Modules.Security);
        var analyst = await app.AddMemberAsync(projectId, "sec@bank.test", Roles.Security, admin.Id);
        var demo = await app.Get<DemoCatalog>().SeedAsync(projectId, admin.Id, app.Get<DatabaseOptions>().DataDirectory) ?? throw new InvalidOperationException("no demo");
        var attacker = await app.Get<ApiKeyService>().CreateAsync(projectId, new CreateApiKeyRequest("partner-sync agent", Roles.User), admin.Id);
        // One day's window, so the burst below cannot straddle a window boundary.
        await app.Get<RateLimitService>().CreateAsync(projectId, new RateLimitInput(RateLimitScopes.Key, null, 5, null, 86_400), admin.Id);
        await using var b = await browser.OpenAsync(app, output);

        using var http = new HttpClient { BaseAddress = new Uri(app.BaseUrl!) };
        async Task<HttpStatusCode> CallAsync(string city)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/v1/queries/{demo.Queries[DemoCatalog.ContactsByCity]}/execute")
            {
                Content = JsonContent.Create(new { parameters = new { city } }),
            };
            request.Headers.Authorization = new("Bearer", attacker.Secret);
            request.Headers.UserAgent.ParseAdd("sqlmap/1.7");
            return (await http.SendAsync(request)).StatusCode;
        }
        const string Injection = "Lisbon' or name like '";
        for (var i = 0; i < 3; i++) Assert.Equal(HttpStatusCode.BadRequest, await CallAsync(Injection));
        var burst = new List<HttpStatusCode>();
        for (var i = 0; i < 5; i++) burst.Add(await CallAsync("Lisbon"));
        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests, HttpStatusCode.TooManyRequests, HttpStatusCode.TooManyRequests], burst);

        await b.RunAsync(async page =>
        {
            await b.SignInAsync("sec@bank.test");
            await b.GotoAsync($"/p/{projectId}");
            await b.WaitInteractiveAsync();
            await Expect(page.Locator("#nav-alerts-badge")).ToHaveTextAsync("2");
            await page.GetByRole(AriaRole.Link, new() { Name = "Alerts" }).First.ClickAsync();
            await Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex($"/p/{projectId}/alerts$"));
            await b.WaitInteractiveAsync();

            // Eight refused or flagged calls became two alerts: one per attack, each counting its occurrences.
            var rows = page.Locator("#alerts-grid tbody tr");
            await Expect(rows).ToHaveCountAsync(2);
            var injectionRow = rows.Filter(new() { HasText = "SQL injection attempt blocked" });
            await Expect(injectionRow).ToContainTextAsync("3×");
            await Expect(rows.Filter(new() { HasText = "Rate limit exceeded" })).ToContainTextAsync("3×");
            await Expect(page.Locator("#count-open")).ToHaveTextAsync("2");
            await b.ScreenshotAsync("alerts-queue");

            await injectionRow.Locator("a.alert-link").ClickAsync();
            await b.WaitInteractiveAsync();
            await Expect(page.Locator("#alert-status")).ToHaveTextAsync("open");
            var evidence = page.Locator("#alert-evidence");
            await Expect(evidence).ToContainTextAsync("tautology");
            await Expect(evidence).ToContainTextAsync(Injection);
            await Expect(evidence).ToContainTextAsync("sqlmap/1.7");
            Assert.Equal(0, await page.Locator("#alert-evidence script").CountAsync());

            await page.Locator("#acknowledge").ClickAsync();
            await Expect(page.Locator("#alert-status")).ToHaveTextAsync("acknowledged");
            await Expect(page.Locator("#alert-assignee")).ToHaveTextAsync("sec@bank.test");
            await Expect(page.Locator("#nav-alerts-badge")).ToHaveTextAsync("2"); // acknowledged is still active

            // The timeline: the three audited attempts, linked into the audit log.
            var timeline = page.Locator("#alert-timeline .timeline-event");
            await Expect(timeline).ToHaveCountAsync(3);
            await Expect(timeline.First).ToContainTextAsync("gateway.query_denied");
            await Expect(timeline.First.Locator("a.timeline-link")).ToHaveAttributeAsync("href", new System.Text.RegularExpressions.Regex($"p/{projectId}/audit\\?actor={attacker.Key.Id}"));
            await b.DismissNotificationsAsync();
            await b.ScreenshotAsync("alert-detail");

            // Containment from the alert, confirmed.
            await page.Locator("#revoke-key").ClickAsync();
            await b.ConfirmAsync("Revoke");
            await Expect(page.Locator("#key-revoked")).ToContainTextAsync("is revoked");

            // Resolving needs a note.
            await page.Locator("#resolve").ClickAsync();
            await Expect(page.Locator("#triage-error")).ToContainTextAsync("resolution note is required");
            await page.Locator("#triage-note").FillAsync("Partner key leaked to a scanner; revoked and partner informed.");
            await page.Locator("#resolve").ClickAsync();
            await Expect(page.Locator("#alert-status")).ToHaveTextAsync("resolved");
            await Expect(page.Locator("#alert-resolution")).ToContainTextAsync("Partner key leaked");
            await Expect(page.Locator("#alert-history")).ToContainTextAsync("contained: revoke key");
            await Expect(page.Locator("#nav-alerts-badge")).ToHaveTextAsync("1");
        });

        // The key is dead, and the trail holds every step in order.
        Assert.Equal(HttpStatusCode.Unauthorized, await CallAsync("Lisbon"));
        await using var ctx = db.NewContext();
        var trail = await ctx.AuditEvents.Where(e => e.ProjectId == projectId && e.Seq > 0).OrderBy(e => e.Seq)
            .Select(e => new { e.EventType, e.ActorId }).ToListAsync();
        var steps = trail.Select(e => e.EventType).Where(t => t.StartsWith("alert.") || t is "api_key.revoked" or "auth.api_key_rejected").ToList();
        Assert.Equal(["alert.acknowledged", "api_key.revoked", "alert.contained", "alert.resolved", "auth.api_key_rejected"], steps);
        Assert.All(trail.Where(e => e.EventType.StartsWith("alert.") || e.EventType == "api_key.revoked"), e => Assert.Equal(analyst.ToString(), e.ActorId));
        var rejectedAlert = await ctx.SecurityAlerts.SingleAsync(a => a.ProjectId == projectId && a.Rule == "revoked_key_use");
        Assert.Equal(AlertSeverities.Critical, rejectedAlert.Severity);
    }
}
