using System.Net;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.DependencyInjection;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Security;

/// <summary>Signing in and out through the real forms, over HTTP.</summary>
public class SignInTests
{
    private static string? LocationPath(HttpResponseMessage r) =>
        r.Headers.Location is { } l ? "/" + (l.IsAbsoluteUri ? l.AbsolutePath : l.OriginalString.Split('?')[0]).TrimStart('/') : null;

    private static async Task<bool> IsSignedInAsync(HttpClient client) =>
        (await client.GetAsync("/projects")).StatusCode == HttpStatusCode.OK;

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Wrong_passwords_show_an_error_and_five_lock_the_account(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db);
        var (admin, projectId) = await app.SetupAsync();
        await app.AddMemberAsync(projectId, "bob@bank.test", Roles.User, admin.Id);
        var client = app.Client();

        var wrong = await Forms.PostLoginAsync(client, "bob@bank.test", "Wrong-Password-123");
        Assert.Equal(HttpStatusCode.OK, wrong.StatusCode);
        Assert.Contains("The e-mail or password is not correct.", await wrong.Content.ReadAsStringAsync());
        Assert.DoesNotContain(wrong.Headers.TryGetValues("Set-Cookie", out var cookies) ? cookies : [], c => c.StartsWith("portal.auth="));
        Assert.False(await IsSignedInAsync(client));

        // An unknown account answers exactly like a wrong password.
        var unknown = await Forms.PostLoginAsync(client, "nobody@bank.test", "Wrong-Password-123");
        Assert.Contains("The e-mail or password is not correct.", await unknown.Content.ReadAsStringAsync());

        for (var attempt = 2; attempt <= 4; attempt++)
            Assert.Equal(HttpStatusCode.OK, (await Forms.PostLoginAsync(client, "bob@bank.test", $"Wrong-Password-{attempt}")).StatusCode);
        var fifth = await Forms.PostLoginAsync(client, "bob@bank.test", "Wrong-Password-5");
        Assert.Equal(HttpStatusCode.Redirect, fifth.StatusCode);
        Assert.Equal("/Account/Lockout", LocationPath(fifth));

        var right = await Forms.PostLoginAsync(client, "bob@bank.test", TestUsers.Password);
        Assert.Equal("/Account/Lockout", LocationPath(right));
        Assert.False(await IsSignedInAsync(client));
        Assert.False(await IsSignedInAsync(app.Client()));

        // Other accounts are unaffected.
        var adminClient = await app.SignedInClientAsync(admin.Email!);
        Assert.True(await IsSignedInAsync(adminClient));
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Signing_out_everywhere_ends_the_other_sessions(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db)
        {
            // Re-check the security stamp on every request instead of once a minute.
            ConfigureServices = s => s.Configure<SecurityStampValidatorOptions>(o => o.ValidationInterval = TimeSpan.Zero),
        };
        var (admin, _) = await app.SetupAsync();
        var laptop = await app.SignedInClientAsync(admin.Email!);
        var phone = await app.SignedInClientAsync(admin.Email!);
        var bystander = await app.SignedInClientAsync(admin.Email!);
        Assert.True(await IsSignedInAsync(laptop));
        Assert.True(await IsSignedInAsync(phone));

        // Plain sign-out ends only this browser's session.
        var signOut = await bystander.PostAsync("/Account/Logout", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["__RequestVerificationToken"] = await Forms.AntiforgeryTokenAsync(bystander, "/Account/SignOut"),
        }));
        Assert.Equal(HttpStatusCode.Redirect, signOut.StatusCode);
        Assert.False(await IsSignedInAsync(bystander));
        Assert.True(await IsSignedInAsync(phone));

        var everywhere = await laptop.PostAsync("/Account/LogoutEverywhere", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["__RequestVerificationToken"] = await Forms.AntiforgeryTokenAsync(laptop, "/Account/SignOut"),
        }));
        Assert.Equal(HttpStatusCode.Redirect, everywhere.StatusCode);
        Assert.Equal("/Account/Login", LocationPath(everywhere));

        Assert.False(await IsSignedInAsync(laptop));
        Assert.False(await IsSignedInAsync(phone));
        Assert.True(await IsSignedInAsync(await app.SignedInClientAsync(admin.Email!)), "signing in again works");
    }
}
