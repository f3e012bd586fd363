using System.Net;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Components.Endpoints;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.StaticAssets;
using Portal.Domain.Tenancy;
using Portal.Security;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Security;

/// <summary>
/// "Every page and endpoint declares its permission": walks every route the portal maps and proves that it denies an
/// anonymous visitor, a member of another project and a member whose role lacks the permission.
/// </summary>
public class RouteWalkTests(RouteWalkFixture fixture) : IClassFixture<RouteWalkFixture>
{
    /// <summary>
    /// The gateway API: anonymous to ASP.NET because callers authenticate with an API key inside the pipeline, not
    /// with a portal cookie. Without a key each answers 401, which the walk checks.
    /// </summary>
    private static readonly string[] KeyAuthenticatedRoutes = ["/api/v1/queries", "/api/v1/queries/{id}/execute", "/api/v1/suggestions", "/api/v1/suggestions/{id}"];

    /// <summary>
    /// The only routes open without signing in (besides static assets). A new anonymous route fails the walk until
    /// it is added here on purpose.
    /// </summary>
    private static readonly string[] AnonymousRoutes =
    [
        "/Account/Login", "/Account/Lockout", "/Account/LoginWith2fa", "/Account/LoginWithRecoveryCode",
        "/Account/AccessDenied", "/Account/InvalidUser", "/setup", "/not-found", "/Error",
        "/health/live", "/health/ready", "/metrics", "/openapi/{documentName}.json",
        .. KeyAuthenticatedRoutes,
    ];

    private const string AccessProblemText = "have access to this page";

    private static bool IsStaticAsset(Endpoint e) => e.Metadata.GetMetadata<StaticAssetDescriptor>() is not null;
    private static bool IsPage(Endpoint e) => e.Metadata.GetMetadata<ComponentTypeMetadata>() is not null;
    private static bool IsProjectRoute(RouteEndpoint e) => e.RoutePattern.GetParameter("ProjectId") is not null;
    private static bool HasEntityId(RouteEndpoint e) =>
        e.RoutePattern.Parameters.Any(p => !p.Name.Equals("ProjectId", StringComparison.OrdinalIgnoreCase) && p.ParameterPolicies.Any(x => x.Content == "guid"));
    private static string Route(RouteEndpoint e) => "/" + e.RoutePattern.RawText!.TrimStart('/');

    private static IReadOnlyList<string> Methods(Endpoint e) =>
        e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods.ToList() is { Count: > 0 } m ? m : ["GET"];

    private static string? RequiredPermission(Endpoint e) => e.Metadata.GetMetadata<RequirePermissionAttribute>()?.Permission;

    private static string? Heading(string html) =>
        Regex.Match(html, "<h1[^>]*>(.*?)</h1>", RegexOptions.Singleline) is { Success: true } m ? Regex.Replace(m.Groups[1].Value, "<[^>]+>", "").Trim() : null;

    /// <summary>The cookie handler's challenge: a redirect to the sign-in page carrying the address to return to.</summary>
    private static bool RedirectsToLogin(HttpResponseMessage r) =>
        r.StatusCode == HttpStatusCode.Redirect && r.Headers.Location is { } l
        && (l.IsAbsoluteUri ? l.AbsolutePath : l.OriginalString.Split('?')[0]) == "/Account/Login"
        && l.OriginalString.Contains("ReturnUrl=", StringComparison.OrdinalIgnoreCase);

    private static async Task<HttpResponseMessage> SendAsync(HttpClient client, string method, string url)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), url);
        if (method == "POST") request.Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["probe"] = "1" });
        return await client.SendAsync(request);
    }

    [Fact]
    public void Every_routed_component_declares_how_it_is_authorized()
    {
        var pages = typeof(Program).Assembly.GetTypes()
            .Where(t => typeof(IComponent).IsAssignableFrom(t) && t.GetCustomAttributes(typeof(RouteAttribute), false).Length > 0).ToList();
        Assert.NotEmpty(pages);
        var undeclared = pages.Where(t => !t.GetCustomAttributes(true).Any(a => a is IAuthorizeData or IAllowAnonymous)).Select(t => t.FullName).ToList();
        Assert.True(undeclared.Count == 0, $"Pages relying on the fallback policy; add [RequirePermission], [Authorize] or [AllowAnonymous]: {string.Join(", ", undeclared)}");

        var projectPagesWithoutPermission = pages
            .Where(t => t.GetCustomAttributes(typeof(RouteAttribute), false).Cast<RouteAttribute>().Any(r => r.Template.Contains("{ProjectId", StringComparison.OrdinalIgnoreCase)))
            .Where(t => t.GetCustomAttributes(typeof(RequirePermissionAttribute), true).Length == 0).Select(t => t.FullName).ToList();
        Assert.True(projectPagesWithoutPermission.Count == 0, $"Project pages must declare a permission: {string.Join(", ", projectPagesWithoutPermission)}");
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task The_anonymous_routes_are_exactly_the_allow_list(string provider)
    {
        var w = await fixture.WorldAsync(provider);
        var open = w.Endpoints.Where(e => !IsStaticAsset(e) && e.Metadata.GetMetadata<IAllowAnonymous>() is not null).Select(Route).Distinct().Order().ToList();
        Assert.Equal(AnonymousRoutes.Order(), open);
        var assets = w.Endpoints.Where(IsStaticAsset).ToList();
        Assert.NotEmpty(assets);
        Assert.All(assets, e => Assert.Matches(@"\.[A-Za-z0-9]+$", e.RoutePattern.RawText!));

        var problems = new List<string>();
        foreach (var e in w.Endpoints.Where(e => !IsStaticAsset(e)))
        {
            foreach (var method in Methods(e).Where(m => m is "GET" or "POST"))
            {
                var url = RouteWalkWorld.UrlFor(e, w.ProjectId);
                var r = await SendAsync(w.Anonymous, method, url);
                var denied = RedirectsToLogin(r) || r.StatusCode == HttpStatusCode.Unauthorized;
                if ((int)r.StatusCode >= 500) problems.Add($"{method} {url}: {(int)r.StatusCode}");
                else if (KeyAuthenticatedRoutes.Contains(Route(e)))
                {
                    if (r.StatusCode != HttpStatusCode.Unauthorized) problems.Add($"{method} {url}: API route without a key answered {(int)r.StatusCode}, not 401");
                }
                else if (AnonymousRoutes.Contains(Route(e)))
                {
                    if (method == "GET" && denied) problems.Add($"{method} {url}: allow-listed but denied ({(int)r.StatusCode})");
                }
                else if (url.StartsWith("/api/") ? r.StatusCode != HttpStatusCode.Unauthorized : IsPage(e) ? !RedirectsToLogin(r) : !denied)
                    problems.Add($"{method} {url}: expected sign-in, got {(int)r.StatusCode} {r.Headers.Location}");
            }
        }
        foreach (var asset in w.Endpoints.Where(IsStaticAsset).Take(5))
        {
            var r = await w.Anonymous.GetAsync(RouteWalkWorld.UrlFor(asset, w.ProjectId));
            if (r.StatusCode != HttpStatusCode.OK) problems.Add($"asset {asset.RoutePattern.RawText}: {(int)r.StatusCode}");
        }
        Assert.True(problems.Count == 0, string.Join("\n", problems) + "\n" + w.App.Logs.Errors);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task A_member_of_another_project_gets_not_found_on_every_project_route(string provider)
    {
        var w = await fixture.WorldAsync(provider);
        var projectRoutes = w.Endpoints.Where(IsProjectRoute).ToList();
        Assert.NotEmpty(projectRoutes);
        var problems = new List<string>();
        foreach (var e in projectRoutes)
        {
            var url = RouteWalkWorld.UrlFor(e, w.ProjectId);
            var own = await w.Admin.GetAsync(url);
            var heading = Heading(await own.Content.ReadAsStringAsync());
            // Downloads (audit exports) have no heading; their content is recognized by the attachment header instead.
            var page = IsPage(e);
            // An endpoint addressing one entity (e.g. a report id) cannot know a real id here: its own problem-details 404
            // for the random id proves the admin reached it past authorization.
            var reachedEntityEndpoint = !page && HasEntityId(e) && own.StatusCode == HttpStatusCode.NotFound
                && own.Content.Headers.ContentType?.MediaType == "application/problem+json";
            if ((own.StatusCode != HttpStatusCode.OK && !reachedEntityEndpoint) || (page && heading is null)) { problems.Add($"admin GET {url}: {(int)own.StatusCode}, heading {heading}"); continue; }

            foreach (var method in Methods(e).Where(m => m is "GET" or "POST"))
            {
                var r = await SendAsync(w.Outsider, method, url);
                var body = await r.Content.ReadAsStringAsync();
                if (r.StatusCode != HttpStatusCode.NotFound) problems.Add($"outsider {method} {url}: {(int)r.StatusCode}");
                if (page && Heading(body) == heading) problems.Add($"outsider {method} {url}: the page rendered ({heading})");
                if (!page && r.Content.Headers.ContentDisposition is not null) problems.Add($"outsider {method} {url}: the download was sent");
                // A project that does not exist answers the same way as one the user may not see.
                var missing = await SendAsync(w.Outsider, method, RouteWalkWorld.UrlFor(e, Guid.NewGuid()));
                if (missing.StatusCode != HttpStatusCode.NotFound) problems.Add($"outsider {method} unknown project {e.RoutePattern.RawText}: {(int)missing.StatusCode}");
            }
        }
        Assert.True(problems.Count == 0, string.Join("\n", problems) + "\n" + w.App.Logs.Errors);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task A_member_whose_role_lacks_the_permission_is_forbidden_and_sees_no_content(string provider)
    {
        var w = await fixture.WorldAsync(provider);
        var problems = new List<string>();
        var checkedDenials = 0;
        foreach (var e in w.Endpoints.Where(e => !IsStaticAsset(e) && e.Metadata.GetMetadata<IAllowAnonymous>() is null))
        {
            var policies = e.Metadata.GetOrderedMetadata<IAuthorizeData>().Select(a => a.Policy).ToList();
            var permission = RequiredPermission(e);
            bool allowed;
            if (permission is not null) allowed = Permissions.RoleHas(Roles.User, permission);
            else if (policies.Contains(OrgAdmin.Policy)) allowed = false;
            else continue; // signed-in only: nothing role-specific to prove
            if (!IsPage(e)) { problems.Add($"{Route(e)}: permission checks on non-page endpoints need a walk case"); continue; }

            var url = RouteWalkWorld.UrlFor(e, w.ProjectId);
            var admin = await w.Admin.GetAsync(url);
            var heading = Heading(await admin.Content.ReadAsStringAsync());
            var r = await w.User.GetAsync(url);
            var body = await r.Content.ReadAsStringAsync();
            if (allowed)
            {
                if (r.StatusCode != HttpStatusCode.OK || Heading(body) != heading) problems.Add($"user GET {url}: allowed by role but {(int)r.StatusCode} {Heading(body)}");
                continue;
            }
            checkedDenials++;
            if (r.StatusCode != HttpStatusCode.Forbidden) problems.Add($"user GET {url}: expected 403, got {(int)r.StatusCode} {r.Headers.Location}");
            if (heading is null || Heading(body) == heading) problems.Add($"user GET {url}: page content rendered ({heading})");
            if (!body.Replace("&#x27;", "'").Contains(AccessProblemText)) problems.Add($"user GET {url}: no explanation shown");
            var post = await SendAsync(w.User, "POST", url);
            if (post.StatusCode != HttpStatusCode.Forbidden) problems.Add($"user POST {url}: expected 403, got {(int)post.StatusCode}");
        }
        Assert.True(checkedDenials >= 2, "expected at least the members and enterprise pages to be denied to role 'user'");
        Assert.True(problems.Count == 0, string.Join("\n", problems) + "\n" + w.App.Logs.Errors);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Sign_out_posts_need_an_antiforgery_token(string provider)
    {
        var w = await fixture.WorldAsync(provider);
        var email = $"csrf-{Guid.NewGuid():N}@bank.test";
        await w.App.AddMemberAsync(w.ProjectId, email, Roles.User, Guid.Empty);
        var client = await w.App.SignedInClientAsync(email);
        var stamp = await w.App.WithScopeAsync(async sp => await StampAsync(sp, email));

        foreach (var path in new[] { "/Account/Logout", "/Account/LogoutEverywhere" })
        {
            var r = await client.PostAsync(path, new FormUrlEncodedContent(new Dictionary<string, string> { ["returnUrl"] = "/" }));
            Assert.True(r.StatusCode == HttpStatusCode.BadRequest, $"{path}: {(int)r.StatusCode}");
            var empty = await client.PostAsync(path, null);
            Assert.True((int)empty.StatusCode is >= 400 and < 500, $"{path} without a body: {(int)empty.StatusCode}");
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/projects")).StatusCode);
        }
        Assert.Equal(stamp, await w.App.WithScopeAsync(async sp => await StampAsync(sp, email)));

        // With the page's token the same post works.
        var token = await Forms.AntiforgeryTokenAsync(client, "/Account/SignOut");
        var ok = await client.PostAsync("/Account/Logout", new FormUrlEncodedContent(new Dictionary<string, string> { ["__RequestVerificationToken"] = token }));
        Assert.Equal(HttpStatusCode.Redirect, ok.StatusCode);
        Assert.True(RedirectsToLogin(await client.GetAsync("/projects")));
    }

    private static async Task<string?> StampAsync(IServiceProvider sp, string email)
    {
        var users = (UserManager<PortalUser>)sp.GetService(typeof(UserManager<PortalUser>))!;
        return (await users.FindByEmailAsync(email))!.SecurityStamp;
    }
}
