using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Portal.Domain;
using Portal.Domain.Gateway.Catalog;
using Portal.Domain.Governance;
using Portal.Domain.Persistence;
using Portal.Domain.Security.ApiKeys;
using Portal.Domain.Suite;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Governance;

/// <summary>POST/GET /api/v1/suggestions over real HTTP with API keys.</summary>
public class SuggestionsApiTests
{
    private static async Task<(PortalApp App, Guid Admin, Guid ProjectId, Guid OtherProjectId, DemoCatalogResult Demo, DemoCatalogResult OtherDemo)> WorldAsync(PortalApp app)
    {
        var (admin, projectId) = await app.SetupAsync();
        await app.InstallSuiteAsync(projectId, admin.Id, Tier.EnterprisePlus, Modules.AccessControl, Modules.Governance);
        var other = await app.Get<ProjectService>().CreateAsync(admin.Id, "Other bank", null);
        await app.InstallSuiteAsync(other.Id, admin.Id, Tier.EnterprisePlus, Modules.AccessControl, Modules.Governance);
        var dir = app.Get<DatabaseOptions>().DataDirectory;
        var demo = await app.Get<DemoCatalog>().SeedAsync(projectId, admin.Id, dir) ?? throw new InvalidOperationException();
        var otherDemo = await app.Get<DemoCatalog>().SeedAsync(other.Id, admin.Id, dir) ?? throw new InvalidOperationException();
        return (app, admin.Id, projectId, other.Id, demo, otherDemo);
    }

    private static async Task<string> KeyAsync(PortalApp app, Guid projectId, Guid admin, string role, params string[] scopes) =>
        (await app.Get<ApiKeyService>().CreateAsync(projectId, new CreateApiKeyRequest($"{role} agent {Guid.NewGuid():N}", role, scopes), admin)).Secret;

    private static async Task<HttpResponseMessage> SendAsync(HttpClient client, HttpMethod method, string url, string? key, string? json = null)
    {
        using var request = new HttpRequestMessage(method, url);
        if (json is not null) request.Content = new StringContent(json, Encoding.UTF8, "application/json");
        if (key is not null) request.Headers.Authorization = new("Bearer", key);
        return await client.SendAsync(request);
    }

    private static async Task<JsonElement> Expect(HttpResponseMessage r, HttpStatusCode status)
    {
        var body = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == status, $"expected {(int)status}, got {(int)r.StatusCode}: {body}");
        return body.Length == 0 ? default : JsonDocument.Parse(body).RootElement;
    }

    private static string Body(Guid datasourceId, string sql, string name = "Orders of one customer", object? parameters = null) => JsonSerializer.Serialize(new
    {
        datasourceId, name, prompt = "Which orders did customer 7 place?", sql, justification = "Agent answers support tickets",
        parameters = parameters ?? new[] { new { name = "customer_id", type = "int" } },
    });

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Agents_suggest_with_a_suggest_scoped_key_and_bad_input_is_refused_with_the_right_status(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db);
        var w = await WorldAsync(app);
        var client = app.Client();
        var key = await KeyAsync(app, w.ProjectId, w.Admin, Roles.Data, ApiKeyRules.SuggestScope);
        var ds = w.Demo.DatasourceId;
        const string sql = "SELECT id, name, email FROM customers WHERE id = @customer_id";

        var created = await Expect(await SendAsync(client, HttpMethod.Post, "/api/v1/suggestions", key, Body(ds, sql)), HttpStatusCode.Created);
        Assert.Equal("pending", created.GetProperty("status").GetString());
        Assert.Contains("pii_column", created.GetProperty("risks").EnumerateArray().Select(r => r.GetProperty("code").GetString()));
        var id = created.GetProperty("id").GetGuid();

        // Identical and pending: 409. Invalid SQL: 400 with the engine's words. DML: 400 with the reason.
        await Expect(await SendAsync(client, HttpMethod.Post, "/api/v1/suggestions", key, Body(ds, sql, "Again")), HttpStatusCode.Conflict);
        var syntax = await Expect(await SendAsync(client, HttpMethod.Post, "/api/v1/suggestions", key, Body(ds, "SELEC id FROM customers WHERE id = @customer_id")), HttpStatusCode.BadRequest);
        Assert.StartsWith("SQLite: ", syntax.GetProperty("errors").GetProperty("sql")[0].GetString());
        var dml = await Expect(await SendAsync(client, HttpMethod.Post, "/api/v1/suggestions", key, Body(ds, "UPDATE orders SET amount = 0 WHERE customer_id = @customer_id")), HttpStatusCode.BadRequest);
        Assert.Contains("read-only", dml.GetProperty("errors").GetProperty("sql")[0].GetString());

        // Wrong types, missing fields, not JSON, oversized.
        var wrongType = await Expect(await SendAsync(client, HttpMethod.Post, "/api/v1/suggestions", key, "{\"datasourceId\": 5, \"sql\": \"SELECT 1\"}"), HttpStatusCode.BadRequest);
        Assert.True(wrongType.GetProperty("errors").TryGetProperty("datasourceId", out _));
        var missing = await Expect(await SendAsync(client, HttpMethod.Post, "/api/v1/suggestions", key, JsonSerializer.Serialize(new { datasourceId = ds, name = "x", sql })), HttpStatusCode.BadRequest);
        Assert.True(missing.GetProperty("errors").TryGetProperty("prompt", out _));
        await Expect(await SendAsync(client, HttpMethod.Post, "/api/v1/suggestions", key, "not json"), HttpStatusCode.BadRequest);
        await Expect(await SendAsync(client, HttpMethod.Post, "/api/v1/suggestions", key, Body(ds, sql + " /* " + new string('x', 300 * 1024) + " */")), HttpStatusCode.RequestEntityTooLarge);

        // Another project's datasource: 404, like a missing one.
        var foreign = await Expect(await SendAsync(client, HttpMethod.Post, "/api/v1/suggestions", key, Body(w.OtherDemo.DatasourceId, sql, "Foreign")), HttpStatusCode.NotFound);
        Assert.True(foreign.GetProperty("errors").TryGetProperty("datasourceId", out _));
        await Expect(await SendAsync(client, HttpMethod.Post, "/api/v1/suggestions", key, Body(Guid.NewGuid(), sql, "Missing")), HttpStatusCode.NotFound);

        // No key: 401. A key without the scope: 403, for submitting and for reading.
        await Expect(await SendAsync(client, HttpMethod.Post, "/api/v1/suggestions", null, Body(ds, sql, "No key")), HttpStatusCode.Unauthorized);
        var unscoped = await KeyAsync(app, w.ProjectId, w.Admin, Roles.Data);
        await Expect(await SendAsync(client, HttpMethod.Post, "/api/v1/suggestions", unscoped, Body(ds, sql, "Unscoped")), HttpStatusCode.Forbidden);
        await Expect(await SendAsync(client, HttpMethod.Get, "/api/v1/suggestions", unscoped), HttpStatusCode.Forbidden);
        // A role that may not suggest cannot be given the scope at all.
        var noScope = await Assert.ThrowsAsync<DomainException>(() => KeyAsync(app, w.ProjectId, w.Admin, Roles.Compliance, ApiKeyRules.SuggestScope));
        Assert.Equal("scopes", noScope.Field);

        // The key lists and reads its own suggestions; another key's, another project's and malformed ids answer 404.
        var list = await Expect(await SendAsync(client, HttpMethod.Get, "/api/v1/suggestions?status=pending", key), HttpStatusCode.OK);
        Assert.Equal(id, list.GetProperty("suggestions").EnumerateArray().Single().GetProperty("id").GetGuid());
        await Expect(await SendAsync(client, HttpMethod.Get, "/api/v1/suggestions?status=bogus", key), HttpStatusCode.BadRequest);
        var one = await Expect(await SendAsync(client, HttpMethod.Get, $"/api/v1/suggestions/{id}", key), HttpStatusCode.OK);
        Assert.Equal(sql, one.GetProperty("sql").GetString());
        var otherKey = await KeyAsync(app, w.ProjectId, w.Admin, Roles.User, ApiKeyRules.SuggestScope);
        await Expect(await SendAsync(client, HttpMethod.Get, $"/api/v1/suggestions/{id}", otherKey), HttpStatusCode.NotFound);
        var foreignKey = await KeyAsync(app, w.OtherProjectId, w.Admin, Roles.Data, ApiKeyRules.SuggestScope);
        await Expect(await SendAsync(client, HttpMethod.Get, $"/api/v1/suggestions/{id}", foreignKey), HttpStatusCode.NotFound);
        await Expect(await SendAsync(client, HttpMethod.Get, "/api/v1/suggestions/not-a-guid", key), HttpStatusCode.NotFound);
        Assert.Equal(0, (await Expect(await SendAsync(client, HttpMethod.Get, "/api/v1/suggestions", foreignKey), HttpStatusCode.OK)).GetProperty("total").GetInt32());
        Assert.Equal("", app.Logs.Errors);
    }
}
