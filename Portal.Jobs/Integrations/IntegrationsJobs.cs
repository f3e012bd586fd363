using Microsoft.Extensions.Logging;
using Portal.Domain.Compliance.Retention;
using Portal.Domain.Integrations;
using Quartz;

namespace Portal.Jobs.Integrations;

/// <summary>
/// Every 10 seconds: turns outbox messages into webhook/Slack/Teams deliveries, sends what is due, and exports the audit
/// trail to SIEM integrations. Several workers may run it on PostgreSQL: deliveries and integrations are claimed with
/// leases in the database, so each is sent by one worker at a time.
/// </summary>
[DisallowConcurrentExecution]
public sealed class IntegrationsJob(WebhookDispatcher dispatcher, SiemExporter exporter, ILogger<IntegrationsJob> logger) : IJob
{
    public static readonly JobKey Key = new("integrations-dispatch", "integrations");
    public const string Cron = "0/10 * * * * ?";
    public const string Description = "Sends webhooks, Slack/Teams messages (with retries) and SIEM exports.";

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken = default)
    {
        var worker = context.Scheduler.SchedulerInstanceId;
        var hooks = await dispatcher.RunOnceAsync(worker, ct: cancellationToken);
        var siem = await exporter.RunOnceAsync(worker, ct: cancellationToken);
        context.Result = $"Staged {hooks.Staged} message(s); {hooks.Delivered} delivered, {hooks.Retrying} to retry, {hooks.Failed} failed; exported {siem.Exported} event(s) to {siem.Integrations} SIEM integration(s).";
        if (hooks.Attempted > 0 || siem.Exported > 0) logger.LogInformation("{Result}", context.Result);
    }
}

/// <summary>
/// Nightly: moves audit events past their retention horizon into compressed archive files with manifests. On PostgreSQL
/// it first creates the coming months' audit partitions, and afterwards drops the months the run emptied whole.
/// </summary>
[DisallowConcurrentExecution]
public sealed class AuditArchiveJob(AuditArchiver archiver, AuditPartitions partitions, ILogger<AuditArchiveJob> logger) : IJob
{
    public static readonly JobKey Key = new("audit-archive", "retention");
    public const string Cron = "0 30 2 * * ?";
    public const string Description = "Archives audit events older than each project's retention policy into compressed JSONL files and deletes them from the database.";

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken = default)
    {
        await partitions.EnsureAsync(cancellationToken);
        var r = await archiver.ArchiveAsync(cancellationToken);
        var dropped = await partitions.DropEmptiedAsync(cancellationToken);
        context.Result = $"Archived {r.EventsArchived} event(s) of {r.Projects} project(s) into {r.Files} file(s)." +
            (dropped.Count > 0 ? $" Dropped {dropped.Count} archived month partition(s): {string.Join(", ", dropped)}." : "");
        logger.LogInformation("{Result}", context.Result);
    }
}
