using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.Json;

namespace Portal.Domain.Persistence;

public static class SharedConfiguration
{
    /// <summary>
    /// Adds the repository-root appsettings.json (copied next to each executable) as the lowest-priority source, so the
    /// portal and the standalone worker share one settings file while environment variables and arguments override it.
    /// </summary>
    public static void AddSharedSettings(this IConfigurationManager configuration)
    {
        var file = Path.Combine(AppContext.BaseDirectory, "appsettings.json");
        if (!File.Exists(file)) return;
        var source = new JsonConfigurationSource { Path = file, Optional = true, ReloadOnChange = false };
        source.ResolveFileProvider();
        ((IConfigurationBuilder)configuration).Sources.Insert(0, source);
    }
}
