using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Portal.Jobs;

public static class JobsHosting
{
    /// <summary>Registers Quartz with its persistent store in the portal database and the portal's jobs.</summary>
    public static IServiceCollection AddPortalJobs(this IServiceCollection services, IConfiguration configuration, bool runScheduler)
    {
        // Filled in by the Jobs work item.
        return services;
    }
}
