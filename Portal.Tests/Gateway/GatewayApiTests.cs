using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Portal.Domain.Audit;
using Portal.Domain.Gateway;
using Portal.Domain.Gateway.Catalog;
using Portal.Domain.Persistence;
using Portal.Domain.Security.ApiKeys;
using Portal.Domain.Security.RateLimits;
using Portal.Domain.Suite;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Gateway;

/// <summary>The gateway HTTP API end to end: real HTTP, a real portal database and the demo bank datasource.</summary>
public class GatewayApiTests
{
    private sealed record World(PortalApp App, Guid Admin, Guid ProjectId, Guid OtherProjectId, DemoCatalogResult Demo, DemoCatalogResult OtherDemo)
    {
        public HttpClient Client { get; } = App.Client();
        public Guid Query(string name) => Demo.Queries[name];

        public async Task<string> KeyAsync(string role, Guid? projectId = null) =>
            (await App.Get<ApiKeyService>().CreateAsync(projectId ?? ProjectId, new CreateApiKeyRequest($"{role} agent {Guid.NewGuid():N}", role), Admin)).Secret;

        public Task<HttpResponseMessage> ListAsync(string? key) => SendAsync(HttpMethod.Get, "/api/v1/queries", key, null);

        public Task<HttpResponseMessage> ExecuteAsync(string? key, Guid queryId, object? parameters, bool xApiKey = false) =>
            SendAsync(HttpMethod.Post, $"/api/v1/queries/{queryId}/execute", key, JsonContent.Create(new { parameters }), xApiKey);

        public async Task<HttpResponseMessage> SendAsync(HttpMethod method, string url, string? key, HttpContent? content, bool xApiKey = false)
        {
            using var request = new HttpRequestMessage(method, url) { Content = content };
            if (key is not null)
            {
                if (xApiKey) request.Headers.Add("X-Api-Key", key);
                else request.Headers.Authorization = new("Bearer", key);
            }
            return await Client.SendAsync(request);
        }
    }

    private static async Task<World> WorldAsync(PortalApp app)
    {
        var (admin, projectId) = await app.SetupAsync();
        await app.InstallSuiteAsync(projectId, admin.Id, Tier.EnterprisePlus, Modules.AccessControl);
        var other = await app.Get<ProjectService>().CreateAsync(admin.Id, "Other bank", null);
        await app.InstallSuiteAsync(other.Id, admin.Id, Tier.EnterprisePlus, Modules.AccessControl);
        var dataDir = app.Get<DatabaseOptions>().DataDirectory;
        var demo = await app.Get<DemoCatalog>().SeedAsync(projectId, admin.Id, dataDir) ?? throw new InvalidOperationException("demo not seeded");
        var otherDemo = await app.Get<DemoCatalog>().SeedAsync(other.Id, admin.Id, dataDir) ?? throw new InvalidOperationException("demo not seeded");
        return new World(app, admin.Id, projectId, other.Id, demo, otherDemo);
    }

    private static async Task<JsonElement> JsonAsync(HttpResponseMessage r) => JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement;

    private static async Task<JsonElement> ProblemAsync(HttpResponseMessage r, HttpStatusCode expected)
    {
        var body = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == expected, $"expected {(int)expected}, got {(int)r.StatusCode}: {body}");
        Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
        return JsonDocument.Parse(body).RootElement;
    }

    private static Dictionary<string, string> Row(JsonElement body, int index)
    {
        var names = body.GetProperty("columns").EnumerateArray().Select(c => c.GetProperty("name").GetString()!).ToList();
        var row = body.GetProperty("rows")[index].EnumerateArray().ToList();
        return names.Select((n, i) => (n, v: row[i].ValueKind == JsonValueKind.String ? row[i].GetString()! : row[i].GetRawText())).ToDictionary(x => x.n, x => x.v);
    }

    private static async Task<List<AuditEvent>> EventsAsync(PortalApp app, Guid projectId)
    {
        await using var db = await app.Get<IDbContextFactory<PortalDbContext>>().CreateDbContextAsync();
        return await db.AuditEvents.AsNoTracking().Where(e => e.ProjectId == projectId).OrderBy(e => e.Seq).ToListAsync();
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Keys_list_and_run_queries_with_masks_by_role_and_every_call_is_audited(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db);
        var w = await WorldAsync(app);
        var before = (await EventsAsync(app, w.ProjectId)).Count;
        var userKey = await w.KeyAsync(Roles.User);
        var complianceKey = await w.KeyAsync(Roles.Compliance);

        var list = await w.ListAsync(userKey);
        Assert.True(list.StatusCode == HttpStatusCode.OK, await list.Content.ReadAsStringAsync() + app.Logs.Errors);
        var queries = (await JsonAsync(list)).GetProperty("queries").EnumerateArray().ToList();
        var names = queries.Select(q => q.GetProperty("name").GetString()).Order().ToList();
        Assert.Equal(new[] { DemoCatalog.ContactsByCity, DemoCatalog.CustomerLookup, DemoCatalog.OrdersByDate }, names);
        var lookup = queries.Single(q => q.GetProperty("name").GetString() == DemoCatalog.CustomerLookup);
        Assert.Equal(w.Query(DemoCatalog.CustomerLookup), lookup.GetProperty("id").GetGuid());
        var param = lookup.GetProperty("parameters").EnumerateArray().Single();
        Assert.Equal("customer_id", param.GetProperty("name").GetString());

        // A user-role key sees PII masked; a compliance key sees what the masks let compliance see, and no more.
        var asUser = await w.ExecuteAsync(userKey, w.Query(DemoCatalog.CustomerLookup), new { customer_id = 7 });
        Assert.True(asUser.StatusCode == HttpStatusCode.OK, await asUser.Content.ReadAsStringAsync());
        var userBody = await JsonAsync(asUser);
        Assert.Equal(1, userBody.GetProperty("rowCount").GetInt32());
        Assert.False(userBody.GetProperty("truncated").GetBoolean());
        var userEventId = userBody.GetProperty("eventId").GetGuid();
        var columns = userBody.GetProperty("columns").EnumerateArray().ToDictionary(c => c.GetProperty("name").GetString()!);
        Assert.True(columns["ssn"].GetProperty("masked").GetBoolean());
        Assert.Equal("partial", columns["ssn"].GetProperty("mask").GetString());
        Assert.False(columns["name"].GetProperty("masked").GetBoolean());
        var userRow = Row(userBody, 0);
        Assert.Contains('*', userRow["ssn"]);
        Assert.StartsWith("***@", userRow["email"]);
        Assert.Contains('*', userRow["card_number"]);
        Assert.Equal("7", userRow["id"]);

        var asCompliance = await w.ExecuteAsync(complianceKey, w.Query(DemoCatalog.CustomerLookup), new { customer_id = 7 }, xApiKey: true);
        Assert.True(asCompliance.StatusCode == HttpStatusCode.OK, await asCompliance.Content.ReadAsStringAsync());
        var complianceBody = await JsonAsync(asCompliance);
        var complianceRow = Row(complianceBody, 0);
        Assert.DoesNotContain('*', complianceRow["ssn"]);
        Assert.EndsWith(complianceRow["ssn"][^4..], userRow["ssn"]);
        Assert.Contains('@', complianceRow["email"]);
        Assert.DoesNotContain("***", complianceRow["email"]);
        Assert.Contains('*', complianceRow["card_number"]); // the card mask names no role that sees it raw
        var complianceColumns = complianceBody.GetProperty("columns").EnumerateArray().ToDictionary(c => c.GetProperty("name").GetString()!);
        Assert.False(complianceColumns["ssn"].GetProperty("masked").GetBoolean());
        Assert.True(complianceColumns["card_number"].GetProperty("masked").GetBoolean());

        var events = await EventsAsync(app, w.ProjectId);
        var executed = events.Single(e => e.Id == userEventId);
        Assert.Equal(GatewayService.ExecutedEvent, executed.EventType);
        Assert.Equal("api_key", executed.ActorType);
        Assert.Equal(Roles.User, executed.ActorRole);
        Assert.Contains("FROM customers", executed.SqlText);
        Assert.Equal(1, executed.RowsReturned);
        Assert.Contains("customers", executed.TablesAccessed);
        Assert.NotNull(executed.DurationMs);
        using (var details = JsonDocument.Parse(executed.Details!))
        {
            var d = details.RootElement;
            Assert.Equal(w.Query(DemoCatalog.CustomerLookup), d.GetProperty("queryId").GetGuid());
            Assert.Equal(1, d.GetProperty("version").GetInt32());
            Assert.Equal(userKey[4..12], d.GetProperty("keyPrefix").GetString());
            Assert.Equal(7, d.GetProperty("parameters").GetProperty("customer_id").GetInt32());
            Assert.Contains(d.GetProperty("masking").EnumerateArray(), m => m.GetProperty("column").GetString() == "ssn");
        }
        Assert.DoesNotContain(userKey, string.Join("\n", events.Select(e => e.Details)));
        // One event per call: the listing and both executions.
        Assert.Equal(before + 2 + 3, events.Count); // + two key creations
        Assert.Empty(app.Logs.Errors);
        Assert.True((await app.Get<AuditVerifier>().VerifyAsync(w.ProjectId)).Ok);

        var openApi = await w.Client.GetAsync("/openapi/v1.json");
        Assert.Equal(HttpStatusCode.OK, openApi.StatusCode);
        var doc = await JsonAsync(openApi);
        var paths = doc.GetProperty("paths");
        Assert.True(paths.TryGetProperty("/api/v1/queries", out _));
        Assert.True(paths.TryGetProperty("/api/v1/queries/{id}/execute", out _));
        Assert.False(paths.TryGetProperty("/metrics", out _));
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Every_denial_answers_with_problem_details_and_leaves_an_audit_event(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db);
        var w = await WorldAsync(app);
        var keys = app.Get<ApiKeyService>();
        var userKey = await w.KeyAsync(Roles.User);
        var securityKey = await w.KeyAsync(Roles.Security);
        var revoked = await keys.CreateAsync(w.ProjectId, new CreateApiKeyRequest("revoked agent", Roles.User), w.Admin);
        await keys.RevokeAsync(w.ProjectId, revoked.Key.Id, "leaked", w.Admin);
        var expired = await keys.CreateAsync(w.ProjectId, new CreateApiKeyRequest("expired agent", Roles.User), w.Admin);
        await using (var ctx = await app.Get<IDbContextFactory<PortalDbContext>>().CreateDbContextAsync())
            await ctx.ApiKeys.Where(k => k.Id == expired.Key.Id).ExecuteUpdateAsync(s => s.SetProperty(k => k.ExpiresAt, DateTimeOffset.UtcNow.AddMinutes(-1)));
        var orders = w.Query(DemoCatalog.OrdersByDate);
        var scoped = (await keys.CreateAsync(w.ProjectId, new CreateApiKeyRequest("orders only", Roles.User, [$"query:{orders}"]), w.Admin)).Secret;
        var start = (await EventsAsync(app, w.ProjectId)).Count;
        var orgStart = (await EventsAsync(app, AuditEventDraft.OrganizationChain)).Count;
        var lookup = w.Query(DemoCatalog.CustomerLookup);

        // 401: missing, malformed, unknown, revoked, expired.
        await ProblemAsync(await w.ExecuteAsync(null, lookup, new { customer_id = 1 }), HttpStatusCode.Unauthorized);
        await ProblemAsync(await w.ListAsync("not-a-key"), HttpStatusCode.Unauthorized);
        var unknown = await ProblemAsync(await w.ExecuteAsync(userKey[..^4] + "AAAA", lookup, new { customer_id = 1 }), HttpStatusCode.Unauthorized);
        Assert.True(unknown.TryGetProperty("eventId", out _));
        var rev = await ProblemAsync(await w.ExecuteAsync(revoked.Secret, lookup, new { customer_id = 1 }), HttpStatusCode.Unauthorized);
        Assert.Contains("revoked", rev.GetProperty("title").GetString());
        await ProblemAsync(await w.ListAsync(expired.Secret), HttpStatusCode.Unauthorized);

        // 403: the role has no grant on this query.
        var forbidden = await ProblemAsync(await w.ExecuteAsync(securityKey, lookup, new { customer_id = 1 }), HttpStatusCode.Forbidden);
        Assert.Equal("forbidden", forbidden.GetProperty("code").GetString());

        // 403: the role may run the query but the key is scoped to another one, and lists only that one.
        await ProblemAsync(await w.ExecuteAsync(scoped, lookup, new { customer_id = 1 }), HttpStatusCode.Forbidden);
        var scopedList = (await JsonAsync(await w.ListAsync(scoped))).GetProperty("queries").EnumerateArray().Select(q => q.GetProperty("id").GetGuid()).ToList();
        Assert.Equal([orders], scopedList);

        // 404: another project's query answers exactly as an id that exists nowhere.
        var foreign = await ProblemAsync(await w.ExecuteAsync(userKey, w.OtherDemo.Queries[DemoCatalog.CustomerLookup], new { customer_id = 1 }), HttpStatusCode.NotFound);
        var missing = await ProblemAsync(await w.ExecuteAsync(userKey, Guid.NewGuid(), new { customer_id = 1 }), HttpStatusCode.NotFound);
        foreach (var field in new[] { "title", "status", "code", "type" })
            Assert.Equal(missing.GetProperty(field).GetRawText(), foreign.GetProperty(field).GetRawText());
        Assert.Equal(missing.EnumerateObject().Select(p => p.Name).Order(), foreign.EnumerateObject().Select(p => p.Name).Order());

        // 400: every bad parameter is named at once.
        var bad = await ProblemAsync(await w.ExecuteAsync(userKey, w.Query(DemoCatalog.OrdersByDate), new { from_date = "yesterday", status = "lost", colour = "red" }), HttpStatusCode.BadRequest);
        var errors = bad.GetProperty("errors").EnumerateObject().Select(p => p.Name).Order().ToList();
        Assert.Equal(new[] { "parameters.colour", "parameters.from_date", "parameters.status", "parameters.to_date" }, errors);

        // 400: a value shaped like an injection is blocked even though it passes the parameter's format.
        var injection = await ProblemAsync(await w.ExecuteAsync(userKey, w.Query(DemoCatalog.ContactsByCity), new { city = "Paris' OR name LIKE 'A" }), HttpStatusCode.BadRequest);
        Assert.Equal("injection_blocked", injection.GetProperty("code").GetString());
        Assert.True(injection.GetProperty("errors").TryGetProperty("parameters.city", out _));

        // 400: a body that is not JSON.
        var notJson = await ProblemAsync(await w.SendAsync(HttpMethod.Post, $"/api/v1/queries/{lookup}/execute", userKey, new StringContent("{ nope", Encoding.UTF8, "application/json")), HttpStatusCode.BadRequest);
        Assert.True(notJson.GetProperty("errors").TryGetProperty("body", out _));

        // 413: the body limit is 64 KB.
        var huge = new StringContent("{\"parameters\":{\"customer_id\":\"" + new string('1', 70_000) + "\"}}", Encoding.UTF8, "application/json");
        var tooLarge = await ProblemAsync(await w.SendAsync(HttpMethod.Post, $"/api/v1/queries/{lookup}/execute", userKey, huge), HttpStatusCode.RequestEntityTooLarge);
        Assert.True(tooLarge.GetProperty("errors").TryGetProperty("body", out _));

        // 429 with Retry-After once the query's limit is used up. Windows are fixed (aligned to multiples of their
        // length), so a one-minute window let the two calls straddle a minute boundary now and then on a loaded
        // machine and the second call was allowed; an hour makes that a one-in-tens-of-thousands event.
        await app.Get<RateLimitService>().CreateAsync(w.ProjectId, new RateLimitInput(RateLimitScopes.Query, lookup.ToString(), 1, null, 3600), w.Admin);
        Assert.Equal(HttpStatusCode.OK, (await w.ExecuteAsync(userKey, lookup, new { customer_id = 1 })).StatusCode);
        var limited = await w.ExecuteAsync(userKey, lookup, new { customer_id = 1 });
        await ProblemAsync(limited, HttpStatusCode.TooManyRequests);
        Assert.True(limited.Headers.RetryAfter?.Delta is { TotalSeconds: >= 1 and <= 3600 }, limited.Headers.RetryAfter?.ToString());

        // 403 once the access control module is off, for listing and running alike.
        await app.Get<SuiteService>().SetModuleAsync(w.ProjectId, Modules.AccessControl, false, w.Admin);
        var off = await ProblemAsync(await w.ListAsync(userKey), HttpStatusCode.Forbidden);
        Assert.Equal("module_disabled", off.GetProperty("code").GetString());
        await ProblemAsync(await w.ExecuteAsync(userKey, w.Query(DemoCatalog.OrdersByDate), new { from_date = "2024-01-01", to_date = "2024-12-31" }), HttpStatusCode.Forbidden);

        var events = (await EventsAsync(app, w.ProjectId)).Skip(start).ToList();
        var gateway = events.Where(e => e.EventType.StartsWith("gateway.", StringComparison.Ordinal) || e.EventType == GatewayService.KeyRejectedEvent).ToList();
        // revoked + expired (this project's keys), forbidden, scoped forbidden + scoped list, 2x not found, bad params,
        // injection, not JSON, too large, ok, limited, 2x module off.
        Assert.Equal(15, gateway.Count);
        Assert.Equal(2, gateway.Count(e => e.EventType == GatewayService.KeyRejectedEvent));
        Assert.Single(gateway, e => e.EventType == GatewayService.ExecutedEvent);
        var blocked = gateway.Single(e => e.Details!.Contains("injectionBlocked"));
        Assert.Equal("alert", blocked.SecurityLevel);
        Assert.Contains(gateway, e => e.ResourceId == w.OtherDemo.Queries[DemoCatalog.CustomerLookup].ToString() && !e.Success);
        // Missing, malformed and unknown keys belong to no project: they go to the organization chain.
        Assert.Equal(3, (await EventsAsync(app, AuditEventDraft.OrganizationChain)).Skip(orgStart).Count(e => e.EventType == GatewayService.KeyRejectedEvent));
        Assert.True((await app.Get<AuditVerifier>().VerifyAsync(w.ProjectId)).Ok);
        Assert.True((await app.Get<AuditVerifier>().VerifyAsync(AuditEventDraft.OrganizationChain)).Ok);
        Assert.DoesNotContain(await EventsAsync(app, w.OtherProjectId), e => e.EventType.StartsWith("gateway.", StringComparison.Ordinal));
        Assert.Empty(app.Logs.Errors);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task No_audit_no_data_and_a_query_past_its_timeout_answers_504(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db);
        var w = await WorldAsync(app);
        var userKey = await w.KeyAsync(Roles.User);
        var lookup = w.Query(DemoCatalog.CustomerLookup);

        // The trail's database refuses the success event: the caller gets 503 and not one row.
        var sqlite = db.Provider == DatabaseProvider.Sqlite;
        await using (var ctx = db.NewContext())
            await ctx.Database.ExecuteSqlRawAsync(sqlite
                ? $"CREATE TRIGGER poison BEFORE INSERT ON audit_events WHEN NEW.event_type = '{GatewayService.ExecutedEvent}' BEGIN SELECT RAISE(ABORT, 'poison'); END"
                : $"""
                  CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
                    IF NEW.event_type = '{GatewayService.ExecutedEvent}' THEN RAISE EXCEPTION 'poison'; END IF; RETURN NEW; END $$;
                  CREATE TRIGGER poison BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION poison();
                  """);
        var refused = await w.ExecuteAsync(userKey, lookup, new { customer_id = 3 });
        var problem = await ProblemAsync(refused, HttpStatusCode.ServiceUnavailable);
        Assert.Equal("audit_unavailable", problem.GetProperty("code").GetString());
        Assert.False(problem.TryGetProperty("rows", out _));
        Assert.DoesNotContain("@", await refused.Content.ReadAsStringAsync());
        await using (var ctx = db.NewContext())
            await ctx.Database.ExecuteSqlRawAsync(sqlite ? "DROP TRIGGER poison" : "DROP TRIGGER poison ON audit_events");
        Assert.Equal(HttpStatusCode.OK, (await w.ExecuteAsync(userKey, lookup, new { customer_id = 3 })).StatusCode);

        var slow = await app.Get<ApprovedQueryService>().CreateAsync(w.ProjectId, new ApprovedQueryRequest(w.Demo.DatasourceId, "Slow count", "Counts for a long time.",
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) SELECT count(*) AS n FROM c", [], [], 1, ApprovedQueryService.MinTimeoutMs), w.Admin);
        await app.Get<Portal.Domain.Access.QueryPermissionService>().SetAsync(w.ProjectId, slow.Id,
            new Portal.Domain.Access.QueryGrant(Portal.Domain.Access.PrincipalTypes.Role, Roles.User, true, true, false), w.Admin);
        var timedOut = await ProblemAsync(await w.ExecuteAsync(userKey, slow.Id, null), HttpStatusCode.GatewayTimeout);
        Assert.Equal("timeout", timedOut.GetProperty("code").GetString());

        var events = await EventsAsync(app, w.ProjectId);
        Assert.Contains(events, e => e.EventType == GatewayService.DeniedEvent && e.ResourceId == slow.Id.ToString() && e.Details!.Contains("\"timeout\""));
        Assert.True((await app.Get<AuditVerifier>().VerifyAsync(w.ProjectId)).Ok);
    }
}
