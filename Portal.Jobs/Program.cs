using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Portal.Domain;
using Portal.Domain.Persistence;
using Quartz;

namespace Portal.Jobs;

/// <summary>
/// The standalone job worker: runs the portal's jobs against the same PostgreSQL database as the portal, as one more
/// node of the Quartz cluster. Start as many as needed; each trigger still fires once. Run the portal with
/// Jobs:RunInPortal=false to leave execution to the workers only.
/// A named class, not top-level statements, because Portal references this assembly and has its own entry point.
/// </summary>
public static class Worker
{
    public static async Task<int> Main(string[] args)
    {
        try
        {
            using var host = Build(args);
            await PrepareAsync(host);
            await host.StartAsync();
            var scheduler = host.Services.GetRequiredKeyedService<IScheduler>(JobsHosting.SchedulerName);
            host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Portal.Jobs.Worker")
                .LogInformation("Worker {InstanceId} is running jobs of scheduler {Scheduler}", scheduler.SchedulerInstanceId, scheduler.SchedulerName);
            await host.WaitForShutdownAsync();
            return 0;
        }
        catch (Exception e) when (e is ConfigurationException or MigrationException)
        {
            // One clear line naming the setting or script, instead of a stack trace.
            Console.Error.WriteLine($"Portal.Jobs worker cannot start: {e.Message}");
            return 2;
        }
    }

    public static IHost Build(string[] args)
    {
        var builder = Host.CreateApplicationBuilder(args);
        builder.Configuration.AddSharedSettings();
        if (string.IsNullOrWhiteSpace(builder.Configuration["Jobs:InstanceName"])) builder.Configuration["Jobs:InstanceName"] = "worker";

        builder.Logging.ClearProviders();
        builder.Logging.AddJsonConsole(o =>
        {
            o.UseUtcTimestamp = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
        });

        var db = builder.Configuration.GetSection(DatabaseOptions.Section).Get<DatabaseOptions>() ?? new DatabaseOptions();
        // SQLite has no cluster locking across processes, so a worker beside the portal would run each job twice.
        // There the portal runs the jobs itself (Jobs:RunInPortal=true, the default).
        if (db.ParsedProvider != DatabaseProvider.Postgres)
            throw new ConfigurationException("Database:Provider must be 'Postgres' for the standalone worker; with SQLite the portal runs the jobs itself (Jobs:RunInPortal=true).");

        builder.Services.AddPortalDomain(builder.Configuration);
        builder.Services.AddPortalJobs(builder.Configuration, runScheduler: true);
        return builder.Build();
    }

    /// <summary>Applies the portal's database scripts (the worker may start first) before the scheduler starts.</summary>
    public static async Task PrepareAsync(IHost host)
    {
        var logger = host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Portal.Jobs.Worker");
        var db = host.Services.GetRequiredService<PortalDatabase>();
        await db.MigrateAtStartupAsync(logger, clock: host.Services.GetRequiredService<TimeProvider>());
        await Portal.Domain.Security.DatabaseKeyRing.EnsureReadableAsync(host.Services.GetRequiredService<Microsoft.EntityFrameworkCore.IDbContextFactory<Portal.Domain.Persistence.PortalDbContext>>(),
            host.Services.GetRequiredService<Portal.Domain.Security.SecretProtector>());
    }
}
