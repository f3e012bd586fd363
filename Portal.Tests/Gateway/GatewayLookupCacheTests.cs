using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Portal.Domain.Access;
using Portal.Domain.Gateway;
using Portal.Domain.Gateway.Catalog;
using Portal.Domain.Persistence;
using Portal.Domain.Security.ApiKeys;
using Portal.Domain.Suite;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Gateway;

/// <summary>
/// The gateway caches its lookups for a second; a change made through the services must still apply to the very
/// next call (a stale permission or mask would be a security bug), and the cache must never outlive its lifetime.
/// </summary>
public class GatewayLookupCacheTests
{
    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Revoked_permissions_new_masks_disabled_modules_and_archived_queries_apply_to_the_very_next_call(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db);
        var (admin, projectId) = await app.SetupAsync();
        await app.InstallSuiteAsync(projectId, admin.Id, Tier.EnterprisePlus, Modules.AccessControl);
        var demo = await app.Get<DemoCatalog>().SeedAsync(projectId, admin.Id, app.Get<DatabaseOptions>().DataDirectory) ?? throw new InvalidOperationException("demo not seeded");
        var key = (await app.Get<ApiKeyService>().CreateAsync(projectId, new CreateApiKeyRequest("cache agent", Roles.User), admin.Id)).Secret;
        var lookup = demo.Queries[DemoCatalog.CustomerLookup];
        var client = app.Client();
        async Task<HttpResponseMessage> Run()
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/v1/queries/{lookup}/execute") { Content = JsonContent.Create(new { parameters = new { customer_id = 7 } }) };
            request.Headers.Authorization = new("Bearer", key);
            return await client.SendAsync(request);
        }
        async Task<JsonElement> Ok()
        {
            var r = await Run();
            var body = await r.Content.ReadAsStringAsync();
            Assert.True(r.StatusCode == HttpStatusCode.OK, body);
            return JsonDocument.Parse(body).RootElement;
        }
        async Task Denied(HttpStatusCode expected)
        {
            var r = await Run();
            Assert.True(r.StatusCode == expected, $"expected {(int)expected}, got {(int)r.StatusCode}: {await r.Content.ReadAsStringAsync()}");
        }
        static string Cell(JsonElement body, string column)
        {
            var names = body.GetProperty("columns").EnumerateArray().Select(c => c.GetProperty("name").GetString()).ToList();
            return body.GetProperty("rows")[0][names.IndexOf(column)].ToString();
        }

        // Warm every cached lookup (module, query, permission, masks, engine), twice to be sure the second is a hit.
        await Ok();
        var before = await Ok();
        var city = Cell(before, "city");
        Assert.DoesNotContain('*', city);

        // Revoking the role's grant refuses the next call, and granting it back allows the next one.
        var permissions = app.Get<QueryPermissionService>();
        await permissions.SetAsync(projectId, lookup, new QueryGrant(PrincipalTypes.Role, Roles.User, false, false, false), admin.Id);
        await Denied(HttpStatusCode.Forbidden);
        await permissions.SetAsync(projectId, lookup, new QueryGrant(PrincipalTypes.Role, Roles.User, true, true, false), admin.Id);
        await Ok();

        // A new mask hides the column on the next call; deleting it shows the value again.
        var mask = await app.Get<ColumnMaskService>().CreateAsync(projectId, new ColumnMaskRequest(demo.DatasourceId, "customers", "city", MaskType.Redact), admin.Id);
        var masked = await Ok();
        Assert.NotEqual(city, Cell(masked, "city"));
        await app.Get<ColumnMaskService>().DeleteAsync(projectId, mask.Id, admin.Id);
        Assert.Equal(city, Cell(await Ok(), "city"));

        // Switching the module off refuses the next call.
        await app.Get<SuiteService>().SetModuleAsync(projectId, Modules.AccessControl, false, admin.Id);
        await Denied(HttpStatusCode.Forbidden);
        await app.Get<SuiteService>().SetModuleAsync(projectId, Modules.AccessControl, true, admin.Id);
        await Ok();

        // An archived query is gone for the next call.
        await app.Get<ApprovedQueryService>().ArchiveAsync(projectId, lookup, admin.Id);
        await Denied(HttpStatusCode.NotFound);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task A_revoked_or_rotated_key_is_refused_by_the_gateway_on_the_very_next_call(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db);
        var (admin, projectId) = await app.SetupAsync();
        await app.InstallSuiteAsync(projectId, admin.Id, Tier.EnterprisePlus, Modules.AccessControl);
        var demo = await app.Get<DemoCatalog>().SeedAsync(projectId, admin.Id, app.Get<DatabaseOptions>().DataDirectory) ?? throw new InvalidOperationException("demo not seeded");
        var keys = app.Get<ApiKeyService>();
        var lookup = demo.Queries[DemoCatalog.CustomerLookup];
        var client = app.Client();
        async Task<HttpStatusCode> Run(string key)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/v1/queries/{lookup}/execute") { Content = JsonContent.Create(new { parameters = new { customer_id = 7 } }) };
            request.Headers.Authorization = new("Bearer", key);
            return (await client.SendAsync(request)).StatusCode;
        }

        var revoked = await keys.CreateAsync(projectId, new CreateApiKeyRequest("to revoke", Roles.User), admin.Id);
        Assert.Equal(HttpStatusCode.OK, await Run(revoked.Secret));
        Assert.Equal(HttpStatusCode.OK, await Run(revoked.Secret));
        await keys.RevokeAsync(projectId, revoked.Key.Id, "leaked in a log", admin.Id);
        Assert.Equal(HttpStatusCode.Unauthorized, await Run(revoked.Secret));

        var rotated = await keys.CreateAsync(projectId, new CreateApiKeyRequest("to rotate", Roles.User), admin.Id);
        Assert.Equal(HttpStatusCode.OK, await Run(rotated.Secret));
        Assert.Equal(HttpStatusCode.OK, await Run(rotated.Secret));
        var replacement = await keys.RotateAsync(projectId, rotated.Key.Id, TimeSpan.Zero, admin.Id);
        Assert.Equal(HttpStatusCode.Unauthorized, await Run(rotated.Secret));
        Assert.Equal(HttpStatusCode.OK, await Run(replacement.Secret));
    }

    [Fact]
    public async Task Entries_expire_after_their_lifetime_and_a_read_overtaken_by_a_change_is_never_served()
    {
        var clock = new ManualClock();
        var cache = new GatewayLookupCache(clock);
        var project = Guid.NewGuid();
        var other = Guid.NewGuid();
        var loads = 0;
        Task<int> Load() => Task.FromResult(++loads);

        Assert.Equal(1, await cache.GetOrLoadAsync(project, "k", Load));
        Assert.Equal(1, await cache.GetOrLoadAsync(project, "k", Load));
        clock.Advance(GatewayLookupCache.Lifetime);
        Assert.Equal(2, await cache.GetOrLoadAsync(project, "k", Load));

        // Another project's change does not touch this project's entries; this project's change does.
        cache.Invalidate(other);
        Assert.Equal(2, await cache.GetOrLoadAsync(project, "k", Load));
        cache.Invalidate(project);
        Assert.Equal(3, await cache.GetOrLoadAsync(project, "k", Load));

        // A lookup that read before a change committed stores a value no later caller may use.
        var release = new TaskCompletionSource();
        var slow = cache.GetOrLoadAsync(project, "slow", async () => { await release.Task; return "old"; });
        cache.Invalidate(project);
        release.SetResult();
        Assert.Equal("old", await slow);
        Assert.Equal("new", await cache.GetOrLoadAsync(project, "slow", () => Task.FromResult("new")));

        // A failed lookup is not remembered.
        await Assert.ThrowsAsync<InvalidOperationException>(() => cache.GetOrLoadAsync<int>(project, "bad", () => throw new InvalidOperationException()));
        Assert.Equal(7, await cache.GetOrLoadAsync(project, "bad", () => Task.FromResult(7)));
    }
}
