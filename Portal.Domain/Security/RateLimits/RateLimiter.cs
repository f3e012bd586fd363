using System.Collections.Concurrent;
using Microsoft.EntityFrameworkCore;
using Portal.Domain.Persistence;

namespace Portal.Domain.Security.RateLimits;

/// <summary>Who is calling: the project, the API key or portal user, the role they act as, and the query.</summary>
public sealed record RateLimitContext(Guid ProjectId, Guid? KeyId, Guid? UserId, string? Role, string? QueryId);

/// <summary>A limit as the limiter applies it (a snapshot of the <see cref="RateLimit"/> row).</summary>
public sealed record RateLimitRule(Guid Id, string Scope, string? Subject, int? MaxRequests, long? MaxRows, int WindowSeconds);

public enum RateLimitExceeded { Requests, Rows }

/// <summary>Allowed, or denied naming the limit that tripped and how long to wait (HTTP 429 with Retry-After).</summary>
public sealed record RateLimitDecision(bool Allowed, RateLimitRule? Limit, RateLimitExceeded? Exceeded, TimeSpan RetryAfter)
{
    public static readonly RateLimitDecision Allow = new(true, null, null, TimeSpan.Zero);

    /// <summary>Whole seconds for the Retry-After header: rounded up, at least 1.</summary>
    public int RetryAfterSeconds => Allowed ? 0 : Math.Max(1, (int)Math.Ceiling(RetryAfter.TotalSeconds));
}

/// <summary>
/// Fixed-window counters in memory, aligned to the clock (a 60-second window runs from :00 to :59), so Retry-After is
/// exact. Each limit with a subject has one counter; a limit without a subject ("each key") has one per key, user,
/// query or role. A request is allowed only when every applicable limit has room, and then counts against all of
/// them atomically (one lock per project, held for microseconds).
/// <para>
/// Written by hand: System.Threading.RateLimiting's limiters read the system stopwatch rather than a TimeProvider,
/// cannot charge rows after execution, and cannot check several limits as one decision.
/// </para>
/// <para>
/// Per process: in a cluster each node counts on its own, so a limit of N allows up to N per node. That is accepted
/// because the limits exist to stop runaway agents and protect the governed databases from bursts, which a per-node
/// bound already does, and it keeps a database round trip off every gateway call. Where an exact cluster-wide quota
/// matters, divide the limit by the node count or route a key's traffic to one node.
/// </para>
/// </summary>
public sealed class RateLimiter(IDbContextFactory<PortalDbContext> dbFactory, TimeProvider clock)
{
    /// <summary>Limits changed on another node take effect here within this time; changes on this node at once.</summary>
    public static readonly TimeSpan CacheLifetime = TimeSpan.FromSeconds(30);
    private static readonly long SweepEveryTicks = TimeSpan.FromMinutes(1).Ticks;

    private readonly ConcurrentDictionary<Guid, Lazy<Task<LoadedLimits>>> limits = new();
    private readonly ConcurrentDictionary<Guid, ProjectCounters> counters = new();

    private sealed record LoadedLimits(IReadOnlyList<RateLimitRule> Rules, DateTimeOffset LoadedAt);

    private sealed class Counter(long windowStart)
    {
        public long WindowStart = windowStart;
        public long Requests;
        public long Rows;
    }

    private sealed class ProjectCounters
    {
        public readonly Dictionary<(Guid LimitId, string Subject), Counter> ByLimit = new();
        public long LastSweep;
    }

    /// <summary>Forgets the cached limits of a project so the next call reloads them.</summary>
    public void Invalidate(Guid projectId) => limits.TryRemove(projectId, out _);

    /// <summary>Checks every applicable limit and, when all have room, counts the request against each.</summary>
    public async ValueTask<RateLimitDecision> TryAcquireAsync(RateLimitContext ctx, CancellationToken ct = default)
    {
        var applicable = Applicable(await RulesAsync(ctx.ProjectId, ct), ctx);
        if (applicable.Count == 0) return RateLimitDecision.Allow;
        var now = clock.GetUtcNow().UtcTicks;
        var project = counters.GetOrAdd(ctx.ProjectId, _ => new ProjectCounters());
        lock (project)
        {
            Sweep(project, now);
            RateLimitDecision? denied = null;
            foreach (var (rule, subject) in applicable)
            {
                var c = CounterFor(project, rule, subject, now, out var windowEnd);
                RateLimitExceeded? exceeded = rule.MaxRequests is { } maxRequests && c.Requests >= maxRequests ? RateLimitExceeded.Requests
                    : rule.MaxRows is { } maxRows && c.Rows >= maxRows ? RateLimitExceeded.Rows
                    : null;
                if (exceeded is null) continue;
                var wait = TimeSpan.FromTicks(windowEnd - now);
                // The caller must wait until every exhausted limit has room again: report the longest wait.
                if (denied is null || wait > denied.RetryAfter) denied = new RateLimitDecision(false, rule, exceeded, wait);
            }
            if (denied is not null) return denied;
            foreach (var (rule, subject) in applicable)
                CounterFor(project, rule, subject, now, out _).Requests++;
        }
        return RateLimitDecision.Allow;
    }

    /// <summary>Charges the rows a call returned against the row budgets; a spent budget refuses later calls in the window.</summary>
    public async ValueTask RecordRowsAsync(RateLimitContext ctx, long rows, CancellationToken ct = default)
    {
        if (rows <= 0) return;
        var applicable = Applicable(await RulesAsync(ctx.ProjectId, ct), ctx).Where(a => a.Rule.MaxRows is not null).ToList();
        if (applicable.Count == 0) return;
        var now = clock.GetUtcNow().UtcTicks;
        var project = counters.GetOrAdd(ctx.ProjectId, _ => new ProjectCounters());
        lock (project)
        {
            foreach (var (rule, subject) in applicable)
                CounterFor(project, rule, subject, now, out _).Rows += rows;
        }
    }

    private static List<(RateLimitRule Rule, string Subject)> Applicable(IReadOnlyList<RateLimitRule> rules, RateLimitContext ctx)
    {
        var result = new List<(RateLimitRule, string)>();
        var key = ctx.KeyId?.ToString("D");
        var user = ctx.UserId?.ToString("D");
        foreach (var rule in rules)
        {
            var actual = rule.Scope switch
            {
                RateLimitScopes.Global => "",
                RateLimitScopes.Key => key,
                RateLimitScopes.User => user,
                RateLimitScopes.Query => ctx.QueryId,
                RateLimitScopes.Role => ctx.Role,
                _ => null,
            };
            if (actual is null || (rule.Subject is not null && !string.Equals(rule.Subject, actual, StringComparison.Ordinal))) continue;
            result.Add((rule, actual));
        }
        return result;
    }

    private static Counter CounterFor(ProjectCounters project, RateLimitRule rule, string subject, long now, out long windowEnd)
    {
        var window = TimeSpan.FromSeconds(rule.WindowSeconds).Ticks;
        var start = now - now % window;
        windowEnd = start + window;
        if (!project.ByLimit.TryGetValue((rule.Id, subject), out var c))
            project.ByLimit[(rule.Id, subject)] = c = new Counter(start);
        else if (c.WindowStart != start)
        {
            c.WindowStart = start;
            c.Requests = 0;
            c.Rows = 0;
        }
        return c;
    }

    /// <summary>Drops counters whose window ended (per-key counters would otherwise grow with every key ever seen).</summary>
    private static void Sweep(ProjectCounters project, long now)
    {
        if (now - project.LastSweep < SweepEveryTicks) return;
        project.LastSweep = now;
        var stale = project.ByLimit.Where(kv => now - kv.Value.WindowStart > TimeSpan.TicksPerDay * 2).Select(kv => kv.Key).ToList();
        foreach (var k in stale) project.ByLimit.Remove(k);
    }

    private async ValueTask<IReadOnlyList<RateLimitRule>> RulesAsync(Guid projectId, CancellationToken ct)
    {
        while (true)
        {
            var lazy = limits.GetOrAdd(projectId, id => new Lazy<Task<LoadedLimits>>(() => LoadAsync(id)));
            LoadedLimits loaded;
            try { loaded = await lazy.Value.WaitAsync(ct); }
            catch (Exception) when (!ct.IsCancellationRequested)
            {
                // Fail closed for this call (the caller answers 503) but let the next call try the database again.
                limits.TryRemove(KeyValuePair.Create(projectId, lazy));
                throw;
            }
            if (clock.GetUtcNow() - loaded.LoadedAt < CacheLifetime) return loaded.Rules;
            limits.TryRemove(KeyValuePair.Create(projectId, lazy));
        }
    }

    private async Task<LoadedLimits> LoadAsync(Guid projectId)
    {
        await using var db = await dbFactory.CreateDbContextAsync();
        var rules = await db.RateLimits.AsNoTracking().Where(r => r.ProjectId == projectId && r.Enabled)
            .Select(r => new RateLimitRule(r.Id, r.Scope, r.Subject, r.MaxRequests, r.MaxRows, r.WindowSeconds))
            .ToListAsync();
        // Stamped after the read, so a slow database cannot make a fresh load look stale and loop.
        return new LoadedLimits(rules, clock.GetUtcNow());
    }
}
