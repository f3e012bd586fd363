using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Portal.Domain.Persistence;
using Portal.Jobs.Governance;
using Portal.Jobs.Housekeeping;
using Quartz;

namespace Portal.Jobs;

public static class JobsHosting
{
    /// <summary>
    /// The Quartz scheduler name: every node (the portal and each worker) must use the same one, because it is the
    /// SCHED_NAME under which jobs, triggers and cluster check-ins live in the shared store.
    /// </summary>
    public const string SchedulerName = "governance-portal";

    /// <summary>Registers Quartz with its persistent store in the portal database and the portal's jobs.</summary>
    /// <param name="runScheduler">
    /// False keeps this process out of execution: it still reads and changes the shared store (the Jobs page lists,
    /// triggers, pauses and resumes jobs) while the workers run them.
    /// </param>
    public static IServiceCollection AddPortalJobs(this IServiceCollection services, IConfiguration configuration, bool runScheduler)
    {
        // Same settings as AddPortalDomain reads, resolved the same way, so Quartz and EF always share one database.
        var dbOptions = configuration.GetSection(DatabaseOptions.Section).Get<DatabaseOptions>() ?? new DatabaseOptions();
        var provider = dbOptions.ParsedProvider;
        var connectionString = dbOptions.ResolveConnectionString();
        var label = configuration["Jobs:InstanceName"];
        if (string.IsNullOrWhiteSpace(label)) label = "portal";
        if (label.Length > 60 || !label.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            throw new ConfigurationException("Jobs:InstanceName must be at most 60 letters, digits, '-', '_' or '.'.");

        services.AddSingleton<JobRunRecorder>();
        services.AddSingleton<JobsDashboard>();
        services.AddSingleton<Portal.Domain.Compliance.IReportJobTrigger, Reports.QuartzReportJobTrigger>();
        // A named scheduler, because Quartz's UseTimeProvider on the unnamed one replaces the container's TimeProvider,
        // which the Domain services use; named, the scheduler's clock stays its own.
        services.AddQuartz(SchedulerName, q =>
        {
            q.ConfigureScheduler(o =>
            {
                // A node learns of a trigger another process added (Run now on a view-only portal) at its next poll;
                // Quartz's 30 s default makes Run now feel broken, 5 s costs one small query per node.
                o.IdleWaitTime = TimeSpan.FromSeconds(5);
                // Quartz ignores a generator on a store that is not clustered and calls every such node
                // NON_CLUSTERED; a per-process id keeps job_runs.instance_name telling which start ran a job.
                if (provider != DatabaseProvider.Postgres) o.InstanceId = LabelledInstanceIdGenerator.Create(label);
            });
            // Clustered: a generated, unique id (AUTO) per start: two nodes may share a label, never an id. The label
            // only makes job_runs.instance_name and the cluster list readable.
            if (provider == DatabaseProvider.Postgres) q.UseInstanceIdGenerator(new LabelledInstanceIdGenerator(label));
            // Quartz would otherwise take the container's TimeProvider; tests register a manual clock for Domain
            // rules, and the scheduler must keep real time regardless.
            q.UseTimeProvider(TimeProvider.System);
            q.UsePersistentStore(store =>
            {
                if (provider == DatabaseProvider.Postgres)
                {
                    store.UsePostgres(connectionString);
                    store.UseClustering();
                }
                else
                {
                    // SQLite is the single-node embedded mode: the portal runs the jobs itself and no worker may join.
                    store.UseSqlite(connectionString);
                }
                store.UseSystemTextJsonSerializer();
                // QRTZ_* tables belong to Quartz (its own 4.x schema); the portal's tables come only from Database/.
                store.ConfigureStore(o => o.SchemaProvisioning = SchemaProvisioning.CreateIfMissing);
            });
            q.ConfigureOptions<QuartzOptions>(o =>
            {
                // A redeploy re-declares each job; keep the schedule's history (and, per Quartz, an operator's pause).
                o.Scheduling.OverwriteExistingData = true;
                o.Scheduling.ScheduleTriggerRelativeToReplacedTrigger = true;
            });
            q.AddJobListener(sp => sp.GetRequiredService<JobRunRecorder>());

            // One cron-triggered job in UTC, never run twice at once (on PostgreSQL: across the whole cluster).
            void Schedule<TJob>(JobKey key, string cron, string description, CronTriggerMisfireInstruction misfire) where TJob : IJob =>
                q.ScheduleJob<TJob>(
                    t => t.WithIdentity(key.Name, key.Group).WithCronSchedule(cron, c => c.InTimeZone(TimeZoneInfo.Utc).WithMisfireInstruction(misfire)),
                    j => j.WithIdentity(key).WithDescription(description).DisallowConcurrentExecution());
            Schedule<HousekeepingJob>(HousekeepingJob.Key, HousekeepingJob.Cron, HousekeepingJob.Description, CronTriggerMisfireInstruction.FireAndProceed);
            Schedule<SuggestionExpiryJob>(SuggestionExpiryJob.Key, SuggestionExpiryJob.Cron, SuggestionExpiryJob.Description, CronTriggerMisfireInstruction.FireAndProceed);
            Schedule<Security.AnomalyScanJob>(Security.AnomalyScanJob.Key, Security.AnomalyScanJob.Cron, Security.AnomalyScanJob.Description, CronTriggerMisfireInstruction.DoNothing);
            Schedule<Integrations.IntegrationsJob>(Integrations.IntegrationsJob.Key, Integrations.IntegrationsJob.Cron, Integrations.IntegrationsJob.Description, CronTriggerMisfireInstruction.DoNothing);
            Schedule<Integrations.AuditArchiveJob>(Integrations.AuditArchiveJob.Key, Integrations.AuditArchiveJob.Cron, Integrations.AuditArchiveJob.Description, CronTriggerMisfireInstruction.FireAndProceed);
            Schedule<Reports.ReportGenerationJob>(Reports.ReportGenerationJob.Key, Reports.ReportGenerationJob.Cron, Reports.ReportGenerationJob.Description, CronTriggerMisfireInstruction.FireAndProceed);
            Schedule<Reports.ScheduledReportsJob>(Reports.ScheduledReportsJob.Key, Reports.ScheduledReportsJob.Cron, Reports.ScheduledReportsJob.Description, CronTriggerMisfireInstruction.FireAndProceed);
        });

        services.AddQuartzHostedService(SchedulerName, o =>
        {
            o.WaitForJobsToComplete = true;
            // Not starting the scheduler (rather than starting it in standby) is what keeps a view-only portal out of a
            // clustered store: a scheduler that never started never checks in, so it is not a cluster node that the
            // workers would wait on or "recover" from, yet it is built and bound, so the Jobs page can read the store,
            // add a one-off trigger (Run now) and pause or resume triggers, which the running workers then act on.
            o.AutoStart = runScheduler;
        });
        return services;
    }
}
