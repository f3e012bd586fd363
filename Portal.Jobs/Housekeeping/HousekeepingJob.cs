using Microsoft.Extensions.Logging;
using Portal.Domain.Operations;
using Quartz;

namespace Portal.Jobs.Housekeeping;

/// <summary>Hourly clean-up of rows that no longer serve anyone (see <see cref="HousekeepingService"/>).</summary>
[DisallowConcurrentExecution]
public sealed class HousekeepingJob(HousekeepingService housekeeping, JobRunLog runs, Portal.Domain.Security.SecretRotation rotation, ILogger<HousekeepingJob> logger) : IJob
{
    public static readonly JobKey Key = new("housekeeping", "portal");
    public const string Cron = "0 0 * * * ?";
    public const string Description = "Deletes setup tokens that expired or were used over a day ago and job history older than 30 days; closes runs left running by a stopped process; re-encrypts stored secrets under the newest encryption key.";

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken = default)
    {
        var result = await housekeeping.PurgeAsync(cancellationToken);
        // The cluster's live nodes (just this one on SQLite): a run owned by any other instance can never finish.
        var alive = (await context.Scheduler.QueryClusterNodes(cancellationToken))
            .Where(n => n.IsCurrentNode || n.State == ClusterNodeState.Alive).Select(n => n.InstanceId).ToList();
        if (!alive.Contains(context.Scheduler.SchedulerInstanceId)) alive.Add(context.Scheduler.SchedulerInstanceId);
        var interrupted = await runs.CloseInterruptedAsync(alive, cancellationToken);
        var rotated = await rotation.RotateAsync(cancellationToken);
        context.Result = $"Deleted {result.SetupTokensDeleted} setup token(s) and {result.JobRunsDeleted} job run(s); closed {interrupted} interrupted run(s); " +
            $"re-encrypted {rotated.Total} stored secret(s) under the newest key.";
        if (rotated.Total > 0)
            logger.LogInformation("Re-encrypted {Count} stored secret(s) under the newest encryption key ({Datasources} datasource passwords, {Webhooks} webhooks, " +
                "{Siem} SIEM tokens, {Certificates} signing certificates, {Keys} data-protection keys)",
                rotated.Total, rotated.Datasources, rotated.Webhooks, rotated.SiemIntegrations, rotated.SigningCertificates, rotated.DataProtectionKeys);
        if (rotated.Unreadable > 0)
            logger.LogWarning("{Count} data-protection key(s) in the database cannot be opened with this process's Security:EncryptionKeys; they were left as they are", rotated.Unreadable);
        if (interrupted > 0) logger.LogWarning("Housekeeping closed {Count} job run(s) left running by a stopped process", interrupted);
        logger.LogInformation("Housekeeping deleted {SetupTokens} setup token(s) and {JobRuns} job run(s)", result.SetupTokensDeleted, result.JobRunsDeleted);
    }
}
