using Microsoft.Extensions.FileProviders;

using Portal.Domain.Persistence;

namespace Portal.Hosting;

public static class BlazorScript
{
    /// <summary>
    /// Serves the blazor.web.js extracted at build time (see build/BlazorScript.targets) at its usual address.
    /// The framework's own static asset pack is not on our feed.
    /// </summary>
    public static void MapBlazorScript(this WebApplication app)
    {
        var dir = Path.Combine(AppContext.BaseDirectory, "blazor-script");
        if (!File.Exists(Path.Combine(dir, "blazor.web.js")))
            throw new ConfigurationException("blazor.web.js is missing next to the portal binaries; rebuild the Portal project (it is extracted at build time).");
        app.UseStaticFiles(new StaticFileOptions
        {
            FileProvider = new PhysicalFileProvider(dir),
            RequestPath = "/_framework",
            OnPrepareResponse = c => c.Context.Response.Headers.CacheControl = "no-cache",
        });
    }
}
