using Portal.Domain.Persistence;
using Portal.Hosting;

try
{
    // "--demo" creates the demo project (one account per role) on start; the password is printed once.
    var demo = args.Contains("--demo");
    var builder = WebApplication.CreateBuilder(args.Where(a => a != "--demo").ToArray());
    if (demo) builder.Configuration["Portal:SeedDemo"] = "true";
    builder.AddPortal();
    var app = builder.Build();
    app.UsePortal();
    await app.PrepareAsync();
    await app.RunAsync();
}
catch (Exception e) when (e is ConfigurationException or MigrationException)
{
    // One clear line naming the setting or script, instead of a stack trace.
    Console.Error.WriteLine($"Portal cannot start: {e.Message}");
    Environment.ExitCode = 2;
}

public partial class Program;
