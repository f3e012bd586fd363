using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Portal.Domain;
using Portal.Domain.Operations;
using Portal.Jobs;
using Portal.Tests.Infrastructure;
using Quartz;

namespace Portal.Tests.Jobs;

/// <summary>Job-scheduler nodes over a test database, configured exactly as the portal and the worker configure theirs.</summary>
public static class JobHosts
{
    public static async Task<IHost> StartAsync(TestDatabase db, string instanceName, bool runScheduler = true, CapturedLogs? logs = null, TimeProvider? clock = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
        {
            EnvironmentName = "Testing", ContentRootPath = db.DataDirectory, Args = [],
        });
        builder.Configuration.AddInMemoryCollection(db.Settings);
        builder.Configuration["Jobs:InstanceName"] = instanceName;
        builder.Logging.ClearProviders();
        if (logs is not null) builder.Logging.AddProvider(logs);
        if (clock is not null) builder.Services.AddSingleton(clock);
        builder.Services.AddPortalDomain(builder.Configuration);
        builder.Services.AddPortalJobs(builder.Configuration, runScheduler);
        var host = builder.Build();
        await host.StartAsync();
        if (runScheduler)
        {
            // The hosted service starts the scheduler once the application has started; wait for it so tests see a live node.
            var scheduler = await host.Services.SchedulerAsync();
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (scheduler.Status != SchedulerStatus.Running)
            {
                if (DateTime.UtcNow > deadline) throw new TimeoutException($"scheduler {instanceName} did not start: {scheduler.Status}");
                await Task.Delay(50);
            }
        }
        return new StoppingHost(host);
    }

    /// <summary>
    /// Disposing stops the host first, as the real worker does on shutdown: the Quartz scheduler then shuts down while
    /// the service provider is alive. Disposing a running host directly races Quartz's cluster manager against the
    /// provider's disposal (ObjectDisposedException while it polls for interrupts).
    /// </summary>
    private sealed class StoppingHost(IHost inner) : IHost
    {
        public IServiceProvider Services => inner.Services;
        public Task StartAsync(CancellationToken cancellationToken = default) => inner.StartAsync(cancellationToken);
        public Task StopAsync(CancellationToken cancellationToken = default) => inner.StopAsync(cancellationToken);

        public void Dispose()
        {
            try { inner.StopAsync(TimeSpan.FromSeconds(30)).GetAwaiter().GetResult(); }
            finally { inner.Dispose(); }
        }
    }

    public static Task<IScheduler> SchedulerAsync(this IServiceProvider services) =>
        Task.FromResult(services.GetRequiredKeyedService<IScheduler>(JobsHosting.SchedulerName));

    /// <summary>
    /// Waits until the store shows the nodes a test expects: a node starts its scheduler after the host has started
    /// and checks in shortly after that, so a single read right after start can miss it.
    /// </summary>
    public static async Task<SchedulerNodes> WaitForNodesAsync(JobsDashboard dashboard, Func<SchedulerNodes, bool> expected, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        while (true)
        {
            var nodes = await dashboard.NodesAsync();
            if (expected(nodes)) return nodes;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"cluster never reached the expected nodes; last seen: {string.Join(", ", nodes.AliveNodes)}");
            await Task.Delay(200);
        }
    }

    /// <summary>Waits for a finished run of the job (succeeded or failed), newest first.</summary>
    public static async Task<JobRun> WaitForFinishedRunAsync(JobRunLog log, JobKey key, TimeSpan timeout, Func<JobRun, bool>? match = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var page = await log.RecentAsync(key.Group, key.Name, 0, 50);
            var done = page.Items.FirstOrDefault(r => r.Outcome != JobOutcomes.Running && (match?.Invoke(r) ?? true));
            if (done is not null) return done;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"No finished run of {key} within {timeout}; runs seen: {string.Join(", ", page.Items.Select(r => r.Outcome))}");
            await Task.Delay(200);
        }
    }
}
