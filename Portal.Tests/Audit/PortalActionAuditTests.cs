using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Portal.Domain;
using Portal.Domain.Audit;
using Portal.Domain.Security.ApiKeys;
using Portal.Domain.Security.RateLimits;
using Portal.Domain.Suite;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;
using Portal.Tests.Security;

namespace Portal.Tests.Audit;

/// <summary>Portal actions (members, suite, keys, rate limits, sign-in) land in the hash-chained audit trail.</summary>
public class PortalActionAuditTests
{
    // Hostile but valid text: quotes, markup, SQL, a right-to-left override, emoji, a line break.
    private const string HostileName = "Robert'); DROP TABLE users;-- <script>alert(1)</script> \u202Egnp.exe 🦄\r\nforged: line";

    private static async Task<List<AuditEvent>> EventsAsync(TestDatabase db, Guid chain, string? prefix = null)
    {
        await using var ctx = db.NewContext();
        var q = ctx.AuditEvents.AsNoTracking().Where(e => e.ProjectId == chain);
        if (prefix is not null) q = q.Where(e => e.EventType.StartsWith(prefix));
        return await q.OrderBy(e => e.Seq).ToListAsync();
    }

    private static JsonElement Json(string? text)
    {
        Assert.NotNull(text);
        return JsonDocument.Parse(text).RootElement;
    }

    private static void AssertActor(AuditEvent e, Guid userId, string email, string? role)
    {
        Assert.Equal("user", e.ActorType);
        Assert.Equal(userId.ToString(), e.ActorId);
        Assert.Equal(email, e.ActorEmail);
        Assert.Equal(role, e.ActorRole);
    }

    private static async Task AssertChainIntactAsync(TestDatabase db, Guid chain)
    {
        var result = await AuditTestData.VerifyAsync(db, chain);
        Assert.True(result.Ok, result.ToString());
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Member_changes_are_audited_once_each_with_actor_and_before_after(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        await using var scope = w.Services.CreateAsyncScope();
        var members = scope.ServiceProvider.GetRequiredService<MembershipService>();
        var start = (await EventsAsync(w.Db, w.ProjectId, "member.")).Count;

        var added = await members.AddAsync(w.ProjectId, "dora@bank.test", Roles.Data, w.Admin, HostileName);
        var memberId = added.Member.MemberId;
        await members.ChangeRoleAsync(w.ProjectId, memberId, Roles.Admin, w.Admin);
        await members.ChangeRoleAsync(w.ProjectId, memberId, Roles.Admin, w.Admin); // no change: no event
        await members.SetSuspendedAsync(w.ProjectId, memberId, true, w.Admin);
        await members.SetSuspendedAsync(w.ProjectId, memberId, false, w.Admin);
        await members.RemoveAsync(w.ProjectId, memberId, w.Admin);
        // A refused change (the last admin demoting themself) leaves no event.
        var adminMember = (await members.ListAsync(w.ProjectId, 0, 10)).Items.Single(m => m.UserId == w.Admin).MemberId;
        await Assert.ThrowsAsync<DomainException>(() => members.ChangeRoleAsync(w.ProjectId, adminMember, Roles.User, w.Admin));

        var events = (await EventsAsync(w.Db, w.ProjectId, "member.")).Skip(start).ToList();
        Assert.Equal(["member.added", "member.role_changed", "member.suspended", "member.reinstated", "member.removed"], events.Select(e => e.EventType));
        foreach (var e in events)
        {
            AssertActor(e, w.Admin, "admin@bank.test", Roles.Admin);
            Assert.Equal("member", e.ResourceType);
            Assert.Equal(memberId.ToString(), e.ResourceId);
            Assert.True(e.Success);
        }

        var add = events[0];
        Assert.Null(add.BeforeState);
        Assert.Equal(HostileName, Json(add.AfterState).GetProperty("display_name").GetString());
        Assert.Equal("dora@bank.test", Json(add.AfterState).GetProperty("email").GetString());
        Assert.Equal(Roles.Data, Json(add.AfterState).GetProperty("role").GetString());
        Assert.Equal("normal", add.SecurityLevel);

        var promote = events[1];
        Assert.Equal(Roles.Data, Json(promote.BeforeState).GetProperty("role").GetString());
        Assert.Equal(Roles.Admin, Json(promote.AfterState).GetProperty("role").GetString());
        Assert.Equal("warning", promote.SecurityLevel);

        Assert.False(Json(events[2].BeforeState).GetProperty("suspended").GetBoolean());
        Assert.True(Json(events[2].AfterState).GetProperty("suspended").GetBoolean());
        Assert.Equal(Roles.Admin, Json(events[4].BeforeState).GetProperty("role").GetString());
        Assert.Null(events[4].AfterState);

        await AssertChainIntactAsync(w.Db, w.ProjectId);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Suite_changes_are_audited_and_disabling_the_audit_module_is_a_warning(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        var suite = w.Services.GetRequiredService<SuiteService>();
        var start = (await EventsAsync(w.Db, w.ProjectId, "suite.")).Count;

        await suite.InstallAsync(w.ProjectId, Tier.Professional, w.Admin);
        await suite.ChangeTierAsync(w.ProjectId, Tier.Enterprise, w.Admin);
        await suite.SetModuleAsync(w.ProjectId, Modules.Security, true, w.Admin);
        await suite.SetModuleAsync(w.ProjectId, Modules.Security, true, w.Admin); // already on: no event
        await suite.SetModuleAsync(w.ProjectId, Modules.Audit, false, w.Admin);
        await suite.UninstallAsync(w.ProjectId, w.Admin);

        var events = (await EventsAsync(w.Db, w.ProjectId, "suite.")).Skip(start).ToList();
        Assert.Equal(["suite.installed", "suite.tier_changed", "suite.module_enabled", "suite.module_disabled", "suite.uninstalled"],
            events.Select(e => e.EventType));
        foreach (var e in events) AssertActor(e, w.Admin, "admin@bank.test", Roles.Admin);

        Assert.Null(events[0].BeforeState);
        Assert.Equal("Professional", Json(events[0].AfterState).GetProperty("tier").GetString());
        Assert.Equal("Professional", Json(events[1].BeforeState).GetProperty("tier").GetString());
        Assert.Equal("Enterprise", Json(events[1].AfterState).GetProperty("tier").GetString());

        Assert.Equal(("module", Modules.Security), (events[2].ResourceType, events[2].ResourceId));
        Assert.DoesNotContain(Modules.Security, Json(events[2].BeforeState).GetProperty("enabled_modules").EnumerateArray().Select(m => m.GetString()));
        Assert.Contains(Modules.Security, Json(events[2].AfterState).GetProperty("enabled_modules").EnumerateArray().Select(m => m.GetString()));
        Assert.Equal("normal", events[2].SecurityLevel);

        Assert.Equal(Modules.Audit, events[3].ResourceId);
        Assert.Equal("warning", events[3].SecurityLevel);
        Assert.Equal("active", Json(events[4].BeforeState).GetProperty("status").GetString());
        Assert.Equal("uninstalled", Json(events[4].AfterState).GetProperty("status").GetString());
        Assert.Equal("warning", events[4].SecurityLevel);

        await AssertChainIntactAsync(w.Db, w.ProjectId);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Key_and_rate_limit_changes_are_audited_without_secrets(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        var start = (await EventsAsync(w.Db, w.ProjectId)).Count;

        var narrow = await w.Keys.CreateAsync(w.ProjectId, new CreateApiKeyRequest(HostileName, Roles.User, ["query:sales-by-region"]), w.Admin);
        var broad = await w.Keys.CreateAsync(w.ProjectId, new CreateApiKeyRequest("Ops", Roles.Admin), w.Admin);
        var rotated = await w.Keys.RotateAsync(w.ProjectId, narrow.Key.Id, TimeSpan.FromHours(1), w.Admin);
        await w.Keys.RevokeAsync(w.ProjectId, broad.Key.Id, "leaked in a ticket <b>", w.Admin);

        var limit = await w.Limits.CreateAsync(w.ProjectId, new RateLimitInput(RateLimitScopes.Global, null, 100, null, 60), w.Admin);
        await w.Limits.UpdateAsync(w.ProjectId, limit.Id, new RateLimitInput(RateLimitScopes.Global, null, 50, null, 60, Enabled: false), w.Admin);
        await w.Limits.DeleteAsync(w.ProjectId, limit.Id, w.Admin);

        var events = (await EventsAsync(w.Db, w.ProjectId)).Skip(start).ToList();
        Assert.Equal(["api_key.created", "api_key.created", "api_key.rotated", "api_key.revoked", "rate_limit.created", "rate_limit.updated", "rate_limit.deleted"],
            events.Select(e => e.EventType));
        foreach (var e in events) AssertActor(e, w.Admin, "admin@bank.test", Roles.Admin);

        var all = string.Join("\n", events.Select(e => $"{e.Details}{e.BeforeState}{e.AfterState}"));
        foreach (var secret in new[] { narrow.Secret, broad.Secret, rotated.Secret })
        {
            Assert.DoesNotContain(secret, all);
            Assert.DoesNotContain(ApiKeySecret.Hash(secret), all);
        }

        Assert.Equal(("api_key", narrow.Key.Id.ToString()), (events[0].ResourceType, events[0].ResourceId));
        Assert.Equal(HostileName, Json(events[0].AfterState).GetProperty("name").GetString());
        Assert.Equal(narrow.Key.Prefix, Json(events[0].AfterState).GetProperty("prefix").GetString());
        Assert.Equal("normal", events[0].SecurityLevel);
        Assert.Equal("warning", events[1].SecurityLevel); // an admin key with no scopes

        Assert.Equal(narrow.Key.Id.ToString(), events[2].ResourceId);
        Assert.Equal(JsonValueKind.Null, Json(events[2].BeforeState).GetProperty("replaced_by_key_id").ValueKind);
        Assert.Equal(rotated.Key.Id.ToString(), Json(events[2].AfterState).GetProperty("key").GetProperty("replaced_by_key_id").GetString());
        Assert.Equal(rotated.Key.Prefix, Json(events[2].AfterState).GetProperty("replacement").GetProperty("prefix").GetString());

        Assert.Equal(JsonValueKind.Null, Json(events[3].BeforeState).GetProperty("revoked_at").ValueKind);
        Assert.Equal("leaked in a ticket <b>", Json(events[3].AfterState).GetProperty("revoke_reason").GetString());

        Assert.Null(events[4].BeforeState);
        Assert.Equal(100, Json(events[4].AfterState).GetProperty("maxRequests").GetInt32());
        Assert.Equal(100, Json(events[5].BeforeState).GetProperty("maxRequests").GetInt32());
        Assert.False(Json(events[5].AfterState).GetProperty("enabled").GetBoolean());
        Assert.Equal("warning", events[5].SecurityLevel); // a limit switched off
        Assert.Null(events[6].AfterState);
        Assert.All(events.Skip(4), e => Assert.Equal(limit.Id.ToString(), e.ResourceId));

        await AssertChainIntactAsync(w.Db, w.ProjectId);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task A_change_whose_audit_event_cannot_be_written_is_reported_as_failed(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        // A closed writer refuses every append, as it does when the trail's database cannot be written.
        await w.Services.GetRequiredService<AuditWriter>().DisposeAsync();

        var members = w.Services.CreateAsyncScope().ServiceProvider.GetRequiredService<MembershipService>();
        var refused = await Assert.ThrowsAsync<DomainException>(() => members.AddAsync(w.ProjectId, "eve@bank.test", Roles.User, w.Admin));
        Assert.Equal(ErrorKind.Unavailable, refused.Kind);
        Assert.Contains("audit trail", refused.Message);

        var suiteRefused = await Assert.ThrowsAsync<DomainException>(() => w.Services.GetRequiredService<SuiteService>().InstallAsync(w.ProjectId, Tier.Essentials, w.Admin));
        Assert.Equal(ErrorKind.Unavailable, suiteRefused.Kind);
        var keyRefused = await Assert.ThrowsAsync<DomainException>(() => w.Keys.CreateAsync(w.ProjectId, new CreateApiKeyRequest("k", Roles.User), w.Admin));
        Assert.Equal(ErrorKind.Unavailable, keyRefused.Kind);

        // The change itself was committed with its *_changes row (the transactional record an operator reconciles from).
        await using var ctx = w.Db.NewContext();
        Assert.True(await ctx.MembershipChanges.AnyAsync(c => c.ProjectId == w.ProjectId && c.UserEmail == "eve@bank.test"));
    }

    // ---- Sign-in over HTTP, through a real socket so the client address is real -------------------------------

    private static HttpClient Browser(string baseUrl, string userAgent)
    {
        var client = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, UseCookies = true, CookieContainer = new CookieContainer() })
        {
            BaseAddress = new Uri(baseUrl),
        };
        client.DefaultRequestHeaders.TryAddWithoutValidation("User-Agent", userAgent);
        return client;
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Sign_ins_failures_lockouts_and_sign_outs_are_recorded_in_the_organization_chain(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = PortalApp.ForBrowser(db);
        var (admin, projectId) = await app.SetupAsync();
        var bob = await app.AddMemberAsync(projectId, "bob@bank.test", Roles.User, admin.Id);
        var baseUrl = app.StartKestrel();
        var org = AuditEventDraft.OrganizationChain;
        var start = (await EventsAsync(db, org)).Count;

        const string agent = "Mozilla/5.0 (X11; Linux) AuditTest/1.0 <img src=x onerror=alert(1)>";
        using var client = Browser(baseUrl, agent);
        // Hostile but accepted by the form's e-mail check: it reaches the sign-in manager and must be kept as typed.
        const string hostileEmail = "nobody'<script>\"x\"@bank.test";
        Assert.Equal(HttpStatusCode.OK, (await Forms.PostLoginAsync(client, hostileEmail, "Wrong-Password-1")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Forms.PostLoginAsync(client, "bob@bank.test", "Wrong-Password-1")).StatusCode);
        Assert.Equal(HttpStatusCode.Redirect, (await Forms.PostLoginAsync(client, "bob@bank.test", TestUsers.Password)).StatusCode);
        var signOut = await client.PostAsync("/Account/Logout", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["__RequestVerificationToken"] = await Forms.AntiforgeryTokenAsync(client, "/Account/SignOut"),
        }));
        Assert.Equal(HttpStatusCode.Redirect, signOut.StatusCode);
        for (var i = 1; i <= 5; i++) await Forms.PostLoginAsync(client, "bob@bank.test", $"Wrong-Password-{i}");

        var events = (await EventsAsync(db, org)).Skip(start).ToList();
        Assert.Equal(
            ["auth.sign_in_failed", "auth.sign_in_failed", "auth.sign_in_succeeded", "auth.signed_out",
             "auth.sign_in_failed", "auth.sign_in_failed", "auth.sign_in_failed", "auth.sign_in_failed", "auth.locked_out"],
            events.Select(e => e.EventType));
        foreach (var e in events)
        {
            Assert.Equal("127.0.0.1", e.ClientIp);
            Assert.Equal(agent, e.UserAgent);
            Assert.False(string.IsNullOrEmpty(e.RequestId));
        }
        Assert.Equal(events.Count, events.Select(e => e.RequestId).Distinct().Count());

        var unknown = events[0];
        Assert.Equal("anonymous", unknown.ActorType);
        Assert.Null(unknown.ActorId);
        Assert.False(unknown.Success);
        Assert.Equal(hostileEmail, Json(unknown.Details).GetProperty("attempted_email").GetString());
        Assert.Equal("unknown_user", Json(unknown.Details).GetProperty("reason").GetString());

        var wrong = events[1];
        Assert.Equal(("user", bob.ToString(), "bob@bank.test"), (wrong.ActorType, wrong.ActorId, wrong.ActorEmail));
        Assert.Equal("wrong_password", Json(wrong.Details).GetProperty("reason").GetString());
        Assert.True(events[2].Success);
        Assert.Equal(bob.ToString(), events[2].ActorId);
        Assert.Equal(bob.ToString(), events[3].ActorId);
        Assert.Equal("warning", events[8].SecurityLevel);
        Assert.False(events[8].Success);

        // The organization chain is verified like any project chain and listed among the chains.
        await AssertChainIntactAsync(db, org);
        Assert.Contains(org, await app.Get<AuditVerifier>().ProjectsAsync());
        Assert.Empty(app.Logs.Errors);
    }

    [Fact]
    public void Attempted_emails_are_cut_and_lose_control_characters()
    {
        Assert.Equal("a\uFFFDb@x.test", SignInAudit.SanitizeEmail(" a\nb@x.test "));
        Assert.Equal(SignInAudit.MaxAttemptedEmail, SignInAudit.SanitizeEmail(new string('a', 5000))!.Length);
        Assert.Null(SignInAudit.SanitizeEmail(null));
    }

    [Fact]
    public async Task Only_auth_events_may_use_the_organization_chain()
    {
        await using var db = await TestDatabase.CreateAsync("sqlite");
        await using var writer = AuditTestData.Writer(db);
        var refused = await Assert.ThrowsAsync<DomainException>(() => writer.AppendAsync(AuditTestData.Draft(AuditEventDraft.OrganizationChain, 1, "member.added")));
        Assert.Equal("ProjectId", refused.Field);
        var receipt = await writer.AppendAsync(AuditTestData.Draft(AuditEventDraft.OrganizationChain, 1, "auth.sign_in_failed"));
        Assert.Equal(1, receipt.Seq);
    }
}
