using Portal.Domain;
using Portal.Domain.Security.RateLimits;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Security;

public class RateLimiterTests
{
    private static RateLimitContext Ctx(SecurityWorld w, Guid? key = null, Guid? user = null, string role = Roles.User, string query = "q1") =>
        new(w.ProjectId, key, user, role, query);

    private static async Task<int> AllowedAsync(RateLimiter limiter, RateLimitContext ctx, int tries)
    {
        var allowed = 0;
        for (var i = 0; i < tries; i++) if ((await limiter.TryAcquireAsync(ctx)).Allowed) allowed++;
        return allowed;
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Per_key_limit_counts_only_that_key_and_reports_retry_after(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        var key = (await w.Keys.CreateAsync(w.ProjectId, new(  "k", Roles.User), w.Admin)).Key.Id;
        var otherKey = (await w.Keys.CreateAsync(w.ProjectId, new("k2", Roles.User), w.Admin)).Key.Id;
        var limit = await w.Limits.CreateAsync(w.ProjectId, new RateLimitInput("key", key.ToString().ToUpperInvariant(), 3, null, 60), w.Admin);
        Assert.Equal(key.ToString("D"), limit.Subject);

        w.Clock.Advance(TimeSpan.FromSeconds(15)); // windows are aligned to the clock: this one ends at 09:01:00
        Assert.Equal(3, await AllowedAsync(w.Limiter, Ctx(w, key), 3));
        var denied = await w.Limiter.TryAcquireAsync(Ctx(w, key));
        Assert.False(denied.Allowed);
        Assert.Equal((limit.Id, RateLimitExceeded.Requests), (denied.Limit!.Id, denied.Exceeded));
        Assert.Equal(TimeSpan.FromSeconds(45), denied.RetryAfter);
        Assert.Equal(45, denied.RetryAfterSeconds);
        Assert.Equal(10, await AllowedAsync(w.Limiter, Ctx(w, otherKey), 10));

        w.Clock.Advance(TimeSpan.FromSeconds(44.5));
        Assert.Equal(1, (await w.Limiter.TryAcquireAsync(Ctx(w, key))).RetryAfterSeconds); // rounded up, never 0
        w.Clock.Advance(TimeSpan.FromSeconds(0.5));
        Assert.Equal(3, await AllowedAsync(w.Limiter, Ctx(w, key), 5)); // new window
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Query_role_global_and_each_key_limits(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        await w.Limits.CreateAsync(w.ProjectId, new RateLimitInput("query", "q-heavy", 2, null, 60), w.Admin);
        Assert.Equal(2, await AllowedAsync(w.Limiter, Ctx(w, Guid.NewGuid(), query: "q-heavy"), 2));
        Assert.Equal(0, await AllowedAsync(w.Limiter, Ctx(w, Guid.NewGuid(), query: "q-heavy"), 2)); // shared by every caller
        Assert.Equal(5, await AllowedAsync(w.Limiter, Ctx(w, Guid.NewGuid(), query: "q-light"), 5));

        await w.Limits.CreateAsync(w.ProjectId, new RateLimitInput("role", Roles.Data, 4, null, 60), w.Admin);
        Assert.Equal(4, await AllowedAsync(w.Limiter, Ctx(w, Guid.NewGuid(), role: Roles.Data, query: "a"), 6));
        Assert.Equal(3, await AllowedAsync(w.Limiter, Ctx(w, Guid.NewGuid(), role: Roles.User, query: "a"), 3));

        // No subject: every key gets its own budget.
        await w.Limits.CreateAsync(w.ProjectId, new RateLimitInput("key", null, 2, null, 60), w.Admin);
        Guid k1 = Guid.NewGuid(), k2 = Guid.NewGuid();
        Assert.Equal(2, await AllowedAsync(w.Limiter, Ctx(w, k1, query: "b"), 3));
        Assert.Equal(2, await AllowedAsync(w.Limiter, Ctx(w, k2, query: "b"), 3));
        var user = await w.MemberAsync(Roles.User);
        await w.Limits.CreateAsync(w.ProjectId, new RateLimitInput("user", user.ToString(), 1, null, 60), w.Admin);
        Assert.Equal(1, await AllowedAsync(w.Limiter, Ctx(w, null, user, query: "c"), 3));

        var global = await w.Limits.CreateAsync(w.ProjectId, new RateLimitInput("global", null, 1, null, 3600), w.Admin);
        w.Clock.Advance(TimeSpan.FromMinutes(1)); // the 60-second windows roll over; the hourly global one does not
        Assert.True((await w.Limiter.TryAcquireAsync(Ctx(w, Guid.NewGuid(), query: "d"))).Allowed);
        var denied = await w.Limiter.TryAcquireAsync(Ctx(w, Guid.NewGuid(), query: "e"));
        Assert.Equal(global.Id, denied.Limit!.Id);
        Assert.Equal(TimeSpan.FromMinutes(59), denied.RetryAfter);

        // Changes apply at once on this node: disabling the global limit lifts it.
        await w.Limits.UpdateAsync(w.ProjectId, global.Id, new RateLimitInput("global", null, 1, null, 3600, Enabled: false), w.Admin);
        Assert.True((await w.Limiter.TryAcquireAsync(Ctx(w, Guid.NewGuid(), query: "f"))).Allowed);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Row_budget_refuses_requests_once_spent_until_the_window_resets(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        var key = Guid.NewGuid();
        var limit = await w.Limits.CreateAsync(w.ProjectId, new RateLimitInput("key", null, null, 100, 60), w.Admin);
        var ctx = Ctx(w, key);
        Assert.True((await w.Limiter.TryAcquireAsync(ctx)).Allowed);
        await w.Limiter.RecordRowsAsync(ctx, 80);
        Assert.True((await w.Limiter.TryAcquireAsync(ctx)).Allowed); // 80 < 100: the budget is not yet spent
        await w.Limiter.RecordRowsAsync(ctx, 30);
        w.Clock.Advance(TimeSpan.FromSeconds(20));
        var denied = await w.Limiter.TryAcquireAsync(ctx);
        Assert.Equal((false, RateLimitExceeded.Rows, limit.Id), (denied.Allowed, denied.Exceeded, denied.Limit!.Id));
        Assert.Equal(40, denied.RetryAfterSeconds);
        Assert.True((await w.Limiter.TryAcquireAsync(Ctx(w, Guid.NewGuid()))).Allowed); // another key has its own budget

        w.Clock.Advance(TimeSpan.FromSeconds(40));
        Assert.True((await w.Limiter.TryAcquireAsync(ctx)).Allowed);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Concurrent_acquires_never_exceed_the_limit(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        var key = Guid.NewGuid();
        await w.Limits.CreateAsync(w.ProjectId, new RateLimitInput("key", null, 100, null, 60), w.Admin);
        await w.Limits.CreateAsync(w.ProjectId, new RateLimitInput("global", null, 150, null, 60), w.Admin);
        var results = await Task.WhenAll(Enumerable.Range(0, 1000).Select(_ => Task.Run(async () => (await w.Limiter.TryAcquireAsync(Ctx(w, key))).Allowed)));
        Assert.Equal(100, results.Count(a => a));
        // The denied tries did not count: the global limit has exactly 50 left.
        var others = await Task.WhenAll(Enumerable.Range(0, 200).Select(_ => Task.Run(async () => (await w.Limiter.TryAcquireAsync(Ctx(w, Guid.NewGuid()))).Allowed)));
        Assert.Equal(50, others.Count(a => a));
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Limit_validation_names_the_field_and_other_projects_limits_are_not_found(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        var cases = new (RateLimitInput Input, string Field)[]
        {
            (new("everyone", null, 1, null, 60), "scope"),
            (new("global", "x", 1, null, 60), "subject"),
            (new("key", Guid.NewGuid().ToString(), 1, null, 60), "subject"),
            (new("key", "not-a-guid", 1, null, 60), "subject"),
            (new("user", Guid.NewGuid().ToString(), 1, null, 60), "subject"),
            (new("role", "owner", 1, null, 60), "subject"),
            (new("query", "q; drop", 1, null, 60), "subject"),
            (new("global", null, null, null, 60), "maxRequests"),
            (new("global", null, 0, null, 60), "maxRequests"),
            (new("global", null, null, 0, 60), "maxRows"),
            (new("global", null, 1, null, 0), "windowSeconds"),
            (new("global", null, 1, null, 86_401), "windowSeconds"),
        };
        foreach (var (input, field) in cases)
        {
            var e = await Assert.ThrowsAsync<DomainException>(() => w.Limits.CreateAsync(w.ProjectId, input, w.Admin));
            Assert.Equal((ErrorKind.Validation, field), (e.Kind, e.Field));
        }
        Assert.Equal(0, (await w.Limits.ListAsync(w.ProjectId, 0, 50)).Total);

        var other = await w.OtherProjectAsync();
        var otherKey = (await w.Keys.CreateAsync(other, new("theirs", Roles.User), w.Admin)).Key.Id;
        var e2 = await Assert.ThrowsAsync<DomainException>(() => w.Limits.CreateAsync(w.ProjectId, new("key", otherKey.ToString(), 1, null, 60), w.Admin));
        Assert.Equal("subject", e2.Field);

        var mine = await w.Limits.CreateAsync(w.ProjectId, new("global", null, 5, 1000, 60), w.Admin);
        Assert.Equal(ErrorKind.NotFound, (await Assert.ThrowsAsync<DomainException>(() => w.Limits.GetAsync(other, mine.Id))).Kind);
        Assert.Equal(ErrorKind.NotFound, (await Assert.ThrowsAsync<DomainException>(() => w.Limits.UpdateAsync(other, mine.Id, new("global", null, 1, null, 60), w.Admin))).Kind);
        Assert.Equal(ErrorKind.NotFound, (await Assert.ThrowsAsync<DomainException>(() => w.Limits.DeleteAsync(other, mine.Id, w.Admin))).Kind);
        Assert.Equal(0, (await w.Limits.ListAsync(other, 0, 50)).Total);
        // Another project's limit never applies here.
        Assert.Equal(10, await AllowedAsync(w.Limiter, new RateLimitContext(other, Guid.NewGuid(), null, Roles.User, "q"), 10));

        await w.Limits.DeleteAsync(w.ProjectId, mine.Id, w.Admin);
        Assert.Equal(0, (await w.Limits.ListAsync(w.ProjectId, 0, 50)).Total);
    }
}
