using System.Net;
using Portal.Domain.Security.Alerts;
using Portal.Domain.Security.Detectors;
using Portal.Domain.Suite;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Security;

public class SecurityPagesTests
{
    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Alert_pages_answer_by_role_and_another_projects_alert_is_not_found(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db);
        var (admin, projectId) = await app.SetupAsync();
        await app.InstallSuiteAsync(projectId, admin.Id, Tier.EnterprisePlus, Modules.Security, Modules.AccessControl);
        var other = await app.Get<ProjectService>().CreateAsync(admin.Id, "Other bank", null);
        await app.InstallSuiteAsync(other.Id, admin.Id, Tier.EnterprisePlus, Modules.Security);
        await app.AddMemberAsync(projectId, "sec@bank.test", Roles.Security, admin.Id);
        await app.AddMemberAsync(projectId, "comp@bank.test", Roles.Compliance, admin.Id);
        await app.AddMemberAsync(projectId, "user@bank.test", Roles.User, admin.Id);
        var now = DateTimeOffset.UtcNow;
        AlertFinding Finding(Guid p, string title) => new(p, AlertTypes.Injection, DetectorRules.InjectionAttempt, AlertSeverities.Critical, "gateway", "ip", "10.0.0.1", "<b>IP</b>",
            null, null, title, "d", new { matched = "<script>alert(1)</script>" }, [], now, now);
        await app.Get<AlertService>().RaiseAsync([Finding(projectId, "<script>alert('mine')</script>")]);
        await app.Get<AlertService>().RaiseAsync([Finding(other.Id, "elsewhere")]);
        var mine = (await app.Get<AlertService>().ListAsync(projectId, new AlertFilter(), 0, 10)).Items.Single().Id;
        var foreign = (await app.Get<AlertService>().ListAsync(other.Id, new AlertFilter(), 0, 10)).Items.Single().Id;

        var security = await app.SignedInClientAsync("sec@bank.test");
        var queue = await security.GetAsync($"/p/{projectId}/alerts");
        Assert.True(queue.StatusCode == HttpStatusCode.OK, app.Logs.Errors);
        var html = await queue.Content.ReadAsStringAsync();
        Assert.Contains("&lt;script&gt;alert(&#x27;mine&#x27;)&lt;/script&gt;", html);
        Assert.DoesNotContain("<script>alert('mine')", html);
        Assert.Contains("id=\"nav-alerts-badge\"", html);
        Assert.Contains("id=\"bulk-acknowledge\"", html);
        var detail = await security.GetAsync($"/p/{projectId}/alerts/{mine}");
        Assert.Equal(HttpStatusCode.OK, detail.StatusCode);
        var detailHtml = await detail.Content.ReadAsStringAsync();
        Assert.Contains("id=\"acknowledge\"", detailHtml);
        Assert.DoesNotContain("<script>alert(1)", detailHtml);
        Assert.Equal(HttpStatusCode.NotFound, (await security.GetAsync($"/p/{projectId}/alerts/{foreign}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await security.GetAsync($"/p/{projectId}/alerts/{Guid.CreateVersion7()}")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await security.GetAsync($"/p/{projectId}/rate-limits")).StatusCode);

        // Compliance reads alerts but cannot act on them or manage limits.
        var compliance = await app.SignedInClientAsync("comp@bank.test");
        var read = await compliance.GetAsync($"/p/{projectId}/alerts/{mine}");
        Assert.Equal(HttpStatusCode.OK, read.StatusCode);
        Assert.DoesNotContain("id=\"acknowledge\"", await read.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.Forbidden, (await compliance.GetAsync($"/p/{projectId}/rate-limits")).StatusCode);

        var user = await app.SignedInClientAsync("user@bank.test");
        Assert.Equal(HttpStatusCode.Forbidden, (await user.GetAsync($"/p/{projectId}/alerts")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await user.GetAsync($"/p/{projectId}/alerts/{mine}")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await user.GetAsync($"/p/{projectId}/rate-limits")).StatusCode);
        Assert.Empty(app.Logs.Errors);
    }
}
