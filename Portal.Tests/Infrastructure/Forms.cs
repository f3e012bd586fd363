using System.Text.RegularExpressions;

namespace Portal.Tests.Infrastructure;

/// <summary>Posting the portal's real forms over HTTP, antiforgery token included.</summary>
public static partial class Forms
{
    [GeneratedRegex("name=\"__RequestVerificationToken\" value=\"([^\"]+)\"")]
    private static partial Regex TokenField();

    /// <summary>The antiforgery token rendered in a page's form; fails the test when the page has none.</summary>
    public static string AntiforgeryToken(string html)
    {
        var token = TokenField().Match(html).Groups[1].Value;
        Assert.False(string.IsNullOrEmpty(token), "the page has no antiforgery token");
        return token;
    }

    public static async Task<string> AntiforgeryTokenAsync(HttpClient client, string page) =>
        AntiforgeryToken(await client.GetStringAsync(page));

    /// <summary>Submits the sign-in form as a browser would.</summary>
    public static async Task<HttpResponseMessage> PostLoginAsync(HttpClient client, string email, string password) =>
        await client.PostAsync("/Account/Login", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["__RequestVerificationToken"] = await AntiforgeryTokenAsync(client, "/Account/Login"), ["_handler"] = "login",
            ["Input.Email"] = email, ["Input.Password"] = password,
        }));
}
