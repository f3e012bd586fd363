using System.Globalization;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Portal.Domain.Audit;
using Portal.Domain.Persistence;
using Portal.Domain.Security.Alerts;
using Portal.Domain.Tenancy;

namespace Portal.Domain.Security.Detectors;

/// <summary>One tunable number of a rule: its name, what it means, its default and bounds.</summary>
public sealed record ThresholdDefinition(string Name, string Label, double Default, double Min, double Max);

/// <summary>A detector rule: what it looks for (shown in every alert it raises) and its thresholds.</summary>
public sealed record RuleDefinition(string Rule, string Name, string AlertType, bool RealTime, string Explanation, IReadOnlyList<ThresholdDefinition> Thresholds);

/// <summary>A rule as configured for one project.</summary>
public sealed record RuleSettings(RuleDefinition Definition, bool Enabled, IReadOnlyDictionary<string, double> Values, bool Customized)
{
    public double this[string name] => Values[name];
}

/// <summary>The detector rules, real time (gateway) and scheduled (anomaly scan), with their defaults.</summary>
public static class DetectorRules
{
    public const string InjectionAttempt = "injection_attempt";
    public const string RateLimitBreach = "rate_limit_breach";
    public const string RepeatedDenials = "repeated_denials";
    public const string RevokedKeyUse = "revoked_key_use";
    public const string BruteForce = "brute_force";
    public const string OffHours = "off_hours";
    public const string NewSource = "new_source";
    public const string VolumeSpike = "volume_spike";
    public const string BulkExport = "bulk_export";
    public const string PrivilegeChange = "privilege_change";
    public const string DormantKey = "dormant_key";

    public static readonly IReadOnlyList<RuleDefinition> All =
    [
        new(InjectionAttempt, "Injection attempt", AlertTypes.Injection, true,
            "A parameter value looked like SQL injection. Blocked attempts are a warning; in flag mode the query ran, which is critical.", []),
        new(RateLimitBreach, "Rate-limit breach", AlertTypes.RateLimit, true,
            "A key hit one of the project's rate limits and was refused (HTTP 429). Bursts are grouped into one alert.", []),
        new(RepeatedDenials, "Repeated denials", AlertTypes.Unauthorized, true,
            "A key was refused again and again (forbidden or unknown queries): it may be probing for data it may not read.",
            [new("denials", "Denials", 5, 2, 1000), new("window_minutes", "Within minutes", 10, 1, 1440)]),
        new(RevokedKeyUse, "Expired or revoked key used", AlertTypes.Unauthorized, true,
            "Someone presented a key that was revoked, replaced or expired. A revoked key in use often means a leaked secret.", []),
        new(BruteForce, "Brute force", AlertTypes.BruteForce, false,
            "Many failed sign-ins or API key attempts from one IP address or for one key prefix in a short time.",
            [new("failures", "Failed attempts", 5, 2, 10_000), new("window_minutes", "Within minutes", 10, 1, 1440)]),
        new(OffHours, "Off-hours access", AlertTypes.Anomaly, false,
            "A user or key was active at an hour of the day it does not usually work, learned from its own last days of activity.",
            [new("baseline_days", "Learn from last days", 14, 3, 90), new("min_history_days", "Minimum active days before it fires", 5, 1, 60),
             new("min_hour_days", "An hour is usual when active on this many days", 2, 1, 30)]),
        new(NewSource, "New source", AlertTypes.Anomaly, false,
            "A user or key was seen from an IP address or user agent it never used before, after it had settled in.",
            [new("learning_days", "Days a user or key is learned before it fires", 3, 0, 90)]),
        new(VolumeSpike, "Volume spike", AlertTypes.Anomaly, false,
            "Rows returned to a user or key in one day far above its own baseline (robust z-score over daily totals: distance from the median in median absolute deviations).",
            [new("z_threshold", "Robust z-score at least", 6, 2, 100), new("baseline_days", "Baseline days", 14, 3, 90),
             new("min_history_days", "Minimum days of history", 7, 2, 90), new("min_rows", "Minimum rows in the day", 1000, 1, 1e12)]),
        new(BulkExport, "Bulk export / exfiltration", AlertTypes.Exfiltration, false,
            "One call returned a very large result, or one user or key read many different sensitive-classified queries in a short time.",
            [new("export_rows", "Rows in one call at least", 10_000, 1, 1e12), new("sensitive_queries", "Distinct sensitive queries", 5, 2, 1000),
             new("window_minutes", "Within minutes", 15, 1, 1440)]),
        new(PrivilegeChange, "Privilege change", AlertTypes.PrivilegeChange, false,
            "Someone was made an admin, an API key with broad reach (admin role or no query scopes) was issued, a column mask was removed, or a member's two-factor sign-in was turned off.", []),
        new(DormantKey, "Dormant key active", AlertTypes.Anomaly, false,
            "An API key that had not been used for a long time is suddenly active again.",
            [new("dormant_days", "Unused for at least days", 30, 2, 3650)]),
    ];

    public static RuleDefinition Get(string rule) =>
        All.FirstOrDefault(r => r.Rule == rule) ?? throw DomainException.Invalid("rule", $"Unknown detector rule '{rule}'.");

    /// <summary>The sensitive data classifications the bulk export rule counts.</summary>
    public static readonly IReadOnlyList<string> SensitiveClassifications = ["pii", "financial", "phi", "pci", "confidential", "restricted", "secret"];
}

/// <summary>Reads and changes a project's detector thresholds. Changes are audited (detector.updated).</summary>
public sealed class DetectorSettingsService(IDbContextFactory<PortalDbContext> dbFactory, TimeProvider clock, PortalAudit audit)
{
    public async Task<IReadOnlyList<RuleSettings>> ListAsync(Guid projectId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var rows = await db.Set<DetectorSetting>().AsNoTracking().Where(s => s.ProjectId == projectId).ToListAsync(ct);
        return DetectorRules.All.Select(d => Merge(d, rows.FirstOrDefault(r => r.Rule == d.Rule))).ToList();
    }

    public async Task<RuleSettings> GetAsync(Guid projectId, string rule, CancellationToken ct = default)
    {
        var def = DetectorRules.Get(rule);
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        return Merge(def, await db.Set<DetectorSetting>().AsNoTracking().FirstOrDefaultAsync(s => s.ProjectId == projectId && s.Rule == rule, ct));
    }

    /// <summary>Settings of every project for the scan, one query.</summary>
    public static async Task<Dictionary<Guid, Dictionary<string, RuleSettings>>> LoadAllAsync(PortalDbContext db, IEnumerable<Guid> projects, CancellationToken ct)
    {
        var ids = projects.ToList();
        var rows = await db.Set<DetectorSetting>().AsNoTracking().Where(s => ids.Contains(s.ProjectId)).ToListAsync(ct);
        return ids.ToDictionary(p => p, p => DetectorRules.All.ToDictionary(d => d.Rule, d => Merge(d, rows.FirstOrDefault(r => r.ProjectId == p && r.Rule == d.Rule))));
    }

    public async Task<RuleSettings> UpdateAsync(Guid projectId, string rule, bool enabled, IReadOnlyDictionary<string, double>? values, Guid actor, CancellationToken ct = default)
    {
        var def = DetectorRules.Get(rule);
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        await AlertService.RequireTriageAsync(db, projectId, actor, ct);
        var merged = new Dictionary<string, double>();
        foreach (var t in def.Thresholds)
        {
            var v = values is not null && values.TryGetValue(t.Name, out var given) ? given : t.Default;
            if (double.IsNaN(v) || v < t.Min || v > t.Max)
                throw DomainException.Invalid(t.Name, $"{t.Label} must be between {t.Min.ToString(CultureInfo.InvariantCulture)} and {t.Max.ToString(CultureInfo.InvariantCulture)}.");
            merged[t.Name] = v;
        }
        if (values is not null)
            foreach (var k in values.Keys.Where(k => def.Thresholds.All(t => t.Name != k)))
                throw DomainException.Invalid(k, $"The rule {def.Name} has no threshold '{k}'.");
        var now = clock.GetUtcNow();
        var row = await db.Set<DetectorSetting>().FirstOrDefaultAsync(s => s.ProjectId == projectId && s.Rule == rule, ct);
        var before = Merge(def, row);
        if (row is null)
        {
            row = new DetectorSetting { ProjectId = projectId, Rule = rule, ThresholdsJson = "{}" };
            db.Add(row);
        }
        row.Enabled = enabled;
        row.ThresholdsJson = JsonSerializer.Serialize(merged);
        row.UpdatedBy = actor;
        row.UpdatedAt = now;
        await db.SaveChangesAsync(ct);
        var after = Merge(def, row);
        await audit.RecordAsync(new AuditEventDraft
        {
            ProjectId = projectId, EventType = "detector.updated", Actor = await PortalAudit.UserAsync(db, projectId, actor, ct),
            ResourceType = "detector_rule", ResourceId = rule, Action = "update",
            BeforeState = PortalAudit.Json(new { enabled = before.Enabled, thresholds = before.Values }),
            AfterState = PortalAudit.Json(new { enabled = after.Enabled, thresholds = after.Values }),
            // Switching a detector off or loosening it hides attacks.
            SecurityLevel = before.Enabled && !enabled ? AuditSecurityLevel.Warning : AuditSecurityLevel.Normal, OccurredAt = now,
        }, ct);
        return after;
    }

    private static RuleSettings Merge(RuleDefinition def, DetectorSetting? row)
    {
        Dictionary<string, double>? stored = null;
        if (row is not null)
        {
            try { stored = JsonSerializer.Deserialize<Dictionary<string, double>>(row.ThresholdsJson); }
            catch (JsonException) { stored = null; }
        }
        var values = def.Thresholds.ToDictionary(t => t.Name, t => stored is not null && stored.TryGetValue(t.Name, out var v) ? v : t.Default);
        return new RuleSettings(def, row?.Enabled ?? true, values, row is not null);
    }
}
