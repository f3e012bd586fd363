using Microsoft.Extensions.Logging;
using Portal.Domain.Operations;
using Quartz;

namespace Portal.Jobs.Housekeeping;

/// <summary>Hourly clean-up of rows that no longer serve anyone (see <see cref="HousekeepingService"/>).</summary>
[DisallowConcurrentExecution]
public sealed class HousekeepingJob(HousekeepingService housekeeping, ILogger<HousekeepingJob> logger) : IJob
{
    public static readonly JobKey Key = new("housekeeping", "portal");
    public const string Cron = "0 0 * * * ?";
    public const string Description = "Deletes setup tokens that expired or were used over a day ago, and job history older than 30 days.";

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken = default)
    {
        var result = await housekeeping.PurgeAsync(cancellationToken);
        context.Result = $"Deleted {result.SetupTokensDeleted} setup token(s) and {result.JobRunsDeleted} job run(s).";
        logger.LogInformation("Housekeeping deleted {SetupTokens} setup token(s) and {JobRuns} job run(s)", result.SetupTokensDeleted, result.JobRunsDeleted);
    }
}
