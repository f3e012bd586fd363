using Microsoft.Extensions.Logging;
using Portal.Domain;
using Portal.Domain.Security.Detectors;
using Quartz;

namespace Portal.Jobs.Security;

/// <summary>
/// Every five minutes: the anomaly scan over the audit trail since its watermark (see <see cref="AnomalyScanner"/>).
/// Never two at once in the cluster (DisallowConcurrentExecution); the watermark's compare-and-set guards the rest.
/// </summary>
[DisallowConcurrentExecution]
public sealed class AnomalyScanJob(AnomalyScanner scanner, ILogger<AnomalyScanJob> logger) : IJob
{
    public static readonly JobKey Key = new("anomaly-scan", "security");
    public const string Cron = "0 0/5 * * * ?";
    public const string Description = "Scans new audit events for brute force, off-hours access, new sources, volume spikes, bulk exports, privilege changes and dormant keys.";

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            var report = await scanner.ScanAsync(cancellationToken);
            context.Result = report.Summary;
        }
        catch (DomainException e) when (e.Kind == ErrorKind.Conflict)
        {
            // Another node committed the same range first; the next run continues from its watermark.
            logger.LogInformation("Anomaly scan skipped a range another node had just scanned");
            context.Result = "Skipped: another node scanned the same events at the same time.";
        }
    }
}
