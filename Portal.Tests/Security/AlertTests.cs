using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Portal.Domain;
using Portal.Domain.Audit;
using Portal.Domain.Gateway;
using Portal.Domain.Integrations;
using Portal.Domain.Security.Alerts;
using Portal.Domain.Security.ApiKeys;
using Portal.Domain.Security.Detectors;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Security;

public class AlertTests
{
    private static AlertFinding Finding(Guid project, DateTimeOffset at, string subject = "10.9.9.9", string rule = DetectorRules.BruteForce) =>
        new(project, AlertTypes.BruteForce, rule, AlertSeverities.Warning, "scan", "ip", subject, $"IP {subject}", null, null,
            $"Brute force from {subject}", "Many failures.", new { observed = 7 }, [Guid.CreateVersion7()], at, at);

    private static AlertService Alerts(SecurityWorld w) => w.Services.GetRequiredService<AlertService>();

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Same_fingerprint_within_the_window_updates_one_alert_and_notifies_triage_staff_once(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        var security = await w.MemberAsync(Roles.Security);
        var compliance = await w.MemberAsync(Roles.Compliance);
        var t0 = w.Clock.GetUtcNow();

        var first = await Alerts(w).RaiseAsync([Finding(w.ProjectId, t0)]);
        Assert.Equal(1, first.Created);
        var again = await Alerts(w).RaiseAsync([Finding(w.ProjectId, t0.AddMinutes(20)), Finding(w.ProjectId, t0.AddMinutes(40))]);
        Assert.Equal(new RaiseResult(0, 2, 0, 0), again);
        // The same sighting again (a re-run) is already known and changes nothing.
        Assert.Equal(new RaiseResult(0, 0, 0, 1), await Alerts(w).RaiseAsync([Finding(w.ProjectId, t0.AddMinutes(40))]));

        var page = await Alerts(w).ListAsync(w.ProjectId, new AlertFilter(ActiveOnly: true), 0, 50);
        var alert = Assert.Single(page.Items);
        Assert.Equal(3, alert.Occurrences);
        Assert.Equal(t0, alert.FirstSeenAt);
        Assert.Equal(t0.AddMinutes(40), alert.LastSeenAt);
        Assert.Equal(3, AlertService.ParseIds((await Alerts(w).GetAsync(w.ProjectId, alert.Id)).Alert.AuditEventIds).Count);

        // Past the window it is a new incident.
        Assert.Equal(1, (await Alerts(w).RaiseAsync([Finding(w.ProjectId, t0.AddMinutes(40) + AlertService.DedupeWindow + TimeSpan.FromMinutes(1))])).Created);
        Assert.Equal(2, (await Alerts(w).ListAsync(w.ProjectId, new AlertFilter(), 0, 50)).Total);

        await using var db = w.Db.NewContext();
        var outbox = await db.OutboxMessages.Where(m => m.ProjectId == w.ProjectId).Select(m => m.EventType).ToListAsync();
        Assert.Equal(2, outbox.Count(e => e == OutboxEvents.AlertCreated));
        Assert.Equal(2, outbox.Count(e => e == OutboxEvents.AlertUpdated));
        // Admin and security hold alerts.triage; compliance only reads alerts and is not paged.
        var notified = await db.Notifications.Where(n => n.ProjectId == w.ProjectId).Select(n => n.UserId).ToListAsync();
        Assert.Equal(2, notified.Count(u => u == security));
        Assert.Equal(2, notified.Count(u => u == w.Admin));
        Assert.DoesNotContain(compliance, notified);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Dismissing_as_false_positive_suppresses_similar_alerts_until_the_suppression_is_removed(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        var t0 = w.Clock.GetUtcNow();
        await Alerts(w).RaiseAsync([Finding(w.ProjectId, t0)]);
        var alert = (await Alerts(w).ListAsync(w.ProjectId, new AlertFilter(), 0, 10)).Items.Single();

        var noNote = await Assert.ThrowsAsync<DomainException>(() => Alerts(w).DismissAsync(w.ProjectId, alert.Id, " ", 7, w.Admin));
        Assert.Equal("note", noNote.Field);
        await Assert.ThrowsAsync<DomainException>(() => Alerts(w).DismissAsync(w.ProjectId, alert.Id, "scanner", 400, w.Admin));
        await Alerts(w).DismissAsync(w.ProjectId, alert.Id, "Our vulnerability scanner", 7, w.Admin);

        w.Clock.Advance(TimeSpan.FromDays(2));
        var later = w.Clock.GetUtcNow();
        Assert.Equal(1, (await Alerts(w).RaiseAsync([Finding(w.ProjectId, later)])).Suppressed);
        // Another subject is not suppressed.
        Assert.Equal(1, (await Alerts(w).RaiseAsync([Finding(w.ProjectId, later, "10.1.1.1")])).Created);

        var suppression = Assert.Single(await Alerts(w).SuppressionsAsync(w.ProjectId));
        Assert.Equal("10.9.9.9", suppression.SubjectId);
        Assert.Equal(later.AddDays(5), suppression.ExpiresAt);
        var other = await w.OtherProjectAsync();
        await Assert.ThrowsAsync<DomainException>(() => Alerts(w).RemoveSuppressionAsync(other, suppression.Id, w.Admin));
        await Alerts(w).RemoveSuppressionAsync(w.ProjectId, suppression.Id, w.Admin);
        Assert.Empty(await Alerts(w).SuppressionsAsync(w.ProjectId));
        Assert.Equal(1, (await Alerts(w).RaiseAsync([Finding(w.ProjectId, later.AddMinutes(1))])).Created);

        // Suppressions expire on their own.
        await Alerts(w).DismissAsync(w.ProjectId, (await Alerts(w).ListAsync(w.ProjectId, new AlertFilter(Status: AlertStatuses.Open), 0, 10)).Items.First(a => a.SubjectId == "10.9.9.9").Id, "again", 1, w.Admin);
        w.Clock.Advance(TimeSpan.FromDays(1) + TimeSpan.FromMinutes(1));
        Assert.Equal(1, (await Alerts(w).RaiseAsync([Finding(w.ProjectId, w.Clock.GetUtcNow())])).Created);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Triage_follows_the_state_machine_requires_notes_and_audits_every_step(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        var analyst = await w.MemberAsync(Roles.Security);
        await Alerts(w).RaiseAsync([Finding(w.ProjectId, w.Clock.GetUtcNow())]);
        var id = (await Alerts(w).ListAsync(w.ProjectId, new AlertFilter(), 0, 10)).Items.Single().Id;

        w.Clock.Advance(TimeSpan.FromMinutes(5));
        await Alerts(w).AcknowledgeAsync(w.ProjectId, id, analyst);
        var twice = await Assert.ThrowsAsync<DomainException>(() => Alerts(w).AcknowledgeAsync(w.ProjectId, id, analyst));
        Assert.Equal(ErrorKind.Conflict, twice.Kind);
        Assert.Contains("acknowledged", twice.Message);
        var reopenActive = await Assert.ThrowsAsync<DomainException>(() => Alerts(w).ReopenAsync(w.ProjectId, id, null, analyst));
        Assert.Equal(ErrorKind.Conflict, reopenActive.Kind);

        var noNote = await Assert.ThrowsAsync<DomainException>(() => Alerts(w).ResolveAsync(w.ProjectId, id, null, analyst));
        Assert.Equal((ErrorKind.Validation, "note"), (noNote.Kind, noNote.Field));
        await Assert.ThrowsAsync<DomainException>(() => Alerts(w).ResolveAsync(w.ProjectId, id, new string('x', 2001), analyst));
        w.Clock.Advance(TimeSpan.FromMinutes(55));
        await Alerts(w).ResolveAsync(w.ProjectId, id, "Blocked the IP at the firewall.", analyst);
        var resolvedAgain = await Assert.ThrowsAsync<DomainException>(() => Alerts(w).ResolveAsync(w.ProjectId, id, "again", analyst));
        Assert.Equal(ErrorKind.Conflict, resolvedAgain.Kind);
        var dismissResolved = await Assert.ThrowsAsync<DomainException>(() => Alerts(w).DismissAsync(w.ProjectId, id, "fp", 0, analyst));
        Assert.Equal(ErrorKind.Conflict, dismissResolved.Kind);

        var counters = await Alerts(w).CountersAsync(w.ProjectId);
        Assert.Equal(TimeSpan.FromMinutes(5), counters.MeanTimeToAcknowledge);
        Assert.Equal(TimeSpan.FromMinutes(60), counters.MeanTimeToResolve);
        Assert.Equal(0, counters.Active);

        await Alerts(w).ReopenAsync(w.ProjectId, id, "It came back", analyst);
        var detail = await Alerts(w).GetAsync(w.ProjectId, id);
        Assert.Equal(AlertStatuses.Open, detail.Alert.Status);
        Assert.Equal(["acknowledged", "resolved", "reopened"], detail.Changes.Select(c => c.Action));
        Assert.Equal("Blocked the IP at the firewall.", detail.Changes[1].Note);

        await using var db = w.Db.NewContext();
        var events = await db.AuditEvents.Where(e => e.ProjectId == w.ProjectId && e.EventType.StartsWith("alert.")).OrderBy(e => e.Seq).ToListAsync();
        Assert.Equal(["alert.acknowledged", "alert.resolved", "alert.reopened"], events.Select(e => e.EventType));
        Assert.All(events, e => Assert.Equal(analyst.ToString(), e.ActorId));
        Assert.Contains("\"status\":\"acknowledged\"", events[1].BeforeState);
        Assert.Contains("\"status\":\"resolved\"", events[1].AfterState);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Other_projects_ids_are_not_found_and_roles_without_triage_are_forbidden(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        var user = await w.MemberAsync(Roles.User);
        var compliance = await w.MemberAsync(Roles.Compliance);
        var other = await w.OtherProjectAsync();
        await Alerts(w).RaiseAsync([Finding(other, w.Clock.GetUtcNow())]);
        var foreign = (await Alerts(w).ListAsync(other, new AlertFilter(), 0, 10)).Items.Single().Id;
        await Alerts(w).RaiseAsync([Finding(w.ProjectId, w.Clock.GetUtcNow())]);
        var mine = (await Alerts(w).ListAsync(w.ProjectId, new AlertFilter(), 0, 10)).Items.Single().Id;

        Assert.Equal(ErrorKind.NotFound, (await Assert.ThrowsAsync<DomainException>(() => Alerts(w).GetAsync(w.ProjectId, foreign))).Kind);
        Assert.Equal(ErrorKind.NotFound, (await Assert.ThrowsAsync<DomainException>(() => Alerts(w).AcknowledgeAsync(w.ProjectId, foreign, w.Admin))).Kind);
        Assert.Equal(ErrorKind.NotFound, (await Assert.ThrowsAsync<DomainException>(() => Alerts(w).BulkResolveAsync(w.ProjectId, [mine, foreign], "x", w.Admin))).Kind);
        Assert.Equal(ErrorKind.NotFound, (await Assert.ThrowsAsync<DomainException>(() => Alerts(w).RevokeKeyAsync(w.ProjectId, foreign, "x", w.Admin))).Kind);
        // The bulk action changed nothing.
        Assert.Equal(AlertStatuses.Open, (await Alerts(w).GetAsync(w.ProjectId, mine)).Alert.Status);

        foreach (var who in new[] { user, compliance })
        {
            Assert.Equal(ErrorKind.Forbidden, (await Assert.ThrowsAsync<DomainException>(() => Alerts(w).AcknowledgeAsync(w.ProjectId, mine, who))).Kind);
            Assert.Equal(ErrorKind.Forbidden, (await Assert.ThrowsAsync<DomainException>(() => Alerts(w).SuspendMemberAsync(w.ProjectId, mine, who))).Kind);
            Assert.Equal(ErrorKind.Forbidden, (await Assert.ThrowsAsync<DomainException>(() =>
                w.Services.GetRequiredService<DetectorSettingsService>().UpdateAsync(w.ProjectId, DetectorRules.BruteForce, false, null, who))).Kind);
        }
        var badAssignee = await Assert.ThrowsAsync<DomainException>(() => Alerts(w).AssignAsync(w.ProjectId, mine, user, w.Admin));
        Assert.Equal("assignee", badAssignee.Field);
        await Assert.ThrowsAsync<DomainException>(() => Alerts(w).ListAsync(w.ProjectId, new AlertFilter(Status: "closed"), 0, 10));
        await Assert.ThrowsAsync<DomainException>(() => Alerts(w).BulkAcknowledgeAsync(w.ProjectId, [], w.Admin));
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Containment_revokes_the_key_suspends_the_member_and_tightens_the_limit_through_their_services(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        var analyst = await w.MemberAsync(Roles.Security);
        var suspect = await w.MemberAsync(Roles.User);
        var key = await w.Keys.CreateAsync(w.ProjectId, new CreateApiKeyRequest("agent", Roles.User), w.Admin);
        var now = w.Clock.GetUtcNow();
        await Alerts(w).RaiseAsync([
            new AlertFinding(w.ProjectId, AlertTypes.Injection, DetectorRules.InjectionAttempt, AlertSeverities.Warning, "gateway", "api_key", key.Key.Id.ToString(), "API key",
                key.Key.Id, null, "Injection", "d", new { }, [], now, now),
            new AlertFinding(w.ProjectId, AlertTypes.Anomaly, DetectorRules.OffHours, AlertSeverities.Warning, "scan", "user", suspect.ToString(), "suspect",
                null, suspect, "Off hours", "d", new { }, [], now, now),
        ]);
        var alerts = (await Alerts(w).ListAsync(w.ProjectId, new AlertFilter(), 0, 10)).Items;
        var keyAlert = alerts.Single(a => a.Type == AlertTypes.Injection).Id;
        var userAlert = alerts.Single(a => a.Type == AlertTypes.Anomaly).Id;

        await Alerts(w).TightenLimitAsync(w.ProjectId, keyAlert, 5, 60, analyst);
        await Alerts(w).TightenLimitAsync(w.ProjectId, keyAlert, 2, 60, analyst);
        var limit = Assert.Single((await w.Limits.ListAsync(w.ProjectId, 0, 10)).Items);
        Assert.Equal(("key", key.Key.Id.ToString("D"), 2), (limit.Scope, limit.Subject, limit.MaxRequests));
        await Assert.ThrowsAsync<DomainException>(() => Alerts(w).TightenLimitAsync(w.ProjectId, keyAlert, 0, 60, analyst));

        await Alerts(w).RevokeKeyAsync(w.ProjectId, keyAlert, null, analyst);
        Assert.Equal(ApiKeyStatus.Revoked, (await w.Keys.GetAsync(w.ProjectId, key.Key.Id)).Status);
        Assert.Equal(ErrorKind.Conflict, (await Assert.ThrowsAsync<DomainException>(() => Alerts(w).RevokeKeyAsync(w.ProjectId, keyAlert, null, analyst))).Kind);
        Assert.Equal(ErrorKind.Validation, (await Assert.ThrowsAsync<DomainException>(() => Alerts(w).SuspendMemberAsync(w.ProjectId, keyAlert, analyst))).Kind);

        await Alerts(w).SuspendMemberAsync(w.ProjectId, userAlert, analyst);
        await using var db = w.Db.NewContext();
        Assert.True(await db.ProjectMembers.Where(m => m.ProjectId == w.ProjectId && m.UserId == suspect).Select(m => m.Suspended).SingleAsync());

        var detail = await Alerts(w).GetAsync(w.ProjectId, keyAlert);
        Assert.True(detail.KeyRevoked);
        Assert.Equal(["contained:tighten_limit", "contained:tighten_limit", "contained:revoke_key"], detail.Changes.Select(c => c.Action));
        var types = await db.AuditEvents.Where(e => e.ProjectId == w.ProjectId).OrderBy(e => e.Seq).Select(e => e.EventType).ToListAsync();
        Assert.Equal(4, types.Count(t => t == "alert.contained"));
        Assert.Contains("api_key.revoked", types);
        Assert.Contains("member.suspended", types);
        Assert.Contains("rate_limit.created", types);
        Assert.Contains("rate_limit.updated", types);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task The_gateway_listener_raises_injection_rate_limit_denial_and_revoked_key_alerts(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        var listener = w.Services.GetServices<IGatewayEventListener>().OfType<GatewayAlertListener>().Single();
        var writer = w.Services.GetRequiredService<AuditWriter>();
        var keyId = Guid.CreateVersion7();
        var actor = new AuditActor("api_key", keyId.ToString(), Role: "user", ClientIp: "203.0.113.9", UserAgent: "curl/8");

        async Task SendAsync(GatewayDenialKind? kind, string details, string eventType = GatewayService.DeniedEvent, string? action = "execute")
        {
            var draft = new AuditEventDraft { ProjectId = w.ProjectId, EventType = eventType, Actor = actor, Action = action, Details = details, Success = kind is null };
            var receipt = await writer.AppendAsync(draft);
            await listener.OnAuditedAsync(new GatewayAuditedEvent(draft, kind is { } k ? new GatewayDenial(k, "no", [], TimeSpan.FromSeconds(3)) : null, receipt), default);
            w.Clock.Advance(TimeSpan.FromSeconds(10));
        }

        const string injection = """{"keyPrefix":"gp_abcd1","outcome":"injectionBlocked","parameters":{"name":"x' OR 1=1 --"},"detail":{"injection":[{"field":"name","rule":"tautology","reason":"always-true condition"}]}}""";
        for (var i = 0; i < 3; i++) await SendAsync(GatewayDenialKind.InjectionBlocked, injection);
        await SendAsync(GatewayDenialKind.RateLimited, """{"keyPrefix":"gp_abcd1","outcome":"rateLimited","detail":{"limit":"key","exceeded":"requests"}}""");
        for (var i = 0; i < 4; i++) await SendAsync(GatewayDenialKind.Forbidden, """{"keyPrefix":"gp_abcd1","outcome":"forbidden"}""");
        var list = await Alerts(w).ListAsync(w.ProjectId, new AlertFilter(), 0, 50);
        Assert.DoesNotContain(list.Items, a => a.Rule == DetectorRules.RepeatedDenials); // 4 < 5
        await SendAsync(GatewayDenialKind.NotFound, """{"keyPrefix":"gp_abcd1","outcome":"notFound"}""");
        await SendAsync(GatewayDenialKind.Unauthenticated, """{"keyPrefix":"gp_abcd1","outcome":"unauthenticated","reason":"revoked"}""", GatewayService.KeyRejectedEvent, "revoked");
        // A successful, unflagged call raises nothing.
        await SendAsync(null, """{"keyPrefix":"gp_abcd1","outcome":"executed"}""", GatewayService.ExecutedEvent);

        list = await Alerts(w).ListAsync(w.ProjectId, new AlertFilter(), 0, 50);
        Assert.Equal(4, list.Total);
        var inj = list.Items.Single(a => a.Type == AlertTypes.Injection);
        Assert.Equal(3, inj.Occurrences);
        var detail = await Alerts(w).GetAsync(w.ProjectId, inj.Id);
        Assert.Contains("tautology", detail.Alert.EvidenceJson);
        Assert.Contains("x' OR 1=1 --", detail.Alert.EvidenceJson);
        Assert.Equal(3, detail.Timeline.Count);
        Assert.Equal(keyId, detail.Alert.KeyId);
        Assert.Equal(AlertSeverities.Warning, list.Items.Single(a => a.Type == AlertTypes.RateLimit).Severity);
        var denials = list.Items.Single(a => a.Rule == DetectorRules.RepeatedDenials);
        Assert.Equal(5, AlertService.ParseIds((await Alerts(w).GetAsync(w.ProjectId, denials.Id)).Alert.AuditEventIds).Count);
        Assert.Equal(AlertSeverities.Critical, list.Items.Single(a => a.Rule == DetectorRules.RevokedKeyUse).Severity);
        // Critical first in the queue.
        Assert.Equal(AlertSeverities.Critical, list.Items[0].Severity);

        // A rule switched off raises nothing.
        await w.Services.GetRequiredService<DetectorSettingsService>().UpdateAsync(w.ProjectId, DetectorRules.RateLimitBreach, false, null, w.Admin);
        w.Clock.Advance(TimeSpan.FromHours(3));
        await SendAsync(GatewayDenialKind.RateLimited, """{"outcome":"rateLimited"}""");
        Assert.Equal(4, (await Alerts(w).ListAsync(w.ProjectId, new AlertFilter(), 0, 50)).Total);
    }
}
