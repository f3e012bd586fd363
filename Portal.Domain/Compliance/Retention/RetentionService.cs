using Microsoft.EntityFrameworkCore;
using Portal.Domain.Audit;
using Portal.Domain.Integrations;
using Portal.Domain.Persistence;

namespace Portal.Domain.Compliance.Retention;

/// <summary>The classes of audit events that retention treats differently.</summary>
public static class EventClasses
{
    /// <summary>Security and configuration changes (members, keys, masks, integrations, alerts …): 7 years by default.</summary>
    public const string SecurityConfig = "security_config";
    /// <summary>Gateway query executions and denials: 1 year by default.</summary>
    public const string Query = "query";
    /// <summary>Sign-ins and page activity: 90 days by default.</summary>
    public const string Activity = "activity";

    public static readonly IReadOnlyList<string> All = [SecurityConfig, Query, Activity];

    public static int DefaultDays(string eventClass) => eventClass switch
    {
        SecurityConfig => 7 * 365 + 2,
        Query => 365,
        _ => 90,
    };

    public static string Label(string eventClass) => eventClass switch
    {
        SecurityConfig => "Security and configuration changes",
        Query => "Query executions",
        _ => "Sign-ins and page activity",
    };

    public static string Of(string eventType) => Of(System.Text.Encoding.UTF8.GetBytes(eventType));

    public static string Of(ReadOnlySpan<byte> eventType)
    {
        if (eventType.StartsWith("auth."u8) || eventType.StartsWith("page."u8) || eventType.StartsWith("session."u8)) return Activity;
        if (eventType.StartsWith("gateway."u8) || eventType.StartsWith("query."u8)) return Query;
        return SecurityConfig;
    }
}

public sealed record RetentionPolicyRow(string EventClass, string Label, int Days, bool IsDefault, DateTimeOffset? UpdatedAt);

/// <summary>Per-project retention policies, editable by admins (retention.manage), every change recorded and audited.</summary>
public sealed class RetentionService(IDbContextFactory<PortalDbContext> dbFactory, PortalAudit audit, TimeProvider clock)
{
    public const int MinDays = 1;
    public const int MaxDays = 36500;

    public async Task<IReadOnlyList<RetentionPolicyRow>> GetAsync(Guid projectId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var stored = await db.Set<RetentionPolicy>().AsNoTracking().Where(p => p.ProjectId == projectId).ToListAsync(ct);
        return EventClasses.All.Select(c => stored.FirstOrDefault(p => p.EventClass == c) is { } p
            ? new RetentionPolicyRow(c, EventClasses.Label(c), p.Days, false, p.UpdatedAt)
            : new RetentionPolicyRow(c, EventClasses.Label(c), EventClasses.DefaultDays(c), true, null)).ToList();
    }

    public async Task<IReadOnlyDictionary<string, int>> DaysAsync(PortalDbContext db, Guid projectId, CancellationToken ct)
    {
        var stored = await db.Set<RetentionPolicy>().AsNoTracking().Where(p => p.ProjectId == projectId).ToListAsync(ct);
        return EventClasses.All.ToDictionary(c => c, c => stored.FirstOrDefault(p => p.EventClass == c)?.Days ?? EventClasses.DefaultDays(c));
    }

    public async Task UpdateAsync(Guid projectId, string eventClass, int days, Guid actor, CancellationToken ct = default)
    {
        if (!EventClasses.All.Contains(eventClass)) throw DomainException.Invalid("eventClass", "Unknown event class.");
        if (days is < MinDays or > MaxDays) throw DomainException.Invalid("days", $"Keep events {MinDays} to {MaxDays} days.");
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var now = clock.GetUtcNow();
        var p = await db.Set<RetentionPolicy>().FirstOrDefaultAsync(x => x.ProjectId == projectId && x.EventClass == eventClass, ct);
        var beforeDays = p?.Days ?? EventClasses.DefaultDays(eventClass);
        if (p is null)
        {
            p = new RetentionPolicy { ProjectId = projectId, EventClass = eventClass };
            db.Add(p);
        }
        else if (p.Days == days) return;
        p.Days = days;
        p.UpdatedBy = actor;
        p.UpdatedAt = now;
        var before = PortalAudit.Json(new { event_class = eventClass, days = beforeDays });
        var after = PortalAudit.Json(new { event_class = eventClass, days });
        WebhookService.Change(db, projectId, p.Id, "retention_changed", before, after, actor, now, "retention");
        await db.SaveChangesAsync(ct);
        await audit.RecordAsync(new AuditEventDraft
        {
            ProjectId = projectId, EventType = "retention.policy_changed", Actor = await PortalAudit.UserAsync(db, projectId, actor, ct),
            ResourceType = "retention_policy", ResourceId = eventClass, BeforeState = before, AfterState = after,
        }, ct);
    }
}
