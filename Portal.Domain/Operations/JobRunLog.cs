using Microsoft.EntityFrameworkCore;
using Portal.Domain.Persistence;

namespace Portal.Domain.Operations;

public static class JobOutcomes
{
    public const string Running = "running";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
}

public sealed record JobRunStart(string JobName, string JobGroup, string? TriggerName, string FireInstanceId, DateTimeOffset? ScheduledFor, string InstanceName);

/// <summary>The history of background-job executions (job_runs), written by whichever process ran the job.</summary>
public sealed class JobRunLog(IDbContextFactory<PortalDbContext> dbFactory, TimeProvider clock)
{
    public const int MessageLimit = 2000;

    public async Task<Guid> StartedAsync(JobRunStart start, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var run = new JobRun
        {
            JobName = Clip(start.JobName, 200)!, JobGroup = Clip(start.JobGroup, 200)!, TriggerName = Clip(start.TriggerName, 200),
            FireInstanceId = Clip(start.FireInstanceId, 200)!, ScheduledFor = start.ScheduledFor, StartedAt = clock.GetUtcNow(),
            Outcome = JobOutcomes.Running, InstanceName = Clip(start.InstanceName, 200)!,
        };
        db.JobRuns.Add(run);
        await db.SaveChangesAsync(ct);
        return run.Id;
    }

    public async Task FinishedAsync(Guid runId, bool succeeded, string? message, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var now = clock.GetUtcNow();
        var outcome = succeeded ? JobOutcomes.Succeeded : JobOutcomes.Failed;
        var text = Clip(message, MessageLimit);
        await db.JobRuns.Where(r => r.Id == runId)
            .ExecuteUpdateAsync(s => s.SetProperty(r => r.FinishedAt, now).SetProperty(r => r.Outcome, outcome).SetProperty(r => r.Message, text), ct);
    }

    /// <summary>A run younger than this is never called interrupted: its node may not have checked in to the cluster yet.</summary>
    public static readonly TimeSpan InterruptedGrace = TimeSpan.FromMinutes(5);

    public const string InterruptedMessage = "Interrupted: the process running this job stopped before it finished.";

    /// <summary>
    /// Closes runs left "running" by a process that died (kill, crash, power loss): their instance is no longer among
    /// <paramref name="aliveInstances"/>, so no one will ever record their outcome. Returns how many were closed.
    /// </summary>
    public async Task<int> CloseInterruptedAsync(IReadOnlyCollection<string> aliveInstances, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var now = clock.GetUtcNow();
        var cutoff = now - InterruptedGrace;
        var alive = aliveInstances.ToList();
        return await db.JobRuns
            .Where(r => r.Outcome == JobOutcomes.Running && r.StartedAt <= cutoff && !alive.Contains(r.InstanceName))
            .ExecuteUpdateAsync(s => s.SetProperty(r => r.Outcome, JobOutcomes.Failed).SetProperty(r => r.FinishedAt, now)
                .SetProperty(r => r.Message, InterruptedMessage), ct);
    }

    /// <summary>Newest first, for one job.</summary>
    public async Task<Page<JobRun>> RecentAsync(string jobGroup, string jobName, int skip, int take, CancellationToken ct = default)
    {
        skip = Math.Max(0, skip);
        take = Math.Clamp(take, 1, 200);
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var query = db.JobRuns.AsNoTracking().Where(r => r.JobGroup == jobGroup && r.JobName == jobName);
        var total = await query.CountAsync(ct);
        var items = await query.OrderByDescending(r => r.StartedAt).ThenByDescending(r => r.Id).Skip(skip).Take(take).ToListAsync(ct);
        return new Page<JobRun>(items, total, skip, take);
    }

    /// <summary>The latest run of each of the given jobs (absent when a job never ran).</summary>
    public async Task<IReadOnlyDictionary<(string Group, string Name), JobRun>> LatestAsync(IEnumerable<(string Group, string Name)> jobs, CancellationToken ct = default)
    {
        var result = new Dictionary<(string, string), JobRun>();
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        // One indexed lookup per job: the job list is short and (job_group, job_name, started_at) is indexed.
        foreach (var (group, name) in jobs.Distinct())
        {
            var last = await db.JobRuns.AsNoTracking().Where(r => r.JobGroup == group && r.JobName == name)
                .OrderByDescending(r => r.StartedAt).ThenByDescending(r => r.Id).FirstOrDefaultAsync(ct);
            if (last is not null) result[(group, name)] = last;
        }
        return result;
    }

    private static string? Clip(string? value, int max) => value is null || value.Length <= max ? value : value[..(max - 1)] + "…";
}
