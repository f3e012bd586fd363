using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Portal.Domain.Audit;
using Portal.Domain.Gateway;
using Portal.Domain.Persistence;
using Portal.Domain.Security.Detectors;

namespace Portal.Domain.Security.Alerts;

/// <summary>
/// Real-time detection on the gateway seam (<see cref="IGatewayEventListener"/>): injection attempts, rate-limit
/// breaches, repeated forbidden/not-found denials past a threshold, and use of an expired, replaced or revoked key.
/// Reads only what the audited event says (actor, IP, details JSON), so it works for any principal the gateway audits.
/// Keys nobody recognises belong to no project; the anomaly scan's brute-force rule covers them.
/// </summary>
public sealed class GatewayAlertListener(AlertService alerts, DetectorSettingsService settings, IDbContextFactory<PortalDbContext> dbFactory, TimeProvider clock)
    : IGatewayEventListener
{
    public async ValueTask OnAuditedAsync(GatewayAuditedEvent e, CancellationToken ct)
    {
        var d = e.Draft;
        if (d.ProjectId == AuditEventDraft.OrganizationChain) return;
        var finding = await DetectAsync(e, ct);
        if (finding is not null) await alerts.RaiseAsync([finding], ct);
    }

    private async Task<AlertFinding?> DetectAsync(GatewayAuditedEvent e, CancellationToken ct)
    {
        var d = e.Draft;
        var at = d.OccurredAt ?? clock.GetUtcNow();
        using var details = Parse(d.Details);
        var root = details?.RootElement;
        var prefix = Text(root, "keyPrefix");
        var actorId = d.Actor.Id;
        Guid? keyId = d.Actor.Type == "api_key" && Guid.TryParse(actorId, out var k) ? k : null;
        Guid? userId = d.Actor.Type == "user" && Guid.TryParse(actorId, out var u) ? u : null;
        var subjectType = keyId is not null ? "api_key" : userId is not null ? "user" : "ip";
        var subjectId = keyId?.ToString() ?? userId?.ToString() ?? d.Actor.ClientIp ?? "unknown";
        var label = keyId is not null ? (prefix is null ? "API key" : $"API key {prefix}") : d.Actor.Email ?? subjectId;
        var who = keyId is not null ? label : userId is not null ? (d.Actor.Email ?? "a user") : $"a caller from {subjectId}";

        AlertFinding Make(string type, string rule, string severity, string title, string description, object evidence) =>
            new(d.ProjectId, type, rule, severity, "gateway", subjectType, subjectId, label, keyId, userId, title, description, evidence, [e.Receipt.Id], at, at);

        var kind = e.Denial?.Kind;
        if (kind == GatewayDenialKind.InjectionBlocked || (e.Denial is null && Has(root, "injection")))
        {
            if (!await EnabledAsync(d.ProjectId, DetectorRules.InjectionAttempt, ct)) return null;
            var blocked = kind == GatewayDenialKind.InjectionBlocked;
            var matches = Injection(root, blocked);
            return Make(Alerts.AlertTypes.Injection, DetectorRules.InjectionAttempt, blocked ? AlertSeverities.Warning : AlertSeverities.Critical,
                blocked ? $"SQL injection attempt blocked ({label})" : $"Query ran with a value that looks like SQL injection ({label})",
                $"{who} sent parameter values that look like SQL injection{(blocked ? "; the gateway refused the call." : "; in flag mode the query ran and its result was returned.")}",
                new
                {
                    explanation = DetectorRules.Get(DetectorRules.InjectionAttempt).Explanation, outcome = blocked ? "blocked" : "flagged (ran)",
                    query_id = Text(root, "queryId"), matched = matches, parameters = Raw(root, "parameters"), client_ip = d.Actor.ClientIp, user_agent = d.Actor.UserAgent,
                });
        }
        if (kind == GatewayDenialKind.RateLimited)
        {
            if (!await EnabledAsync(d.ProjectId, DetectorRules.RateLimitBreach, ct)) return null;
            var detail = root is { } r && r.TryGetProperty("detail", out var x) && x.ValueKind == JsonValueKind.Object ? x : (JsonElement?)null;
            return Make(Alerts.AlertTypes.RateLimit, DetectorRules.RateLimitBreach, AlertSeverities.Warning, $"Rate limit exceeded ({label})",
                $"{who} went over a rate limit and was refused (HTTP 429).",
                new
                {
                    explanation = DetectorRules.Get(DetectorRules.RateLimitBreach).Explanation, limit_scope = Text(detail, "limit"), exceeded = Text(detail, "exceeded"),
                    retry_after_seconds = e.Denial!.RetryAfterSeconds, query_id = Text(root, "queryId"), client_ip = d.Actor.ClientIp,
                });
        }
        if (kind is GatewayDenialKind.Forbidden or GatewayDenialKind.NotFound && actorId is not null)
        {
            var s = await settings.GetAsync(d.ProjectId, DetectorRules.RepeatedDenials, ct);
            if (!s.Enabled) return null;
            var window = TimeSpan.FromMinutes(s["window_minutes"]);
            var since = at - window;
            await using var db = await dbFactory.CreateDbContextAsync(ct);
            var recent = await db.AuditEvents.AsNoTracking()
                .Where(x => x.ProjectId == d.ProjectId && x.ActorId == actorId && x.OccurredAt >= since && x.EventType == GatewayService.DeniedEvent
                            && x.Details != null && (x.Details.Contains("\"outcome\":\"forbidden\"") || x.Details.Contains("\"outcome\":\"notFound\"")))
                .OrderByDescending(x => x.OccurredAt).Take(MaxRecent).Select(x => x.Id).ToListAsync(ct);
            if (recent.Count < s["denials"]) return null;
            return Make(Alerts.AlertTypes.Unauthorized, DetectorRules.RepeatedDenials, AlertSeverities.Warning, $"Repeated access denials ({label})",
                $"{who} was refused {recent.Count}{(recent.Count == MaxRecent ? "+" : "")} times within {s["window_minutes"]:0} minutes (forbidden or unknown queries).",
                new
                {
                    explanation = s.Definition.Explanation, threshold = new { denials = s["denials"], window_minutes = s["window_minutes"] },
                    observed = recent.Count, last_outcome = kind.ToString(), query_id = Text(root, "queryId"), client_ip = d.Actor.ClientIp,
                }) with { EventIds = recent };
        }
        if (kind == GatewayDenialKind.Unauthenticated && d.Action is "expired" or "revoked" or "superseded")
        {
            if (!await EnabledAsync(d.ProjectId, DetectorRules.RevokedKeyUse, ct)) return null;
            var expired = d.Action == "expired";
            return Make(Alerts.AlertTypes.Unauthorized, DetectorRules.RevokedKeyUse, expired ? AlertSeverities.Warning : AlertSeverities.Critical,
                $"{(expired ? "Expired" : d.Action == "revoked" ? "Revoked" : "Replaced")} API key used ({label})",
                $"Someone presented {label}, which is {(expired ? "expired" : d.Action == "revoked" ? "revoked" : "replaced by a rotated key")}, from {d.Actor.ClientIp ?? "an unknown address"}.",
                new
                {
                    explanation = DetectorRules.Get(DetectorRules.RevokedKeyUse).Explanation, reason = d.Action, key_prefix = prefix,
                    client_ip = d.Actor.ClientIp, user_agent = d.Actor.UserAgent,
                });
        }
        return null;
    }

    private const int MaxRecent = 50;

    private async Task<bool> EnabledAsync(Guid projectId, string rule, CancellationToken ct) => (await settings.GetAsync(projectId, rule, ct)).Enabled;

    private static JsonDocument? Parse(string? json)
    {
        if (string.IsNullOrEmpty(json)) return null;
        try { return JsonDocument.Parse(json); }
        catch (JsonException) { return null; }
    }

    private static bool Has(JsonElement? root, string name) =>
        root is { ValueKind: JsonValueKind.Object } r && r.TryGetProperty(name, out var v) && v.ValueKind is not JsonValueKind.Null and not JsonValueKind.Undefined;

    private static string? Text(JsonElement? root, string name) =>
        root is { ValueKind: JsonValueKind.Object } r && r.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v.ToString() : null;

    private static object? Raw(JsonElement? root, string name) =>
        root is { ValueKind: JsonValueKind.Object } r && r.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Object ? v.Clone() : null;

    private static List<object> Injection(JsonElement? root, bool blocked)
    {
        var list = new List<object>();
        JsonElement arr = default;
        var found = blocked
            ? root is { ValueKind: JsonValueKind.Object } r && r.TryGetProperty("detail", out var det) && det.ValueKind == JsonValueKind.Object && det.TryGetProperty("injection", out arr)
            : root is { ValueKind: JsonValueKind.Object } r2 && r2.TryGetProperty("injection", out arr);
        if (!found || arr.ValueKind != JsonValueKind.Array) return list;
        foreach (var m in arr.EnumerateArray())
            list.Add(new { field = Text(m, "field"), rule = Text(m, "rule"), reason = Text(m, "reason") });
        return list;
    }
}
