using Microsoft.Extensions.DependencyInjection;
using Portal.Domain;
using Portal.Domain.Operations;
using Quartz;

namespace Portal.Jobs;

public sealed record JobSummary(
    string Group, string Name, string? Description, string? Cron, string Schedule, string State,
    DateTimeOffset? NextFireTime, DateTimeOffset? PreviousFireTime, JobRun? LastRun)
{
    public bool IsPaused => State == JobStates.Paused;
}

public static class JobStates
{
    public const string Normal = "normal";
    public const string Paused = "paused";
    public const string Running = "running";
    public const string Error = "error";
}

/// <summary>Which scheduler nodes can execute jobs right now, as the shared store sees them.</summary>
public sealed record SchedulerNodes(bool ThisProcessRunsJobs, IReadOnlyList<string> AliveNodes);

/// <summary>
/// What the Jobs page shows and does, read from and written to the shared Quartz store (so it works the same whether
/// this process runs jobs or only the workers do) plus the run history in job_runs.
/// </summary>
public sealed class JobsDashboard([FromKeyedServices(JobsHosting.SchedulerName)] IScheduler scheduler, JobRunLog runs)
{
    public async Task<IReadOnlyList<JobSummary>> ListAsync(CancellationToken ct = default)
    {
        var keys = new List<JobKey>();
        foreach (var group in await scheduler.GetJobGroupNames(ct))
            keys.AddRange(await scheduler.GetJobKeys(GroupMatcher<JobKey>.GroupEquals(group), ct));
        var last = await runs.LatestAsync(keys.Select(k => (k.Group, k.Name)), ct);

        var result = new List<JobSummary>();
        foreach (var key in keys.OrderBy(k => k.Group, StringComparer.Ordinal).ThenBy(k => k.Name, StringComparer.Ordinal))
        {
            var detail = await scheduler.GetJobDetail(key, ct);
            if (detail is null) continue; // deleted between the two reads
            var triggers = await scheduler.GetTriggersOfJob(key, ct);
            var cron = triggers.OfType<ICronTrigger>().Select(t => t.CronExpressionString).FirstOrDefault();
            var states = new List<TriggerState>();
            foreach (var t in triggers) states.Add(await scheduler.GetTriggerState(t.Key, ct));
            var active = triggers.Where((t, i) => states[i] is not (TriggerState.Paused or TriggerState.Complete or TriggerState.None));
            result.Add(new JobSummary(
                key.Group, key.Name, detail.Description, cron, CronText.Describe(cron), Summarize(states),
                active.Select(t => t.NextFireTimeUtc).Where(t => t is not null).Min(),
                triggers.Select(t => t.PreviousFireTimeUtc).Where(t => t is not null).Max(),
                last.GetValueOrDefault((key.Group, key.Name))));
        }
        return result;
    }

    /// <summary>Fires the job once, now, on whichever node picks it up first.</summary>
    public async Task RunNowAsync(string group, string name, CancellationToken ct = default)
    {
        var key = await FindAsync(group, name, ct);
        await scheduler.TriggerJob(key, new JobDataMap(), ct);
    }

    /// <summary>Stops scheduled runs until resumed; a run already executing finishes.</summary>
    public async Task PauseAsync(string group, string name, CancellationToken ct = default)
    {
        var key = await FindAsync(group, name, ct);
        await scheduler.PauseJob(key, ct);
    }

    public async Task ResumeAsync(string group, string name, CancellationToken ct = default)
    {
        var key = await FindAsync(group, name, ct);
        await scheduler.ResumeJob(key, ct);
    }

    public async Task<Page<JobRun>> RecentRunsAsync(string group, string name, int skip, int take, CancellationToken ct = default)
    {
        await FindAsync(group, name, ct);
        return await runs.RecentAsync(group, name, skip, take, ct);
    }

    public async Task<SchedulerNodes> NodesAsync(CancellationToken ct = default)
    {
        var self = scheduler.Status == SchedulerStatus.Running;
        var nodes = await scheduler.QueryClusterNodes(ct);
        var alive = nodes.Where(n => n.IsCurrentNode ? self : n.State == ClusterNodeState.Alive).Select(n => n.InstanceId).ToList();
        return new SchedulerNodes(self, alive);
    }

    private async Task<JobKey> FindAsync(string group, string name, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(group) || string.IsNullOrWhiteSpace(name)) throw DomainException.NotFound("The job");
        var key = new JobKey(name, group);
        if (!await scheduler.Exists(key, ct)) throw DomainException.NotFound($"Job '{group}.{name}'");
        return key;
    }

    private static string Summarize(IReadOnlyCollection<TriggerState> states)
    {
        if (states.Contains(TriggerState.Error)) return JobStates.Error;
        if (states.Contains(TriggerState.Blocked) || states.Contains(TriggerState.Executing)) return JobStates.Running;
        if (states.Count > 0 && states.All(s => s is TriggerState.Paused or TriggerState.Complete)) return states.Contains(TriggerState.Paused) ? JobStates.Paused : JobStates.Normal;
        return JobStates.Normal;
    }
}
