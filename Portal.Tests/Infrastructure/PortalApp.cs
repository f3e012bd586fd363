using System.Net;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Portal.Domain.Suite;
using Portal.Domain.Tenancy;

namespace Portal.Tests.Infrastructure;

/// <summary>
/// The real portal over a real database. HTTP tests use <see cref="WebApplicationFactory{T}.CreateClient()"/>;
/// browser tests call <see cref="StartKestrel"/> and point Chromium at <see cref="BaseUrl"/>.
/// </summary>
public sealed class PortalApp : WebApplicationFactory<Program>
{
    public TestDatabase Database { get; }
    private readonly Dictionary<string, string?> extra;
    public string? BaseUrl { get; private set; }
    public CapturedLogs Logs { get; } = new();

    /// <summary>Service overrides applied after the portal's own registrations (e.g. a shorter security-stamp interval).</summary>
    public Action<IServiceCollection>? ConfigureServices { get; init; }

    public PortalApp(TestDatabase database, Dictionary<string, string?>? settings = null)
    {
        Database = database;
        extra = settings ?? new();
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Testing");
        // Outside Development the host serves package assets (_content/Radzen.Blazor/...) only from a published
        // wwwroot; tests run from the build output, so read them where the build manifest says they are.
        builder.UseStaticWebAssets();
        foreach (var (k, v) in Database.Settings) builder.UseSetting(k, v);
        builder.UseSetting("Jobs:RunInPortal", "false");
        builder.UseSetting("Urls", "http://127.0.0.1:0");
        foreach (var (k, v) in extra) builder.UseSetting(k, v);
        builder.ConfigureLogging(l => l.AddProvider(Logs));
        if (ConfigureServices is not null) builder.ConfigureTestServices(ConfigureServices);
    }

    private bool kestrel;

    /// <summary>
    /// A portal served by Kestrel on a free loopback port from the start, so a browser test may seed data through
    /// <see cref="Services"/> before it opens Chromium (the in-memory TestServer cannot be swapped afterwards).
    /// </summary>
    public static PortalApp ForBrowser(TestDatabase database, Dictionary<string, string?>? settings = null, Action<IServiceCollection>? services = null)
    {
        var app = new PortalApp(database, settings) { ConfigureServices = services };
        app.UseKestrel(0);
        app.kestrel = true;
        return app;
    }

    /// <summary>Serves on a real loopback port (for Chromium) and returns the base address.</summary>
    public string StartKestrel()
    {
        if (BaseUrl is not null) return BaseUrl;
        if (!kestrel)
        {
            try { UseKestrel(0); }
            catch (InvalidOperationException e)
            {
                throw new InvalidOperationException("The portal already runs in memory: create it with PortalApp.ForBrowser(db) to use Services before StartKestrel().", e);
            }
            kestrel = true;
        }
        StartServer();
        var addresses = Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>()
            .Features.Get<Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature>()!.Addresses;
        BaseUrl = addresses.First().Replace("[::]", "127.0.0.1").Replace("0.0.0.0", "127.0.0.1").TrimEnd('/');
        return BaseUrl;
    }

    public HttpClient Client(bool followRedirects = false) => CreateClient(new WebApplicationFactoryClientOptions
    {
        AllowAutoRedirect = followRedirects, HandleCookies = true, BaseAddress = new Uri("http://localhost"),
    });

    public T Get<T>() where T : notnull => Services.GetRequiredService<T>();

    public async Task<T> WithScopeAsync<T>(Func<IServiceProvider, Task<T>> action)
    {
        await using var scope = Services.CreateAsyncScope();
        return await action(scope.ServiceProvider);
    }

    /// <summary>Completes first-run setup: an organization admin who is admin of one project.</summary>
    public async Task<(PortalUser Admin, Guid ProjectId)> SetupAsync(string email = "admin@bank.test", string password = TestUsers.Password)
    {
        return await WithScopeAsync(async sp =>
        {
            var setup = sp.GetRequiredService<SetupService>();
            var token = await setup.IssueTokenAsync() ?? throw new InvalidOperationException("setup already done");
            var admin = await setup.CompleteAsync(new SetupRequest(token, "Test Bank", "Payments", email, "Ada Admin", password));
            var project = (await sp.GetRequiredService<ProjectService>().ListForUserAsync(admin.Id, 0, 10)).Items.Single();
            return (admin, project.Id);
        });
    }

    /// <summary>Adds a member with a known password and returns the user's id.</summary>
    public async Task<Guid> AddMemberAsync(Guid projectId, string email, string role, Guid actor, string password = TestUsers.Password)
    {
        return await WithScopeAsync(async sp =>
        {
            var result = await sp.GetRequiredService<MembershipService>().AddAsync(projectId, email, role, actor);
            var users = sp.GetRequiredService<Microsoft.AspNetCore.Identity.UserManager<PortalUser>>();
            var user = await users.FindByEmailAsync(email);
            if (result.TemporaryPassword is not null)
            {
                var reset = await users.RemovePasswordAsync(user!);
                if (!reset.Succeeded) throw new InvalidOperationException("cannot reset password");
                var set = await users.AddPasswordAsync(user!, password);
                if (!set.Succeeded) throw new InvalidOperationException(string.Join(" ", set.Errors.Select(e => e.Description)));
            }
            return user!.Id;
        });
    }

    public async Task InstallSuiteAsync(Guid projectId, Guid actor, Tier tier = Tier.EnterprisePlus, params string[] modules)
    {
        var suite = Get<SuiteService>();
        await suite.InstallAsync(projectId, tier, actor);
        foreach (var m in modules) await suite.SetModuleAsync(projectId, m, true, actor);
    }

    /// <summary>Signs in through the real login form (antiforgery included) and returns the client holding the cookie.</summary>
    public async Task<HttpClient> SignedInClientAsync(string email, string password = TestUsers.Password)
    {
        var client = Client();
        var response = await Forms.PostLoginAsync(client, email, password);
        if (response.StatusCode != HttpStatusCode.Redirect)
            throw new InvalidOperationException($"Sign-in as {email} failed: {(int)response.StatusCode}");
        return client;
    }
}

public static class TestUsers
{
    public const string Password = "Correct-Horse-42-Battery";
}
