using System.Net;
using Portal.Domain.Security.ApiKeys;
using Portal.Domain.Suite;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Security;

public class KeysPageTests
{
    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Admin_sees_the_keys_page_and_a_user_is_refused(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db);
        var (admin, projectId) = await app.SetupAsync();
        await app.InstallSuiteAsync(projectId, admin.Id, Tier.EnterprisePlus, Modules.AccessControl);
        await app.AddMemberAsync(projectId, "analyst@bank.test", Roles.User, admin.Id);

        var adminClient = await app.SignedInClientAsync(admin.Email!);
        var empty = await adminClient.GetAsync($"/p/{projectId}/keys");
        Assert.True(empty.StatusCode == HttpStatusCode.OK, app.Logs.Errors);
        var html = await empty.Content.ReadAsStringAsync();
        Assert.Contains("id=\"keys-empty\"", html);
        Assert.Contains("API keys", html);
        Assert.Contains("id=\"create-key\"", html);
        Assert.Contains($"href=\"p/{projectId}/keys\"", html); // the navigation entry

        var issued = await app.Get<ApiKeyService>().CreateAsync(projectId, new CreateApiKeyRequest("reporting agent", Roles.User), admin.Id);
        var listed = await (await adminClient.GetAsync($"/p/{projectId}/keys")).Content.ReadAsStringAsync();
        Assert.Contains("reporting agent", listed);
        Assert.DoesNotContain("id=\"keys-empty\"", listed);
        Assert.Contains(issued.Key.Prefix, listed);
        Assert.DoesNotContain(issued.Secret[13..], listed);

        var userClient = await app.SignedInClientAsync("analyst@bank.test");
        var denied = await userClient.GetAsync($"/p/{projectId}/keys");
        var deniedHtml = await denied.Content.ReadAsStringAsync();
        Assert.DoesNotContain("id=\"create-key\"", deniedHtml);
        Assert.DoesNotContain("reporting agent", deniedHtml);
        Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode); // the role lacks keys.manage: 403 with the page's explanation
        Assert.Contains("have access to this page", deniedHtml);
        Assert.Empty(app.Logs.Errors);
    }
}
