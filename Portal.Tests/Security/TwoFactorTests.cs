using System.Net;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Security;

/// <summary>Optional TOTP two-factor authentication, enabled and used through the real account pages.</summary>
public class TwoFactorTests
{
    private static async Task<string> PageAsync(HttpClient client, string page) => await client.GetStringAsync(page);

    /// <summary>RFC 6238 code (SHA-1, 30 s, 6 digits) from a base32 key, as an authenticator app computes it.</summary>
    private static string Totp(string base32Key, DateTimeOffset at)
    {
        var key = Base32(base32Key);
        var counter = BitConverter.GetBytes(at.ToUnixTimeSeconds() / 30);
        if (BitConverter.IsLittleEndian) Array.Reverse(counter);
        var hash = HMACSHA1.HashData(key, counter);
        var offset = hash[^1] & 0x0f;
        var binary = ((hash[offset] & 0x7f) << 24) | (hash[offset + 1] << 16) | (hash[offset + 2] << 8) | hash[offset + 3];
        return (binary % 1_000_000).ToString("D6");
    }

    private static byte[] Base32(string s)
    {
        const string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        s = s.Replace(" ", "").TrimEnd('=').ToUpperInvariant();
        var bytes = new List<byte>();
        int buffer = 0, bits = 0;
        foreach (var c in s)
        {
            buffer = (buffer << 5) | alphabet.IndexOf(c);
            bits += 5;
            if (bits >= 8) { bytes.Add((byte)(buffer >> (bits - 8))); bits -= 8; }
        }
        return bytes.ToArray();
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task An_account_with_an_authenticator_needs_its_code_to_sign_in(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db);
        var (admin, _) = await app.SetupAsync();
        var client = await app.SignedInClientAsync(admin.Email!);

        var enablePage = await PageAsync(client, "/Account/Manage/EnableAuthenticator");
        var sharedKey = WebUtility.HtmlDecode(Regex.Match(enablePage, "<kbd>([^<]+)</kbd>").Groups[1].Value);
        Assert.False(string.IsNullOrWhiteSpace(sharedKey), "the page shows no authenticator key");

        var wrong = await client.PostAsync("/Account/Manage/EnableAuthenticator", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["__RequestVerificationToken"] = Forms.AntiforgeryToken(enablePage), ["_handler"] = "send-code", ["Input.Code"] = "000000",
        }));
        Assert.Contains("invalid", (await wrong.Content.ReadAsStringAsync()).ToLowerInvariant());

        enablePage = await PageAsync(client, "/Account/Manage/EnableAuthenticator");
        var enabled = await client.PostAsync("/Account/Manage/EnableAuthenticator", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["__RequestVerificationToken"] = Forms.AntiforgeryToken(enablePage), ["_handler"] = "send-code", ["Input.Code"] = Totp(sharedKey, DateTimeOffset.UtcNow),
        }));
        Assert.True(enabled.StatusCode is HttpStatusCode.Redirect or HttpStatusCode.OK, app.Logs.Errors);
        await using (var ctx = db.NewContext())
            Assert.True(ctx.Users.Single(u => u.Id == admin.Id).TwoFactorEnabled);

        // A fresh browser: the password alone leads to the second step, not into the portal.
        var fresh = app.Client();
        var loginPage = await PageAsync(fresh, "/Account/Login");
        var step1 = await fresh.PostAsync("/Account/Login", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["__RequestVerificationToken"] = Forms.AntiforgeryToken(loginPage), ["_handler"] = "login", ["Input.Email"] = admin.Email!, ["Input.Password"] = TestUsers.Password,
        }));
        Assert.Equal(HttpStatusCode.Redirect, step1.StatusCode);
        Assert.Contains("LoginWith2fa", step1.Headers.Location!.OriginalString);
        Assert.NotEqual(HttpStatusCode.OK, (await fresh.GetAsync("/projects")).StatusCode);

        var location = step1.Headers.Location;
        var twoFactorPath = location.IsAbsoluteUri ? location.PathAndQuery : "/" + location.OriginalString.TrimStart('/');
        var codePage = await PageAsync(fresh, twoFactorPath);
        var badCode = await fresh.PostAsync(twoFactorPath, new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["__RequestVerificationToken"] = Forms.AntiforgeryToken(codePage), ["_handler"] = "login-with-2fa", ["Input.TwoFactorCode"] = "123456",
        }));
        Assert.NotEqual(HttpStatusCode.OK, (await fresh.GetAsync("/projects")).StatusCode);
        Assert.Contains("invalid", (await badCode.Content.ReadAsStringAsync()).ToLowerInvariant());

        codePage = await PageAsync(fresh, twoFactorPath);
        var good = await fresh.PostAsync(twoFactorPath, new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["__RequestVerificationToken"] = Forms.AntiforgeryToken(codePage), ["_handler"] = "login-with-2fa", ["Input.TwoFactorCode"] = Totp(sharedKey, DateTimeOffset.UtcNow),
        }));
        Assert.Equal(HttpStatusCode.Redirect, good.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await fresh.GetAsync("/projects")).StatusCode);
    }
}
