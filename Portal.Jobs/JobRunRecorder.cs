using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Portal.Domain.Operations;
using Quartz;

namespace Portal.Jobs;

/// <summary>Writes every execution to job_runs (running, then succeeded or failed) from whichever node ran it.</summary>
public sealed class JobRunRecorder(JobRunLog log, ILogger<JobRunRecorder> logger) : IJobListener
{
    private readonly ConcurrentDictionary<string, Guid> running = new();

    public string Name => "portal-job-runs";

    public async ValueTask JobToBeExecuted(IJobExecutionContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            var key = context.JobDetail.Key;
            var id = await log.StartedAsync(new JobRunStart(key.Name, key.Group, context.Trigger.Key.Name, context.FireInstanceId,
                context.ScheduledFireTimeUtc, context.Scheduler.SchedulerInstanceId), CancellationToken.None);
            running[context.FireInstanceId] = id;
        }
        catch (Exception e)
        {
            // History is not worth failing the job for; the job itself still runs and logs.
            logger.LogWarning(e, "Could not record the start of job {Job} ({FireInstanceId})", context.JobDetail.Key, context.FireInstanceId);
        }
    }

    public async ValueTask JobWasExecuted(IJobExecutionContext context, JobExecutionException? jobException, CancellationToken cancellationToken = default)
    {
        if (!running.TryRemove(context.FireInstanceId, out var id)) return;
        var failed = jobException is not null;
        var message = failed
            ? (jobException!.InnerException ?? jobException).Message
            : context.Result as string;
        try
        {
            await log.FinishedAsync(id, !failed, message, CancellationToken.None);
        }
        catch (Exception e)
        {
            logger.LogWarning(e, "Could not record the outcome of job {Job} ({FireInstanceId})", context.JobDetail.Key, context.FireInstanceId);
        }
    }

    public ValueTask JobExecutionVetoed(IJobExecutionContext context, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;
}
