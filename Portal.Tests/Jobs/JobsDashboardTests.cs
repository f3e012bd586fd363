using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Portal.Domain;
using Portal.Domain.Operations;
using Portal.Domain.Tenancy;
using Portal.Jobs;
using Portal.Jobs.Housekeeping;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Jobs;

public class JobsDashboardTests
{
    private static readonly TimeSpan RunTimeout = TimeSpan.FromSeconds(45);

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Lists_the_housekeeping_job_with_its_schedule_and_next_fire_time(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        var logs = new CapturedLogs();
        using var host = await JobHosts.StartAsync(db, "test-node", logs: logs);
        var dashboard = host.Services.GetRequiredService<JobsDashboard>();

        var jobs = await dashboard.ListAsync();

        var job = Assert.Single(jobs, j => j.Group == HousekeepingJob.Key.Group && j.Name == HousekeepingJob.Key.Name);
        Assert.Equal(HousekeepingJob.Cron, job.Cron);
        Assert.Equal("Every hour, on the hour", job.Schedule);
        Assert.Equal(JobStates.Normal, job.State);
        Assert.Equal(HousekeepingJob.Description, job.Description);
        var next = Assert.NotNull(job.NextFireTime);
        Assert.InRange(next, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddHours(1).AddSeconds(5));
        Assert.Equal(0, next.Minute);
        Assert.Equal(0, next.Second);
        Assert.Null(job.LastRun);

        var nodes = await dashboard.NodesAsync();
        Assert.True(nodes.ThisProcessRunsJobs);
        Assert.Single(nodes.AliveNodes, n => n.StartsWith("test-node@", StringComparison.Ordinal));
        Assert.True(string.IsNullOrEmpty(logs.Errors), logs.Errors);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Run_now_executes_housekeeping_on_the_domain_clock_and_records_a_succeeded_run(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        // The Domain rules follow the manual clock; Quartz must keep real time or nothing would ever fire.
        var clock = new ManualClock(new DateTimeOffset(2031, 3, 1, 12, 0, 0, TimeSpan.Zero));
        var now = clock.GetUtcNow();
        await using (var ctx = db.NewContext())
        {
            ctx.SetupTokens.Add(new SetupToken { TokenHash = "dead", CreatedAt = now.AddDays(-3), ExpiresAt = now.AddDays(-2) });
            ctx.SetupTokens.Add(new SetupToken { TokenHash = "live", CreatedAt = now.AddHours(-1), ExpiresAt = now.AddHours(23) });
            await ctx.SaveChangesAsync();
        }
        var logs = new CapturedLogs();
        using var host = await JobHosts.StartAsync(db, "runner", logs: logs, clock: clock);
        var dashboard = host.Services.GetRequiredService<JobsDashboard>();

        await dashboard.RunNowAsync(HousekeepingJob.Key.Group, HousekeepingJob.Key.Name);

        var run = await JobHosts.WaitForFinishedRunAsync(host.Services.GetRequiredService<JobRunLog>(), HousekeepingJob.Key, RunTimeout);
        Assert.True(run.Outcome == JobOutcomes.Succeeded, $"{run.Outcome}: {run.Message}\n{logs.Errors}");
        Assert.Equal("Deleted 1 setup token(s) and 0 job run(s); closed 0 interrupted run(s); re-encrypted 0 stored secret(s) under the newest key.", run.Message);
        Assert.StartsWith("runner@", run.InstanceName);
        Assert.False(string.IsNullOrEmpty(run.FireInstanceId));
        Assert.NotNull(run.ScheduledFor);
        Assert.Equal(now, run.StartedAt);
        Assert.NotNull(run.FinishedAt);
        await using (var ctx = db.NewContext())
            Assert.Equal(["live"], await ctx.SetupTokens.Select(t => t.TokenHash).ToListAsync());

        var listed = Assert.Single(await dashboard.ListAsync(), j => j.Name == HousekeepingJob.Key.Name);
        Assert.Equal(run.Id, listed.LastRun?.Id);
        var recent = await dashboard.RecentRunsAsync(HousekeepingJob.Key.Group, HousekeepingJob.Key.Name, 0, 10);
        Assert.Equal(1, recent.Total);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Pause_and_resume_change_the_job_state(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        using var host = await JobHosts.StartAsync(db, "node");
        var dashboard = host.Services.GetRequiredService<JobsDashboard>();
        var (group, name) = (HousekeepingJob.Key.Group, HousekeepingJob.Key.Name);

        await dashboard.PauseAsync(group, name);
        var paused = Assert.Single(await dashboard.ListAsync(), j => j.Name == name);
        Assert.Equal(JobStates.Paused, paused.State);
        Assert.True(paused.IsPaused);
        Assert.Null(paused.NextFireTime);

        await dashboard.ResumeAsync(group, name);
        var resumed = Assert.Single(await dashboard.ListAsync(), j => j.Name == name);
        Assert.Equal(JobStates.Normal, resumed.State);
        Assert.NotNull(resumed.NextFireTime);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Run_now_still_runs_a_paused_job_once_and_leaves_it_paused(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        using var host = await JobHosts.StartAsync(db, "node");
        var dashboard = host.Services.GetRequiredService<JobsDashboard>();
        await dashboard.PauseAsync(HousekeepingJob.Key.Group, HousekeepingJob.Key.Name);

        await dashboard.RunNowAsync(HousekeepingJob.Key.Group, HousekeepingJob.Key.Name);

        var run = await JobHosts.WaitForFinishedRunAsync(host.Services.GetRequiredService<JobRunLog>(), HousekeepingJob.Key, RunTimeout);
        Assert.Equal(JobOutcomes.Succeeded, run.Outcome);
        var job = Assert.Single(await dashboard.ListAsync(), j => j.Name == HousekeepingJob.Key.Name);
        Assert.Equal(JobStates.Paused, job.State);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task A_pause_survives_a_restart_that_re_declares_the_job(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        using (var first = await JobHosts.StartAsync(db, "first"))
        {
            await first.Services.GetRequiredService<JobsDashboard>().PauseAsync(HousekeepingJob.Key.Group, HousekeepingJob.Key.Name);
            await first.StopAsync();
        }
        using var second = await JobHosts.StartAsync(db, "second");
        var job = Assert.Single(await second.Services.GetRequiredService<JobsDashboard>().ListAsync(), j => j.Name == HousekeepingJob.Key.Name);
        Assert.Equal(JobStates.Paused, job.State);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Unknown_job_is_not_found(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        using var host = await JobHosts.StartAsync(db, "node", runScheduler: false);
        var dashboard = host.Services.GetRequiredService<JobsDashboard>();
        var e = await Assert.ThrowsAsync<DomainException>(() => dashboard.RunNowAsync("portal", "no-such-job"));
        Assert.Equal(ErrorKind.NotFound, e.Kind);
        await Assert.ThrowsAsync<DomainException>(() => dashboard.PauseAsync("", "housekeeping"));
    }

    [Fact]
    public void Cron_text_describes_common_shapes_and_never_guesses()
    {
        Assert.Equal("Every hour, on the hour", CronText.Describe("0 0 * * * ?"));
        Assert.Equal("Every 15 minutes", CronText.Describe("0 0/15 * * * ?"));
        Assert.Equal("Every second", CronText.Describe("* * * * * ?"));
        Assert.Equal("Every 5 seconds", CronText.Describe("0/5 * * * * ?"));
        Assert.Equal("Every day at 02:30 UTC", CronText.Describe("0 30 2 * * ?"));
        Assert.Equal("Every Monday at 06:00 UTC", CronText.Describe("0 0 6 ? * MON"));
        Assert.Equal("Every weekday at 06:00 UTC", CronText.Describe("0 0 6 ? * MON-FRI"));
        Assert.Equal("Custom schedule (0 0 12 L * ?)", CronText.Describe("0 0 12 L * ?"));
        Assert.Equal("On demand only", CronText.Describe(null));
    }
}
