using System.Net;
using Portal.Tests.Infrastructure;

namespace Portal.Tests;

public class SmokeTests
{
    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Portal_starts_applies_scripts_and_reports_ready(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider, migrate: false);
        await using var app = new PortalApp(db);
        var client = app.Client();
        var ready = await client.GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Equal("Healthy", await ready.Content.ReadAsStringAsync());
        var root = await client.GetAsync("/");
        Assert.Equal(HttpStatusCode.Redirect, root.StatusCode);
        Assert.Equal("/setup", root.Headers.Location?.OriginalString);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Signed_in_admin_sees_members_page(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db);
        var (admin, projectId) = await app.SetupAsync();
        var client = await app.SignedInClientAsync(admin.Email!);
        var page = await client.GetAsync($"/p/{projectId}/members");
        Assert.True(page.StatusCode == HttpStatusCode.OK, app.Logs.Errors);
        Assert.Contains("Add member", await page.Content.ReadAsStringAsync());
    }
}
