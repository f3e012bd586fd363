using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Portal.Domain;
using Portal.Domain.Access;
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

/// <summary>
/// Portal members running queries as themselves: the same pipeline as API keys (grants per user and role, rate
/// limits per user, masking by role, audit with actor type "user"), the per-project injection screening setting, and
/// "role:" scopes on keys. Real portal database on both providers and the demo bank datasource.
/// </summary>
public class MemberGatewayTests
{
    private static readonly GatewayRequestContext Request = new("127.0.0.1", "tests", "req-1");

    private sealed class RecordingListener : IGatewayEventListener
    {
        public ConcurrentQueue<GatewayAuditedEvent> Events { get; } = new();
        public ValueTask OnAuditedAsync(GatewayAuditedEvent e, CancellationToken ct) { Events.Enqueue(e); return ValueTask.CompletedTask; }
    }

    private sealed record World(PortalApp App, Guid Admin, Guid ProjectId, DemoCatalogResult Demo, RecordingListener Listener)
    {
        public GatewayService Gateway => App.Get<GatewayService>();
        public QueryCatalog Catalog => App.Get<QueryCatalog>();
        public Guid Query(string name) => Demo.Queries[name];

        public async Task<GatewayPrincipal> MemberAsync(Guid userId)
        {
            var auth = await Gateway.AuthenticateMemberAsync(ProjectId, userId, Request);
            Assert.True(auth.Succeeded, auth.Denial?.Title);
            return auth.Value!;
        }

        public Task<GatewayOutcome<GatewayResult>> RunAsync(GatewayPrincipal who, string query, object parameters) =>
            Gateway.ExecuteAsync(who, Query(query), JsonSerializer.SerializeToElement(parameters), Request);
    }

    private static async Task<World> WorldAsync(TestDatabase db)
    {
        var listener = new RecordingListener();
        var app = new PortalApp(db) { ConfigureServices = s => s.AddSingleton<IGatewayEventListener>(listener) };
        var (admin, projectId) = await app.SetupAsync();
        await app.InstallSuiteAsync(projectId, admin.Id, Tier.EnterprisePlus, Modules.AccessControl);
        var demo = await app.Get<DemoCatalog>().SeedAsync(projectId, admin.Id, app.Get<DatabaseOptions>().DataDirectory) ?? throw new InvalidOperationException("demo not seeded");
        return new World(app, admin.Id, projectId, demo, listener);
    }

    private static async Task<List<AuditEvent>> EventsAsync(PortalApp app, Guid projectId)
    {
        await using var db = await app.Get<IDbContextFactory<PortalDbContext>>().CreateDbContextAsync();
        return await db.AuditEvents.AsNoTracking().Where(e => e.ProjectId == projectId).OrderBy(e => e.Seq).ToListAsync();
    }

    private static Dictionary<string, object?> Row(GatewayResult r, int index) =>
        r.Columns.Select((c, i) => (c.Name, Value: r.Rows[index][i])).ToDictionary(x => x.Name, x => x.Value);

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Members_list_and_run_as_themselves_with_user_grants_role_masks_and_user_audit(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        var w = await WorldAsync(db);
        await using var app = w.App;
        var alice = await app.AddMemberAsync(w.ProjectId, "alice@bank.test", Roles.User, w.Admin);
        var bob = await app.AddMemberAsync(w.ProjectId, "bob@bank.test", Roles.User, w.Admin);
        var carol = await app.AddMemberAsync(w.ProjectId, "carol@bank.test", Roles.Compliance, w.Admin);
        var asAlice = await w.MemberAsync(alice);
        var asBob = await w.MemberAsync(bob);
        Assert.True(asAlice.IsUser);
        Assert.Equal(Roles.User, asAlice.Role);
        Assert.Equal("alice@bank.test", asAlice.Email);

        // Role grants: both users see the same three queries; the salary summary is granted to neither role.
        var bobList = await w.Catalog.ListAsync(asBob, Request);
        Assert.Equal(new[] { DemoCatalog.ContactsByCity, DemoCatalog.CustomerLookup, DemoCatalog.OrdersByDate }, bobList.Value!.Select(e => e.Query.Name).Order());
        Assert.All(bobList.Value!, e => Assert.Equal(DemoCatalog.DatasourceName, e.DatasourceName));
        Assert.All(bobList.Value!, e => Assert.False(e.CanEdit));

        // A per-user grant: Alice alone may view and run the salary summary, and sees the figures masked by her role.
        await w.App.Get<QueryPermissionService>().SetAsync(w.ProjectId, w.Query(DemoCatalog.SalarySummary),
            new QueryGrant(PrincipalTypes.User, alice.ToString(), true, true, false), w.Admin);
        Assert.Contains((await w.Catalog.ListAsync(asAlice, Request)).Value!, e => e.Query.Name == DemoCatalog.SalarySummary && e.CanExecute);
        Assert.DoesNotContain((await w.Catalog.ListAsync(asBob, Request)).Value!, e => e.Query.Name == DemoCatalog.SalarySummary);
        var salary = await w.RunAsync(asAlice, DemoCatalog.SalarySummary, new { department = "Sales" });
        Assert.True(salary.Succeeded, salary.Denial?.Title);
        Assert.Equal(MaskingEngine.Redacted, Row(salary.Value!, 0)["average_salary"]);
        var bobSalary = await w.RunAsync(asBob, DemoCatalog.SalarySummary, new { department = "Sales" });
        Assert.Equal(GatewayDenialKind.Forbidden, bobSalary.Denial!.Kind);
        Assert.NotNull(bobSalary.Denial.EventId);
        await Assert.ThrowsAsync<DomainException>(() => w.Catalog.GetAsync(asBob, w.Query(DemoCatalog.SalarySummary)));

        // Masked by role: SSN and card number partial for a user; the executed event names the member.
        var lookup = await w.RunAsync(asAlice, DemoCatalog.CustomerLookup, new { customer_id = 7 });
        Assert.True(lookup.Succeeded, lookup.Denial?.Title);
        var r = lookup.Value!;
        Assert.True(r.Columns.Single(c => c.Name == "ssn").Masked);
        Assert.Equal("partial", r.Columns.Single(c => c.Name == "card_number").Mask);
        Assert.Contains('*', (string)Row(r, 0)["ssn"]!);
        Assert.Equal(7L, Convert.ToInt64(Row(r, 0)["id"]));

        var events = await EventsAsync(app, w.ProjectId);
        var executed = events.Single(e => e.Id == r.EventId);
        Assert.Equal(GatewayService.ExecutedEvent, executed.EventType);
        Assert.Equal("user", executed.ActorType);
        Assert.Equal(alice.ToString(), executed.ActorId);
        Assert.Equal("alice@bank.test", executed.ActorEmail);
        Assert.Equal(Roles.User, executed.ActorRole);
        Assert.Equal("req-1", executed.RequestId);
        using (var d = JsonDocument.Parse(executed.Details!))
        {
            Assert.Equal(JsonValueKind.Null, d.RootElement.GetProperty("keyPrefix").ValueKind);
            Assert.Equal(7, d.RootElement.GetProperty("parameters").GetProperty("customer_id").GetInt32());
        }
        var denied = events.Single(e => e.Id == bobSalary.Denial.EventId);
        Assert.Equal(GatewayService.DeniedEvent, denied.EventType);
        Assert.Equal("user", denied.ActorType);
        Assert.Equal("bob@bank.test", denied.ActorEmail);
        Assert.Contains(events, e => e.EventType == GatewayService.ListedEvent && e.ActorId == bob.ToString());
        // Listeners hear member denials as they hear key denials.
        Assert.Contains(w.Listener.Events, e => e.Receipt.Id == bobSalary.Denial.EventId && e.Draft.Actor.Type == "user");

        // The role table still rules people: compliance holds a grant on the lookup but its role may not run queries in the portal.
        var asCarol = await w.MemberAsync(carol);
        var carolRun = await w.RunAsync(asCarol, DemoCatalog.CustomerLookup, new { customer_id = 7 });
        Assert.Equal(GatewayDenialKind.Forbidden, carolRun.Denial!.Kind);
        Assert.Contains((await w.Catalog.ListAsync(asCarol, Request)).Value!, e => e.Query.Name == DemoCatalog.CustomerLookup && !e.CanExecute);

        // Bad parameters name the field, exactly as the API does.
        var bad = await w.Catalog.RunAsync(asAlice, w.Query(DemoCatalog.ContactsByCity), new Dictionary<string, string?> { ["city"] = "Paris1" }, Request);
        Assert.Equal(GatewayDenialKind.InvalidParameters, bad.Denial!.Kind);
        Assert.Contains(bad.Denial.Errors, e => e.Field == "parameters.city");
        var missing = await w.Catalog.RunAsync(asAlice, w.Query(DemoCatalog.ContactsByCity), new Dictionary<string, string?> { ["city"] = "" }, Request);
        Assert.Contains(missing.Denial!.Errors, e => e.Field == "parameters.city");

        // Strangers and suspended members are refused, and the refusal is audited.
        var outsider = await w.Gateway.AuthenticateMemberAsync(w.ProjectId, Guid.NewGuid(), Request);
        Assert.Equal(GatewayDenialKind.Forbidden, outsider.Denial!.Kind);
        var bobMember = (await app.WithScopeAsync(sp => sp.GetRequiredService<MembershipService>().ListAsync(w.ProjectId, 0, 50))).Items.Single(m => m.UserId == bob);
        await app.WithScopeAsync(async sp => { await sp.GetRequiredService<MembershipService>().SetSuspendedAsync(w.ProjectId, bobMember.MemberId, true, w.Admin); return 0; });
        Assert.False((await w.Gateway.AuthenticateMemberAsync(w.ProjectId, bob, Request)).Succeeded);
        Assert.True((await app.Get<AuditVerifier>().VerifyAsync(w.ProjectId)).Ok);
        Assert.Empty(app.Logs.Errors);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Rate_limits_count_each_member_separately_and_answer_retry_after(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        var w = await WorldAsync(db);
        await using var app = w.App;
        var alice = await w.MemberAsync(await app.AddMemberAsync(w.ProjectId, "alice@bank.test", Roles.User, w.Admin));
        var bob = await w.MemberAsync(await app.AddMemberAsync(w.ProjectId, "bob@bank.test", Roles.User, w.Admin));
        await app.Get<RateLimitService>().CreateAsync(w.ProjectId, new RateLimitInput(RateLimitScopes.User, null, 2, null, 3600), w.Admin);

        Assert.True((await w.RunAsync(alice, DemoCatalog.CustomerLookup, new { customer_id = 1 })).Succeeded);
        Assert.True((await w.RunAsync(alice, DemoCatalog.CustomerLookup, new { customer_id = 2 })).Succeeded);
        var third = await w.RunAsync(alice, DemoCatalog.CustomerLookup, new { customer_id = 3 });
        Assert.Equal(GatewayDenialKind.RateLimited, third.Denial!.Kind);
        Assert.Equal(429, third.Denial.StatusCode);
        Assert.True(third.Denial.RetryAfterSeconds is > 0 and <= 3600);
        // Bob has his own budget; a key is not charged to any member either.
        Assert.True((await w.RunAsync(bob, DemoCatalog.CustomerLookup, new { customer_id = 3 })).Succeeded);
        var key = (await app.Get<ApiKeyService>().CreateAsync(w.ProjectId, new CreateApiKeyRequest("agent", Roles.User), w.Admin)).Secret;
        var keyPrincipal = (await w.Gateway.AuthenticateAsync(key, Request)).Value!;
        Assert.False(keyPrincipal.IsUser);
        Assert.True((await w.RunAsync(keyPrincipal, DemoCatalog.CustomerLookup, new { customer_id = 3 })).Succeeded);

        var limited = (await EventsAsync(app, w.ProjectId)).Single(e => e.Id == third.Denial.EventId);
        Assert.Equal("user", limited.ActorType);
        Assert.Equal("alice@bank.test", limited.ActorEmail);
        Assert.Equal("warning", limited.SecurityLevel);
        Assert.Contains("rateLimited", limited.Details);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Injection_screening_is_a_project_setting_admins_change_and_the_pipeline_honours(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        var w = await WorldAsync(db);
        await using var app = w.App;
        var settings = app.Get<GatewaySettingsService>();
        var byName = await app.Get<ApprovedQueryService>().CreateAsync(w.ProjectId, new ApprovedQueryRequest(w.Demo.DatasourceId, "Customer by name", "",
            "SELECT id, name FROM customers WHERE name = @name", [new QueryParameter("name", ParameterType.String)]), w.Admin);
        await app.Get<QueryPermissionService>().SetAsync(w.ProjectId, byName.Id, new QueryGrant(PrincipalTypes.Role, Roles.User, true, true, false), w.Admin);
        var alice = await w.MemberAsync(await app.AddMemberAsync(w.ProjectId, "alice@bank.test", Roles.User, w.Admin));
        var dataUser = await app.AddMemberAsync(w.ProjectId, "dan@bank.test", Roles.Data, w.Admin);
        var attack = JsonSerializer.SerializeToElement(new { name = "x' OR '1'='1" });

        var initial = await settings.GetAsync(w.ProjectId);
        Assert.True(initial.IsDefault);
        Assert.Equal(InjectionScreeningMode.Block, initial.InjectionScreening);
        var blocked = await w.Gateway.ExecuteAsync(alice, byName.Id, attack, Request);
        Assert.Equal(GatewayDenialKind.InjectionBlocked, blocked.Denial!.Kind);
        Assert.Contains(blocked.Denial.Errors, e => e.Field == "parameters.name");

        // Only access managers change it; bad values and unknown projects are refused and change nothing.
        Assert.Equal(ErrorKind.Forbidden, (await Assert.ThrowsAsync<DomainException>(() => settings.SetInjectionScreeningAsync(w.ProjectId, "flag", dataUser))).Kind);
        Assert.Equal("injectionScreening", (await Assert.ThrowsAsync<DomainException>(() => settings.SetInjectionScreeningAsync(w.ProjectId, "ignore", w.Admin))).Field);
        Assert.Equal(ErrorKind.NotFound, (await Assert.ThrowsAsync<DomainException>(() => settings.SetInjectionScreeningAsync(Guid.NewGuid(), "flag", w.Admin))).Kind);
        Assert.True((await settings.GetAsync(w.ProjectId)).IsDefault);

        var flagged = await settings.SetInjectionScreeningAsync(w.ProjectId, "FLAG", w.Admin);
        Assert.False(flagged.IsDefault);
        Assert.Equal(InjectionScreeningMode.Flag, flagged.InjectionScreening);
        var ran = await w.Gateway.ExecuteAsync(alice, byName.Id, attack, Request);
        Assert.True(ran.Succeeded, ran.Denial?.Title);
        var events = await EventsAsync(app, w.ProjectId);
        var ranEvent = events.Single(e => e.Id == ran.Value!.EventId);
        Assert.Equal("warning", ranEvent.SecurityLevel);
        Assert.Contains("\"flagged\":true", ranEvent.Details);
        Assert.Contains(w.Listener.Events, e => e.Receipt.Id == ran.Value!.EventId && e.Denial is null);
        var change = events.Single(e => e.EventType == "gateway_settings.updated");
        Assert.Equal("warning", change.SecurityLevel); // lowering a protection
        Assert.Contains("\"block\"", change.BeforeState);
        Assert.Contains("\"flag\"", change.AfterState);
        Assert.Equal(w.Admin.ToString(), change.ActorId);

        // Back to the portal default (block), which the next suspicious call meets again.
        var back = await settings.SetInjectionScreeningAsync(w.ProjectId, "default", w.Admin);
        Assert.True(back.IsDefault);
        Assert.Equal(GatewayDenialKind.InjectionBlocked, (await w.Gateway.ExecuteAsync(alice, byName.Id, attack, Request)).Denial!.Kind);
        await using var ctx = await app.Get<IDbContextFactory<PortalDbContext>>().CreateDbContextAsync();
        Assert.Equal(2, await ctx.Set<AccessChange>().CountAsync(c => c.ProjectId == w.ProjectId && c.SubjectType == AccessSubjects.GatewaySettings));
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task A_role_scope_makes_a_key_act_as_that_role_for_grants_masks_and_audit(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        var w = await WorldAsync(db);
        await using var app = w.App;
        var keys = app.Get<ApiKeyService>();
        async Task<GatewayPrincipal> KeyAsync(string role, params string[] scopes) =>
            (await w.Gateway.AuthenticateAsync((await keys.CreateAsync(w.ProjectId, new CreateApiKeyRequest($"{role} {Guid.NewGuid():N}", role, scopes), w.Admin)).Secret, Request)).Value!;

        // A data key may run the salary summary; scoped to role:user it may not (users hold no grant on it).
        var data = await KeyAsync(Roles.Data);
        var dataAsUser = await KeyAsync(Roles.Data, "role:user");
        Assert.Equal(Roles.User, dataAsUser.Role);
        Assert.Equal(Roles.Data, dataAsUser.KeyRole);
        Assert.True((await w.RunAsync(data, DemoCatalog.SalarySummary, new { department = "Sales" })).Succeeded);
        var refused = await w.RunAsync(dataAsUser, DemoCatalog.SalarySummary, new { department = "Sales" });
        Assert.Equal(GatewayDenialKind.Forbidden, refused.Denial!.Kind);
        Assert.DoesNotContain((await w.Gateway.ListQueriesAsync(dataAsUser, Request)).Value!, q => q.Name == DemoCatalog.SalarySummary);

        // Masks follow the scoped role: an admin key sees the SSN masked (only compliance sees it raw), the same key
        // scoped to role:compliance sees it raw.
        var admin = await KeyAsync(Roles.Admin);
        var adminAsCompliance = await KeyAsync(Roles.Admin, "role:compliance");
        var masked = await w.RunAsync(admin, DemoCatalog.CustomerLookup, new { customer_id = 5 });
        var raw = await w.RunAsync(adminAsCompliance, DemoCatalog.CustomerLookup, new { customer_id = 5 });
        Assert.True(masked.Succeeded && raw.Succeeded);
        Assert.Contains('*', (string)Row(masked.Value!, 0)["ssn"]!);
        Assert.DoesNotContain('*', (string)Row(raw.Value!, 0)["ssn"]!);
        Assert.False(raw.Value!.Columns.Single(c => c.Name == "ssn").Masked);

        var ev = (await EventsAsync(app, w.ProjectId)).Single(e => e.Id == raw.Value.EventId);
        Assert.Equal("api_key", ev.ActorType);
        Assert.Equal(Roles.Compliance, ev.ActorRole);
        Assert.Contains("\"keyRole\":\"admin\"", ev.Details);

        // A key acts as one role: two role scopes are refused when the key is made.
        var e = await Assert.ThrowsAsync<DomainException>(() => keys.CreateAsync(w.ProjectId, new CreateApiKeyRequest("two roles", Roles.Admin, ["role:user", "role:data"]), w.Admin));
        Assert.Equal("scopes", e.Field);
    }

    [Fact]
    public void Acting_role_is_the_scoped_role_or_fails_closed_to_user()
    {
        Assert.Equal(Roles.Data, ApiKeyRules.ActingRole(Roles.Data, []));
        Assert.Equal(Roles.Data, ApiKeyRules.ActingRole(Roles.Data, ["query:abc"]));
        Assert.Equal(Roles.User, ApiKeyRules.ActingRole(Roles.Data, ["role:user", "query:abc"]));
        Assert.Equal(Roles.Compliance, ApiKeyRules.ActingRole(Roles.Admin, ["role:compliance"]));
        // Stored before a rule change: a scope above the key's role, or two role scopes, never raise it.
        Assert.Equal(Roles.User, ApiKeyRules.ActingRole(Roles.User, ["role:admin"]));
        Assert.Equal(Roles.User, ApiKeyRules.ActingRole(Roles.Admin, ["role:admin", "role:data"]));
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Catalog_edits_need_the_edit_permission_and_authors_keep_sight_of_their_query(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        var w = await WorldAsync(db);
        await using var app = w.App;
        var dan = await w.MemberAsync(await app.AddMemberAsync(w.ProjectId, "dan@bank.test", Roles.Data, w.Admin));
        var alice = await w.MemberAsync(await app.AddMemberAsync(w.ProjectId, "alice@bank.test", Roles.User, w.Admin));
        var request = new ApprovedQueryRequest(w.Demo.DatasourceId, "Cities", "Distinct cities", "SELECT DISTINCT city FROM customers ORDER BY city");

        Assert.Equal(ErrorKind.Forbidden, (await Assert.ThrowsAsync<DomainException>(() => w.Catalog.SaveAsync(alice, null, request))).Kind);
        var created = await w.Catalog.SaveAsync(dan, null, request);
        var detail = await w.Catalog.GetAsync(dan, created.Id);
        Assert.True(detail.CanEdit && detail.CanExecute);
        Assert.Equal(DemoCatalog.DatasourceName, detail.DatasourceName);
        // Alice has no grant: the query does not exist for her.
        Assert.Equal(ErrorKind.NotFound, (await Assert.ThrowsAsync<DomainException>(() => w.Catalog.GetAsync(alice, created.Id))).Kind);
        // The engine's refusal is reported on the SQL field.
        var bad = await Assert.ThrowsAsync<DomainException>(() => w.Catalog.SaveAsync(dan, created.Id, request with { Sql = "DELETE FROM customers" }));
        Assert.Equal("sql", bad.Field);
        var updated = await w.Catalog.SaveAsync(dan, created.Id, request with { Description = "Every city with customers" });
        Assert.Equal(2, updated.Version);
        // A grant without edit lets Dan view and run a query but not change or archive it.
        var other = await app.Get<ApprovedQueryService>().CreateAsync(w.ProjectId, request with { Name = "Admin only" }, w.Admin);
        await app.Get<QueryPermissionService>().SetAsync(w.ProjectId, other.Id, new QueryGrant(PrincipalTypes.Role, Roles.Data, true, true, false), w.Admin);
        Assert.Equal(ErrorKind.Forbidden, (await Assert.ThrowsAsync<DomainException>(() => w.Catalog.SaveAsync(dan, other.Id, request with { Name = "Admin only" }))).Kind);
        Assert.Equal(ErrorKind.Forbidden, (await Assert.ThrowsAsync<DomainException>(() => w.Catalog.ArchiveAsync(dan, other.Id))).Kind);

        // Lineage: once a dashboard relies on the query, changing or archiving it needs a confirmation naming it.
        await app.Get<Portal.Domain.Governance.QueryHistoryService>().AddConsumerAsync(w.ProjectId, created.Id,
            new Portal.Domain.Governance.ConsumerRequest("dashboard", "Branch map"), w.Admin);
        Assert.Equal("Branch map", Assert.Single((await w.Catalog.GetAsync(dan, created.Id)).Consumers).Name);
        var unconfirmed = await Assert.ThrowsAsync<DomainException>(() => w.Catalog.SaveAsync(dan, created.Id, request with { Description = "Cities" }));
        Assert.Equal((ErrorKind.Conflict, "confirmConsumers"), (unconfirmed.Kind, unconfirmed.Field));
        Assert.Contains("1 dashboard", unconfirmed.Message);
        Assert.Contains("Branch map", unconfirmed.Message);
        Assert.Equal(2, (await w.Catalog.GetAsync(dan, created.Id)).Query.Version); // nothing changed
        Assert.Equal(3, (await w.Catalog.SaveAsync(dan, created.Id, request with { Description = "Cities" }, confirmConsumers: true)).Version);
        var archiveUnconfirmed = await Assert.ThrowsAsync<DomainException>(() => w.Catalog.ArchiveAsync(dan, created.Id));
        Assert.Equal("confirmConsumers", archiveUnconfirmed.Field);

        await w.Catalog.ArchiveAsync(dan, created.Id, confirmConsumers: true);
        Assert.Equal(ErrorKind.NotFound, (await Assert.ThrowsAsync<DomainException>(() => w.Catalog.GetAsync(dan, created.Id))).Kind);

        // Every direct change is in the trail with the author and the definition before and after.
        var changes = (await EventsAsync(app, w.ProjectId)).Where(e => e.ResourceId == created.Id.ToString() && e.EventType.StartsWith("approved_query.", StringComparison.Ordinal)).ToList();
        Assert.Equal(["approved_query.created", "approved_query.updated", "approved_query.consumer_added", "approved_query.updated", "approved_query.archived"],
            changes.Select(e => e.EventType));
        Assert.All(changes.Where(e => e.EventType != "approved_query.consumer_added"), e => Assert.Equal(("dan@bank.test", "data"), (e.ActorEmail, e.ActorRole)));
        Assert.Null(changes[0].BeforeState);
        Assert.Contains("\"description\":\"Distinct cities\"", changes[1].BeforeState);
        Assert.Contains("\"description\":\"Every city with customers\"", changes[1].AfterState);
        Assert.Contains("\"status\":\"active\"", changes[4].BeforeState);
        Assert.Contains("\"status\":\"archived\"", changes[4].AfterState);
        Assert.DoesNotContain((await w.Catalog.ListAsync(dan, Request)).Value!, e => e.Query.Id == created.Id);

        // Filtering is by name or description text and by classification.
        var all = (await w.Catalog.ListAsync(dan, Request)).Value!;
        Assert.Equal([DemoCatalog.SalarySummary], QueryCatalog.Filter(all, "DEPARTMENT", null).Select(e => e.Query.Name));
        Assert.All(QueryCatalog.Filter(all, null, Classifications.Pii), e => Assert.Contains(Classifications.Pii, e.Query.Classifications));
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Grant_and_mask_changes_are_recorded_and_audited_with_before_and_after(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        var w = await WorldAsync(db);
        await using var app = w.App;
        var grants = app.Get<QueryPermissionService>();
        var masks = app.Get<ColumnMaskService>();
        var start = (await EventsAsync(app, w.ProjectId)).Count;
        var q = w.Query(DemoCatalog.OrdersByDate);

        var g = await grants.SetAsync(w.ProjectId, q, new QueryGrant(PrincipalTypes.Role, Roles.Security, true, false, false), w.Admin);
        await grants.SetAsync(w.ProjectId, q, new QueryGrant(PrincipalTypes.Role, Roles.Security, true, true, false), w.Admin);
        await grants.RemoveAsync(w.ProjectId, g!.Id, w.Admin);
        var other = await app.Get<ProjectService>().CreateAsync(w.Admin, "Other", null);
        var gone = await Assert.ThrowsAsync<DomainException>(() => grants.RemoveAsync(other.Id, Guid.NewGuid(), w.Admin));
        Assert.Equal(ErrorKind.NotFound, gone.Kind);

        var m = await masks.CreateAsync(w.ProjectId, new ColumnMaskRequest(w.Demo.DatasourceId, "customers", "name", MaskType.Redact), w.Admin);
        await masks.UpdateAsync(w.ProjectId, m.Id, new ColumnMaskRequest(w.Demo.DatasourceId, "customers", "name", MaskType.Redact, VisibleToRoles: [Roles.Data]), w.Admin);
        await masks.DeleteAsync(w.ProjectId, m.Id, w.Admin);
        Assert.Equal(ErrorKind.NotFound, (await Assert.ThrowsAsync<DomainException>(() => masks.DeleteAsync(w.ProjectId, m.Id, w.Admin))).Kind);

        var events = (await EventsAsync(app, w.ProjectId)).Skip(start).ToList();
        Assert.Equal(new[] { "query_permission.created", "query_permission.updated", "query_permission.deleted", "column_mask.created", "column_mask.updated", "column_mask.deleted" },
            events.Select(e => e.EventType));
        Assert.All(events, e => Assert.Equal(w.Admin.ToString(), e.ActorId));
        Assert.Null(events[0].BeforeState);
        Assert.Contains("\"canExecute\":false", events[1].BeforeState);
        Assert.Contains("\"canExecute\":true", events[1].AfterState);
        Assert.Null(events[2].AfterState);
        Assert.Equal("warning", events[4].SecurityLevel); // data now sees names raw
        Assert.Equal("warning", events[5].SecurityLevel);
        Assert.Contains("\"visibleToRoles\":[\"data\"]", events[4].AfterState);
        await using var ctx = await app.Get<IDbContextFactory<PortalDbContext>>().CreateDbContextAsync();
        Assert.Equal(6, await ctx.Set<AccessChange>().CountAsync(c => c.ProjectId == w.ProjectId && c.ChangedAt >= events[0].OccurredAt
            && (c.SubjectType == AccessSubjects.QueryPermission || c.SubjectType == AccessSubjects.ColumnMask) && (c.SubjectId == g.Id || c.SubjectId == m.Id)));
        Assert.True((await app.Get<AuditVerifier>().VerifyAsync(w.ProjectId)).Ok);
    }

    [Fact]
    public void Mask_preview_shows_each_role_what_the_gateway_would_return()
    {
        var preview = new MaskPreview(new GatewayOptions { MaskingHashKey = new byte[32] });
        var rows = preview.Preview(MaskType.Partial, 0, 4, [Roles.Compliance], "123-45-6789").ToDictionary(r => r.Role);
        Assert.Equal("*******6789", rows[Roles.User].Shown);
        Assert.True(rows[Roles.User].Masked);
        Assert.Equal("123-45-6789", rows[Roles.Compliance].Shown);
        Assert.False(rows[Roles.Compliance].Masked);
        Assert.Equal(Roles.All.Count, rows.Count);
        Assert.Equal("***@bank.test", preview.Preview(MaskType.EmailDomain, 0, 0, null, "ada@bank.test")[0].Shown);
        Assert.StartsWith("hmac:", preview.Preview(MaskType.Hash, 0, 0, null, "x")[0].Shown);
        Assert.Null(preview.Preview(MaskType.Null, 0, 0, null, "x")[0].Shown);
        Assert.Equal(MaskingEngine.Redacted, preview.Preview(MaskType.Redact, 0, 0, null, "x")[0].Shown);
    }
}
