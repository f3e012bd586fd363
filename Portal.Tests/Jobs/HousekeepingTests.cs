using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Portal.Domain.Operations;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Jobs;

public class HousekeepingTests
{
    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Deletes_dead_setup_tokens_and_old_job_runs_only(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        var clock = new ManualClock();
        var now = clock.GetUtcNow();
        await using var services = db.Services(clock);

        SetupToken Token(string hash, TimeSpan createdAgo, TimeSpan expiresIn, TimeSpan? usedAgo = null) => new()
        {
            TokenHash = hash, CreatedAt = now - createdAgo, ExpiresAt = now + expiresIn, UsedAt = usedAgo is { } u ? now - u : null,
        };
        JobRun Run(string name, TimeSpan ago) => new()
        {
            JobName = name, JobGroup = "portal", FireInstanceId = name, InstanceName = "test", StartedAt = now - ago, FinishedAt = now - ago,
            Outcome = JobOutcomes.Succeeded,
        };
        await using (var ctx = db.NewContext())
        {
            ctx.SetupTokens.AddRange(
                Token("expired-2-days-ago", TimeSpan.FromDays(3), -TimeSpan.FromDays(2)),
                Token("used-29-hours-ago", TimeSpan.FromHours(30), -TimeSpan.FromHours(6), usedAgo: TimeSpan.FromHours(29)),
                Token("expired-6-hours-ago", TimeSpan.FromHours(30), -TimeSpan.FromHours(6)),
                Token("used-an-hour-ago", TimeSpan.FromHours(2), TimeSpan.FromHours(22), usedAgo: TimeSpan.FromHours(1)),
                Token("live", TimeSpan.FromHours(1), TimeSpan.FromHours(23)));
            ctx.JobRuns.AddRange(Run("31-days-old", TimeSpan.FromDays(31)), Run("29-days-old", TimeSpan.FromDays(29)), Run("today", TimeSpan.FromMinutes(5)));
            await ctx.SaveChangesAsync();
        }

        var housekeeping = services.GetRequiredService<HousekeepingService>();
        var result = await housekeeping.PurgeAsync();

        Assert.Equal(new HousekeepingResult(SetupTokensDeleted: 2, JobRunsDeleted: 1), result);
        await using (var ctx = db.NewContext())
        {
            Assert.Equal(["expired-6-hours-ago", "live", "used-an-hour-ago"], (await ctx.SetupTokens.Select(t => t.TokenHash).ToListAsync()).Order());
            Assert.Equal(["29-days-old", "today"], (await ctx.JobRuns.Select(r => r.JobName).ToListAsync()).Order());
        }

        // A day later the token that expired six hours ago and the one used an hour ago have had their grace day,
        // and the 29-day-old run has reached 30 days.
        clock.Advance(TimeSpan.FromDays(1));
        Assert.Equal(new HousekeepingResult(2, 1), await housekeeping.PurgeAsync());
        clock.Advance(TimeSpan.FromDays(1));
        Assert.Equal(new HousekeepingResult(1, 0), await housekeeping.PurgeAsync());
        Assert.Equal(new HousekeepingResult(0, 0), await housekeeping.PurgeAsync());
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Runs_left_running_by_a_stopped_process_are_closed_as_interrupted(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        var clock = new ManualClock();
        var now = clock.GetUtcNow();
        await using var services = db.Services(clock);
        JobRun Running(string name, string instance, TimeSpan ago) => new()
        {
            JobName = name, JobGroup = "portal", FireInstanceId = name, InstanceName = instance, StartedAt = now - ago, Outcome = JobOutcomes.Running,
        };
        await using (var ctx = db.NewContext())
        {
            ctx.JobRuns.AddRange(
                Running("dead-node", "portal@host-dead", TimeSpan.FromHours(2)),
                Running("alive-node", "worker@host-alive", TimeSpan.FromHours(2)),
                Running("dead-but-recent", "portal@host-dead", TimeSpan.FromMinutes(1)));
            await ctx.SaveChangesAsync();
        }

        var log = services.GetRequiredService<JobRunLog>();
        Assert.Equal(1, await log.CloseInterruptedAsync(["worker@host-alive"]));
        Assert.Equal(0, await log.CloseInterruptedAsync(["worker@host-alive"]));

        await using (var ctx = db.NewContext())
        {
            var runs = await ctx.JobRuns.ToDictionaryAsync(r => r.JobName);
            Assert.Equal(JobOutcomes.Failed, runs["dead-node"].Outcome);
            Assert.Equal(JobRunLog.InterruptedMessage, runs["dead-node"].Message);
            Assert.NotNull(runs["dead-node"].FinishedAt);
            Assert.Equal(JobOutcomes.Running, runs["alive-node"].Outcome);
            Assert.Equal(JobOutcomes.Running, runs["dead-but-recent"].Outcome);
        }

        // Once past the grace period, the recent run of the dead node is closed too.
        clock.Advance(JobRunLog.InterruptedGrace);
        Assert.Equal(1, await log.CloseInterruptedAsync(["worker@host-alive"]));
    }
}
