using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Portal.Domain.Operations;
using Portal.Jobs;
using Portal.Jobs.Housekeeping;
using Portal.Tests.Infrastructure;
using Quartz;
using Xunit.Abstractions;

namespace Portal.Tests.Jobs;

/// <summary>Records every execution in memory, whichever in-process node ran it.</summary>
public sealed class ClusterProbeJob : IJob
{
    public static readonly ConcurrentDictionary<string, ConcurrentQueue<(string Node, string FireInstanceId, DateTimeOffset? Scheduled)>> Runs = new();

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken = default)
    {
        var queue = Runs.GetOrAdd(context.JobDetail.Key.Name, _ => new());
        queue.Enqueue((context.Scheduler.SchedulerInstanceId, context.FireInstanceId, context.ScheduledFireTimeUtc));
        // Long enough that a second node acquiring the same firing would overlap with this one, and that one node's
        // thread pool cannot keep up alone, so every node takes firings.
        await Task.Delay(context.MergedJobDataMap.GetInt("delayMs"), cancellationToken);
    }
}

public class JobsClusterTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Portal_and_two_workers_on_postgres_run_each_firing_exactly_once()
    {
        await using var db = await TestDatabase.CreateAsync("postgres");
        await using var portal = new PortalApp(db, new() { ["Jobs:RunInPortal"] = "true", ["Jobs:InstanceName"] = "portal" });
        _ = portal.Client(); // starts the portal, its scheduler included
        using var workerA = await JobHosts.StartAsync(db, "worker-a");
        using var workerB = await JobHosts.StartAsync(db, "worker-b");

        var scheduler = await portal.Services.SchedulerAsync();
        var nodes = await JobHosts.WaitForNodesAsync(portal.Get<JobsDashboard>(), n => n.AliveNodes.Count == 3);

        // Many triggers due at the same instants with jobs slower than the interval: more work than one node's
        // thread pool can hold, so the three nodes really compete for firings.
        const int triggers = 16, firings = 6;
        var prefix = "probe-" + Guid.NewGuid().ToString("N")[..8];
        var names = Enumerable.Range(1, triggers).Select(i => $"{prefix}-{i}").ToList();
        var startAt = DateTimeOffset.UtcNow.AddSeconds(3);
        foreach (var name in names)
        {
            var job = JobBuilder.Create<ClusterProbeJob>().WithIdentity(name, "tests").UsingJobData("delayMs", 2000).Build();
            var trigger = TriggerBuilder.Create().WithIdentity(name, "tests").ForJob(job).StartAt(startAt)
                .WithSimpleSchedule(s => s.WithInterval(TimeSpan.FromSeconds(1)).WithRepeatCount(firings - 1))
                .Build();
            await scheduler.ScheduleJob(job, trigger, new ScheduleJobOptions());
        }

        var expected = triggers * firings;
        int Seen() => names.Sum(n => ClusterProbeJob.Runs.GetOrAdd(n, _ => new()).Count);
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (Seen() < expected && DateTime.UtcNow < deadline) await Task.Delay(250);
        await Task.Delay(3000); // a duplicate would show up here

        var all = names.SelectMany(n => ClusterProbeJob.Runs[n].Select(r => (Job: n, r.Node, r.FireInstanceId, r.Scheduled))).ToList();
        var detail = string.Join("\n", all.OrderBy(r => r.Scheduled).ThenBy(r => r.Job).Select(r => $"{r.Scheduled:HH:mm:ss.fff} {r.Job} {r.Node} {r.FireInstanceId}"));
        output.WriteLine(detail);
        Assert.True(all.Count == expected, $"expected {expected} executions, saw {all.Count}:\n{detail}");
        Assert.Equal(expected, all.Select(r => (r.Job, r.Scheduled)).Distinct().Count());
        Assert.Equal(expected, all.Select(r => r.FireInstanceId).Distinct().Count());
        Assert.All(all, r => Assert.Contains(r.Node, nodes.AliveNodes));
        var perNode = string.Join(", ", all.GroupBy(r => r.Node).Select(g => $"{g.Key}: {g.Count()}"));
        output.WriteLine(perNode);
        Assert.True(all.Select(r => r.Node).Distinct().Count() >= 2, $"only one node ran firings ({perNode}); the test did not exercise the cluster");

        // The recorder saw the same: one job_runs row per trigger and scheduled time, all succeeded.
        // The last firings may still be finishing their 2 s run (or writing their outcome) on a loaded machine.
        List<Portal.Domain.Operations.JobRun> rows;
        var recordDeadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            await using var ctx = db.NewContext();
            rows = await ctx.JobRuns.Where(r => r.JobGroup == "tests" && r.JobName.StartsWith(prefix)).ToListAsync();
            if (rows.All(r => r.Outcome != JobOutcomes.Running) || DateTime.UtcNow > recordDeadline) break;
            await Task.Delay(250);
        }
        Assert.Equal(expected, rows.Count);
        Assert.Equal(expected, rows.Select(r => (r.JobName, r.ScheduledFor)).Distinct().Count());
        Assert.All(rows, r => Assert.Equal(JobOutcomes.Succeeded, r.Outcome));
    }

    [Fact]
    public async Task Run_now_on_a_portal_that_does_not_run_jobs_is_executed_by_a_worker()
    {
        await using var db = await TestDatabase.CreateAsync("postgres");
        await using var portal = new PortalApp(db); // Jobs:RunInPortal=false
        _ = portal.Client();
        using var worker = await JobHosts.StartAsync(db, "worker-only");

        var dashboard = portal.Get<JobsDashboard>();
        var nodes = await JobHosts.WaitForNodesAsync(dashboard, n => n.AliveNodes.Count > 0);
        Assert.False(nodes.ThisProcessRunsJobs);
        var alive = Assert.Single(nodes.AliveNodes);
        Assert.StartsWith("worker-only@", alive);

        await dashboard.RunNowAsync(HousekeepingJob.Key.Group, HousekeepingJob.Key.Name);
        var run = await JobHosts.WaitForFinishedRunAsync(portal.Get<JobRunLog>(), HousekeepingJob.Key, TimeSpan.FromSeconds(45));
        Assert.Equal(JobOutcomes.Succeeded, run.Outcome);
        Assert.StartsWith("worker-only@", run.InstanceName);
        Assert.True(string.IsNullOrEmpty(portal.Logs.Errors), portal.Logs.Errors);
    }

    [Fact]
    public async Task Worker_process_starts_against_postgres_and_joins_the_cluster()
    {
        await using var db = await TestDatabase.CreateAsync("postgres", migrate: false);
        var start = new ProcessStartInfo("dotnet", [WorkerDll()])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            WorkingDirectory = db.DataDirectory,
        };
        start.Environment["Database__Provider"] = "Postgres";
        start.Environment["Database__ConnectionString"] = db.ConnectionString;
        start.Environment["Database__DataDirectory"] = db.DataDirectory;
        start.Environment["Jobs__InstanceName"] = "proc-worker";
        using var process = Process.Start(start)!;
        var lines = new ConcurrentQueue<string>();
        var ready = new TaskCompletionSource();
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lines.Enqueue(e.Data);
            if (e.Data.Contains("is running jobs of scheduler")) ready.TrySetResult();
        };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lines.Enqueue(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            var finished = await Task.WhenAny(ready.Task, process.WaitForExitAsync(), Task.Delay(TimeSpan.FromSeconds(60)));
            Assert.True(finished == ready.Task, "worker did not report running:\n" + string.Join("\n", lines));
            Assert.Contains(lines, l => l.Contains("\"Category\":\"Portal.Jobs.Worker\"") && l.Contains("proc-worker@"));

            // It migrated the portal database and is a live cluster node another scheduler can see.
            using var viewer = await JobHosts.StartAsync(db, "viewer", runScheduler: false);
            await JobHosts.WaitForNodesAsync(viewer.Services.GetRequiredService<JobsDashboard>(),
                n => n.AliveNodes.Any(a => a.StartsWith("proc-worker@", StringComparison.Ordinal)));
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task Worker_refuses_sqlite_with_one_clear_line_and_exit_code_2()
    {
        var dir = Path.Combine(Path.GetTempPath(), "portal-tests", Guid.NewGuid().ToString("N"));
        var start = new ProcessStartInfo("dotnet", [WorkerDll()])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        start.Environment["Database__Provider"] = "Sqlite";
        start.Environment["Database__DataDirectory"] = dir;
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        Assert.Equal(2, process.ExitCode);
        var error = (await stderr).Trim();
        Assert.StartsWith("Portal.Jobs worker cannot start: Database:Provider must be 'Postgres'", error);
        Assert.DoesNotContain("\n", error);
        Assert.Equal("", (await stdout).Trim());
    }

    /// <summary>The worker as built next to this test run (same configuration), run the way an operator would run it.</summary>
    private static string WorkerDll()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Portal.sln"))) dir = dir.Parent;
        Assert.NotNull(dir);
        var configuration = new DirectoryInfo(Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory)).Parent!.Name; // bin/<Configuration>/net10.0
        var dll = Path.Combine(dir.FullName, "Portal.Jobs", "bin", configuration, "net10.0", "Portal.Jobs.dll");
        Assert.True(File.Exists(dll), $"{dll} is missing; build Portal.Jobs first");
        return dll;
    }
}
