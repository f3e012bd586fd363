using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Portal.Domain;
using Portal.Domain.Audit;
using Portal.Domain.Gateway;
using Portal.Domain.Security.Alerts;
using Portal.Domain.Security.ApiKeys;
using Portal.Domain.Security.Detectors;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Security;

/// <summary>Each scan rule on real audit events (both providers), moving a manual clock; idempotence and the watermark.</summary>
public class AnomalyScanTests
{
    private static readonly DateTimeOffset Day0 = new(2026, 10, 1, 0, 0, 0, TimeSpan.Zero);

    internal static AuditEventDraft Call(Guid project, string keyId, DateTimeOffset at, long rows = 10, string ip = "10.0.0.1", string ua = "agent/1.0",
        string query = "q-1", string[]? classes = null) => new()
    {
        ProjectId = project, EventType = GatewayService.ExecutedEvent, OccurredAt = at,
        Actor = new AuditActor("api_key", keyId, Role: "user", ClientIp: ip, UserAgent: ua),
        ResourceType = "approved_query", ResourceId = query, Action = "execute", RowsReturned = rows, DataClassifications = classes, Details = "{}",
    };

    private static AuditEventDraft SignInFailed(string ip, DateTimeOffset at, Guid? user = null, string email = "nobody@x.test") => new()
    {
        ProjectId = AuditEventDraft.OrganizationChain, EventType = "auth.sign_in_failed", OccurredAt = at, Success = false,
        Actor = user is { } u ? new AuditActor("user", u.ToString(), email, ClientIp: ip) : AuditActor.Anonymous(ip),
        ResourceType = "user", ResourceId = user?.ToString(), Action = "sign_in",
        Details = PortalAudit.Json(new { method = "password", attempted_email = email, reason = "wrong_password" }),
    };

    private static async Task AppendAsync(SecurityWorld w, IEnumerable<AuditEventDraft> drafts)
    {
        var writer = w.Services.GetRequiredService<AuditWriter>();
        foreach (var d in drafts) await writer.AppendAsync(d);
    }

    private static Task<ScanReport> ScanAsync(SecurityWorld w) => w.Services.GetRequiredService<AnomalyScanner>().ScanAsync();

    private static async Task<List<SecurityAlert>> AlertsAsync(SecurityWorld w, string? rule = null, Guid? project = null)
    {
        await using var db = w.Db.NewContext();
        var p = project ?? w.ProjectId;
        return await db.SecurityAlerts.AsNoTracking().Where(a => a.ProjectId == p && (rule == null || a.Rule == rule)).OrderBy(a => a.CreatedAt).ToListAsync();
    }

    /// <summary>A key that works office hours (09-16 UTC) from one address for <paramref name="days"/> days, 100-ish rows a day.</summary>
    private static IEnumerable<AuditEventDraft> Routine(Guid project, string key, int days, int fromDay = 0) =>
        Enumerable.Range(fromDay, days).SelectMany(d => new[] { 9, 11, 13, 15 }.Select(h => Call(project, key, Day0.AddDays(d).AddHours(h).AddMinutes(d), 20 + d % 5)));

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Brute_force_fires_at_the_threshold_within_the_window_and_maps_sign_in_failures_to_the_users_projects(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        var other = await w.OtherProjectAsync();      // the admin is a member of both
        var outsider = await w.OtherProjectAsync();
        await using (var db = w.Db.NewContext())
            await db.ProjectMembers.Where(m => m.ProjectId == outsider).ExecuteDeleteAsync();
        var t = Day0.AddHours(10);
        // Negative: five failures, but spread over 40 minutes.
        await AppendAsync(w, Enumerable.Range(0, 5).Select(i => SignInFailed("198.51.100.1", t.AddMinutes(i * 10), w.Admin, "admin@bank.test")));
        // Four in a burst: below the threshold.
        await AppendAsync(w, Enumerable.Range(0, 4).Select(i => SignInFailed("198.51.100.2", t.AddMinutes(i), w.Admin, "admin@bank.test")));
        var first = await ScanAsync(w);
        Assert.Equal(9, first.EventsExamined);
        Assert.Empty(await AlertsAsync(w, DetectorRules.BruteForce));

        // The fifth within ten minutes, in the next scan: the window reaches back past the watermark.
        await AppendAsync(w, [SignInFailed("198.51.100.2", t.AddMinutes(5), w.Admin, "admin@bank.test")]);
        var second = await ScanAsync(w);
        Assert.Equal(1, second.EventsExamined);
        var alert = Assert.Single(await AlertsAsync(w, DetectorRules.BruteForce));
        Assert.Equal(("ip", "198.51.100.2", 5), (alert.SubjectType, alert.SubjectId, alert.Occurrences));
        Assert.Contains("\"failures\":5", alert.EvidenceJson);
        Assert.Equal(5, AlertService.ParseIds(alert.AuditEventIds).Count);
        Assert.Single(await AlertsAsync(w, DetectorRules.BruteForce, other));
        Assert.Empty(await AlertsAsync(w, DetectorRules.BruteForce, outsider));
        var detail = await w.Services.GetRequiredService<AlertService>().GetAsync(w.ProjectId, alert.Id);
        Assert.Equal(5, detail.Timeline.Count); // organization-chain events shown in the alert's timeline

        // Failures naming no account concern every project.
        await AppendAsync(w, Enumerable.Range(0, 6).Select(i => SignInFailed("198.51.100.3", t.AddHours(2).AddSeconds(i * 30))));
        await ScanAsync(w);
        Assert.Single(await AlertsAsync(w, DetectorRules.BruteForce, outsider));

        // Per-project thresholds: raised to 10, the next burst of 6 stays quiet here but fires elsewhere.
        await w.Services.GetRequiredService<DetectorSettingsService>().UpdateAsync(w.ProjectId, DetectorRules.BruteForce, true,
            new Dictionary<string, double> { ["failures"] = 10, ["window_minutes"] = 10 }, w.Admin);
        await AppendAsync(w, Enumerable.Range(0, 6).Select(i => SignInFailed("198.51.100.4", t.AddHours(4).AddSeconds(i * 30))));
        await ScanAsync(w);
        Assert.DoesNotContain(await AlertsAsync(w, DetectorRules.BruteForce), a => a.SubjectId == "198.51.100.4");
        Assert.Contains(await AlertsAsync(w, DetectorRules.BruteForce, outsider), a => a.SubjectId == "198.51.100.4");
        var bad = await Assert.ThrowsAsync<DomainException>(() => w.Services.GetRequiredService<DetectorSettingsService>().UpdateAsync(w.ProjectId,
            DetectorRules.BruteForce, true, new Dictionary<string, double> { ["failures"] = 0 }, w.Admin));
        Assert.Equal("failures", bad.Field);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Off_hours_fires_outside_the_learned_hours_only_after_enough_history(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        var key = Guid.CreateVersion7().ToString();
        var fresh = Guid.CreateVersion7().ToString();
        await AppendAsync(w, Routine(w.ProjectId, key, 10));
        await AppendAsync(w, Routine(w.ProjectId, fresh, 2, fromDay: 8));
        var first = await ScanAsync(w);
        Assert.Equal(48, first.EventsExamined);
        Assert.Empty(await AlertsAsync(w));

        // Inside usual hours: nothing. A new key at 03:00 has no baseline yet: nothing.
        await AppendAsync(w, [Call(w.ProjectId, key, Day0.AddDays(10).AddHours(10)), Call(w.ProjectId, fresh, Day0.AddDays(10).AddHours(3))]);
        await ScanAsync(w);
        Assert.Empty(await AlertsAsync(w));

        await AppendAsync(w, [Call(w.ProjectId, key, Day0.AddDays(10).AddHours(3).AddMinutes(17))]);
        await ScanAsync(w);
        var alert = Assert.Single(await AlertsAsync(w, DetectorRules.OffHours));
        Assert.Equal(("api_key", key), (alert.SubjectType, alert.SubjectId));
        Assert.Contains("usual_hours_utc", alert.EvidenceJson);
        Assert.Contains("03:00", alert.Description);
        Assert.Single(AlertService.ParseIds(alert.AuditEventIds));
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task New_source_fires_for_a_settled_key_seen_from_a_new_address_or_agent(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        var key = Guid.CreateVersion7().ToString();
        var fresh = Guid.CreateVersion7().ToString();
        await AppendAsync(w, Routine(w.ProjectId, key, 5));
        // A brand-new key using two addresses on its first day is still being learned.
        await AppendAsync(w, [Call(w.ProjectId, fresh, Day0.AddDays(4).AddHours(9), ip: "10.0.0.8"), Call(w.ProjectId, fresh, Day0.AddDays(4).AddHours(10), ip: "10.0.0.9")]);
        await ScanAsync(w);
        Assert.Empty(await AlertsAsync(w));

        await AppendAsync(w, [Call(w.ProjectId, key, Day0.AddDays(5).AddHours(11), ip: "203.0.113.50", ua: "python-requests/2.31")]);
        await ScanAsync(w);
        var alert = Assert.Single(await AlertsAsync(w, DetectorRules.NewSource));
        Assert.Equal(key, alert.SubjectId);
        Assert.Contains("203.0.113.50", alert.EvidenceJson);
        Assert.Contains("python-requests/2.31", alert.EvidenceJson);
        Assert.NotEmpty(AlertService.ParseIds(alert.AuditEventIds));

        // Seen again from that address: known now.
        await AppendAsync(w, [Call(w.ProjectId, key, Day0.AddDays(6).AddHours(11), ip: "203.0.113.50", ua: "python-requests/2.31")]);
        await ScanAsync(w);
        Assert.Single(await AlertsAsync(w, DetectorRules.NewSource));
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Volume_spike_fires_far_above_the_baseline_and_not_for_ordinary_variation(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        var key = Guid.CreateVersion7().ToString();
        var other = Guid.CreateVersion7().ToString();
        await AppendAsync(w, Routine(w.ProjectId, key, 10));
        await AppendAsync(w, Routine(w.ProjectId, other, 10));
        await AppendAsync(w, [Call(w.ProjectId, other, Day0.AddDays(10).AddHours(9), rows: 130)]);
        await AppendAsync(w, [Call(w.ProjectId, key, Day0.AddDays(10).AddHours(9), rows: 5000), Call(w.ProjectId, key, Day0.AddDays(10).AddHours(11), rows: 4000)]);
        await ScanAsync(w);
        var alert = Assert.Single(await AlertsAsync(w, DetectorRules.VolumeSpike));
        Assert.Equal(key, alert.SubjectId);
        Assert.Contains("\"rows\":9000", alert.EvidenceJson);
        Assert.Contains("median_rows_per_day", alert.EvidenceJson);
        Assert.Equal(2, AlertService.ParseIds(alert.AuditEventIds).Count);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Bulk_export_fires_on_a_huge_result_or_many_sensitive_queries_in_a_short_window(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        var (big, spree, calm, internalOnly) = (Guid.CreateVersion7().ToString(), Guid.CreateVersion7().ToString(), Guid.CreateVersion7().ToString(), Guid.CreateVersion7().ToString());
        var t = Day0.AddHours(10);
        await AppendAsync(w, [Call(w.ProjectId, big, t, rows: 25_000)]);
        await AppendAsync(w, Enumerable.Range(0, 5).Select(i => Call(w.ProjectId, spree, t.AddMinutes(i * 2), query: $"q-{i}", classes: ["pii"])));
        await AppendAsync(w, Enumerable.Range(0, 4).Select(i => Call(w.ProjectId, calm, t.AddMinutes(i * 2), query: $"q-{i}", classes: ["pii", "financial"])));
        await AppendAsync(w, Enumerable.Range(0, 6).Select(i => Call(w.ProjectId, internalOnly, t.AddMinutes(i), query: $"q-{i}", classes: ["internal"])));
        // The same sensitive query over and over is one query, not many.
        await AppendAsync(w, Enumerable.Range(0, 8).Select(i => Call(w.ProjectId, calm, t.AddHours(1).AddMinutes(i), query: "q-0", classes: ["pii"])));
        await ScanAsync(w);
        var alerts = await AlertsAsync(w, DetectorRules.BulkExport);
        Assert.Equal(new[] { big, spree }.Order(), alerts.Select(a => a.SubjectId).Order());
        Assert.All(alerts, a => Assert.Equal(AlertTypes.Exfiltration, a.Type));
        Assert.Contains("distinct_sensitive_queries", alerts.Single(a => a.SubjectId == spree).EvidenceJson);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Privilege_change_fires_on_admin_grants_and_broad_keys_but_not_on_ordinary_changes(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        var promoted = await w.MemberAsync(Roles.User);
        var other = await w.MemberAsync(Roles.User);
        await using (var scope = w.Services.CreateAsyncScope())
        {
            var members = scope.ServiceProvider.GetRequiredService<MembershipService>();
            var rows = (await members.ListAsync(w.ProjectId, 0, 50)).Items;
            await members.ChangeRoleAsync(w.ProjectId, rows.Single(m => m.UserId == promoted).MemberId, Roles.Admin, w.Admin);
            await members.ChangeRoleAsync(w.ProjectId, rows.Single(m => m.UserId == other).MemberId, Roles.Data, w.Admin);
            // Turning off a member's two-factor sign-in weakens the account; resetting a password alone does not alert.
            var users = scope.ServiceProvider.GetRequiredService<Microsoft.AspNetCore.Identity.UserManager<Portal.Domain.Tenancy.PortalUser>>();
            var otherUser = (await users.FindByIdAsync(other.ToString()))!;
            await users.ResetAuthenticatorKeyAsync(otherUser);
            await users.SetTwoFactorEnabledAsync(otherUser, true);
            await members.ResetTwoFactorAsync(w.ProjectId, rows.Single(m => m.UserId == other).MemberId, w.Admin);
            await members.ResetPasswordAsync(w.ProjectId, rows.Single(m => m.UserId == other).MemberId, w.Admin);
        }
        var broad = await w.Keys.CreateAsync(w.ProjectId, new CreateApiKeyRequest("root agent", Roles.Admin), w.Admin);
        await w.Keys.CreateAsync(w.ProjectId, new CreateApiKeyRequest("narrow", Roles.User, [$"query:{Guid.CreateVersion7()}"]), w.Admin);
        await ScanAsync(w);
        var alerts = await AlertsAsync(w, DetectorRules.PrivilegeChange);
        Assert.Equal(3, alerts.Count);
        var admin = alerts.Single(a => a.SubjectType == "user" && a.Title.StartsWith("Admin role"));
        Assert.Equal((promoted, AlertSeverities.Critical), (admin.UserId, admin.Severity));
        var twoFactor = alerts.Single(a => a.Title.StartsWith("Two-factor sign-in turned off"));
        Assert.Equal((other, AlertSeverities.Warning), (twoFactor.UserId, twoFactor.Severity));
        Assert.Equal(broad.Key.Id, alerts.Single(a => a.SubjectType == "api_key").KeyId);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Dormant_key_fires_when_a_long_unused_key_is_active_again(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        var (sleeper, regular) = (Guid.CreateVersion7().ToString(), Guid.CreateVersion7().ToString());
        await AppendAsync(w, [Call(w.ProjectId, sleeper, Day0.AddHours(10)), Call(w.ProjectId, regular, Day0.AddHours(10))]);
        await ScanAsync(w);
        await AppendAsync(w, [Call(w.ProjectId, regular, Day0.AddDays(20).AddHours(10)), Call(w.ProjectId, sleeper, Day0.AddDays(45).AddHours(10))]);
        await ScanAsync(w);
        var alert = Assert.Single(await AlertsAsync(w, DetectorRules.DormantKey));
        Assert.Equal(sleeper, alert.SubjectId);
        Assert.Contains("\"idle_days\":45", alert.EvidenceJson);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Scans_are_idempotent_and_continue_from_the_watermark_after_a_restart(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        var key = Guid.CreateVersion7().ToString();
        await AppendAsync(w, Routine(w.ProjectId, key, 10));
        await AppendAsync(w, [Call(w.ProjectId, key, Day0.AddDays(10).AddHours(3), rows: 50_000, ip: "203.0.113.7")]);
        var first = await ScanAsync(w);
        Assert.Equal(41, first.EventsExamined);
        var raised = await AlertsAsync(w);
        Assert.Equal([DetectorRules.BulkExport, DetectorRules.NewSource, DetectorRules.OffHours, DetectorRules.VolumeSpike], raised.Select(a => a.Rule).Order().ToArray());

        var again = await ScanAsync(w);
        Assert.Equal((0L, 0), (again.EventsExamined, again.Alerts.Created + again.Alerts.Updated));

        // Re-run the same window from scratch (watermark and learned state gone, alerts kept): nothing new.
        await using (var db = w.Db.NewContext())
        {
            await db.Database.ExecuteSqlRawAsync("DELETE FROM security_scan_watermarks");
            await db.Database.ExecuteSqlRawAsync("DELETE FROM security_activity_profiles");
            await db.Database.ExecuteSqlRawAsync("DELETE FROM security_known_sources");
        }
        var rerun = await ScanAsync(w);
        Assert.Equal(41, rerun.EventsExamined);
        Assert.Equal(0, rerun.Alerts.Created + rerun.Alerts.Updated);
        Assert.Equal(4, rerun.Alerts.AlreadyKnown);
        Assert.Equal(4, (await AlertsAsync(w)).Count);

        // A new process (a worker restart, or another worker) continues from the stored watermark.
        await using (var sp = w.Db.Services(w.Clock))
        {
            await sp.GetRequiredService<AuditWriter>().AppendAsync(Call(w.ProjectId, key, Day0.AddDays(10).AddHours(9)));
            var later = await sp.GetRequiredService<AnomalyScanner>().ScanAsync();
            Assert.Equal(1, later.EventsExamined);
        }
        await using (var db = w.Db.NewContext())
        {
            var mark = await db.Set<ScanWatermark>().SingleAsync(m => m.ChainId == w.ProjectId);
            Assert.Equal(1, mark.EventsExamined);
        }
    }
}
