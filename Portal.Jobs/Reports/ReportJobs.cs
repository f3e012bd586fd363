using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Portal.Domain.Compliance;
using Quartz;

namespace Portal.Jobs.Reports;

/// <summary>
/// Generates queued compliance reports (periods too large to render in a page request). Triggered at once when such a
/// report is requested, and every 5 minutes as a sweep that also restarts generations whose process died. Several
/// workers may run it: each report is claimed with a compare-and-set on its status (see ComplianceReportService).
/// </summary>
[DisallowConcurrentExecution]
public sealed class ReportGenerationJob(ComplianceReportService reports, ILogger<ReportGenerationJob> logger) : IJob
{
    public static readonly JobKey Key = new("report-generation", "compliance");
    public const string Cron = "0 0/5 * * * ?";
    public const string Description = "Generates queued compliance reports (large periods) and restarts interrupted ones.";

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken = default)
    {
        var n = await reports.RunQueuedAsync(context.Scheduler.SchedulerInstanceId, cancellationToken);
        context.Result = $"Generated {n} report(s).";
        if (n > 0) logger.LogInformation("Report job generated {Count} report(s)", n);
    }
}

/// <summary>Runs the monthly and quarterly report schedules that are due (hourly, so a missed boundary is caught up).</summary>
[DisallowConcurrentExecution]
public sealed class ScheduledReportsJob(ReportScheduleService schedules, ILogger<ScheduledReportsJob> logger) : IJob
{
    public static readonly JobKey Key = new("scheduled-reports", "compliance");
    public const string Cron = "0 10 * * * ?";
    public const string Description = "Generates the monthly and quarterly compliance reports that are due and adds them to each project's archive.";

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken = default)
    {
        var n = await schedules.RunDueAsync(context.Scheduler.SchedulerInstanceId, cancellationToken);
        context.Result = $"Generated {n} scheduled report(s).";
        if (n > 0) logger.LogInformation("Scheduled reports job generated {Count} report(s)", n);
    }
}

/// <summary>Starts the report job now through the shared Quartz store, so whichever node runs jobs picks the report up at its next poll.</summary>
public sealed class QuartzReportJobTrigger([FromKeyedServices(JobsHosting.SchedulerName)] IScheduler scheduler) : IReportJobTrigger
{
    public async Task TriggerAsync(CancellationToken ct) => await scheduler.TriggerJob(ReportGenerationJob.Key, ct);
}
