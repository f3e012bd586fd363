using Microsoft.EntityFrameworkCore;
using Portal.Domain.Gateway;
using Portal.Domain.Persistence;

namespace Portal.Domain.Security.RateLimits;

/// <summary>How much of a limit the current window has used, read from the audit trail (so it is cluster-wide).</summary>
public sealed record RateLimitUsageRow(Guid LimitId, DateTimeOffset WindowStart, long Requests, long Rows, string? BusiestSubject);

/// <summary>
/// Current usage of a project's rate limits for the Rate limits page. Counted from the gateway's audited calls in each
/// limit's current fixed window (the windows the <see cref="RateLimiter"/> uses), so every node's traffic shows, not only
/// this node's in-memory counters. A limit without a subject ("each key") shows its busiest key, user, query or role.
/// </summary>
public sealed class RateLimitUsageService(IDbContextFactory<PortalDbContext> dbFactory, TimeProvider clock)
{
    public async Task<IReadOnlyList<RateLimitUsageRow>> UsageAsync(Guid projectId, IReadOnlyList<RateLimit> limits, CancellationToken ct = default)
    {
        var now = clock.GetUtcNow();
        var result = new List<RateLimitUsageRow>();
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        foreach (var limit in limits.Take(200))
        {
            var window = TimeSpan.FromSeconds(limit.WindowSeconds).Ticks;
            var start = new DateTimeOffset(now.UtcTicks - now.UtcTicks % window, TimeSpan.Zero);
            var q = db.AuditEvents.AsNoTracking().Where(e => e.ProjectId == projectId && e.OccurredAt >= start && e.EventType == GatewayService.ExecutedEvent);
            var grouped = limit.Scope switch
            {
                RateLimitScopes.Key => q.Where(e => e.ActorType == "api_key" && (limit.Subject == null || e.ActorId == limit.Subject)).GroupBy(e => e.ActorId),
                RateLimitScopes.User => q.Where(e => e.ActorType == "user" && (limit.Subject == null || e.ActorId == limit.Subject)).GroupBy(e => e.ActorId),
                RateLimitScopes.Query => q.Where(e => limit.Subject == null || e.ResourceId == limit.Subject).GroupBy(e => e.ResourceId),
                RateLimitScopes.Role => q.Where(e => limit.Subject == null || e.ActorRole == limit.Subject).GroupBy(e => e.ActorRole),
                _ => q.GroupBy(e => (string?)""),
            };
            var top = await grouped.Select(g => new { g.Key, Requests = (long)g.Count(), Rows = g.Sum(e => e.RowsReturned ?? 0) })
                .OrderByDescending(x => x.Requests).FirstOrDefaultAsync(ct);
            result.Add(new RateLimitUsageRow(limit.Id, start, top?.Requests ?? 0, top?.Rows ?? 0,
                limit.Subject is null && limit.Scope != RateLimitScopes.Global ? top?.Key : null));
        }
        return result;
    }
}
