using System.Net;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Jobs;

public class JobsPageTests
{
    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Jobs_page_is_for_organization_admins_only(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db);
        var (admin, projectId) = await app.SetupAsync();
        await app.AddMemberAsync(projectId, "pa@bank.test", Roles.Admin, admin.Id);

        var anonymous = await app.Client().GetAsync("/admin/jobs");
        Assert.Equal(HttpStatusCode.Redirect, anonymous.StatusCode);
        Assert.StartsWith("/Account/Login", anonymous.Headers.Location?.PathAndQuery ?? anonymous.Headers.Location?.OriginalString);

        // A project admin is not an organization admin.
        var member = await (await app.SignedInClientAsync("pa@bank.test")).GetAsync("/admin/jobs");
        Assert.True(member.StatusCode is HttpStatusCode.Forbidden or HttpStatusCode.Redirect, $"{(int)member.StatusCode}");
        if (member.StatusCode == HttpStatusCode.Redirect)
            Assert.Contains("/Account/AccessDenied", member.Headers.Location?.OriginalString);

        var page = await (await app.SignedInClientAsync(admin.Email!)).GetAsync("/admin/jobs");
        var html = await page.Content.ReadAsStringAsync();
        Assert.True(page.StatusCode == HttpStatusCode.OK, $"{(int)page.StatusCode}\n{app.Logs.Errors}");
        Assert.Contains("Background jobs", html);
        Assert.Contains("housekeeping", html);
        Assert.Contains("Every hour, on the hour", html);
        Assert.Contains("0 0 * * * ?", html);
        // The test portal does not run jobs (Jobs:RunInPortal=false) and no worker is up.
        Assert.Contains("No scheduler is running jobs right now", html);
        Assert.True(string.IsNullOrEmpty(app.Logs.Errors), app.Logs.Errors);
    }
}
