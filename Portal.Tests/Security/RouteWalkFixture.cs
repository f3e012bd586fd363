using System.Text;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Patterns;
using Portal.Domain.Suite;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Security;

/// <summary>
/// One portal per provider for the route walk: an admin and a <c>user</c> in project A (suite at Enterprise Plus,
/// every module on, so only roles decide), and an outsider who is admin of project B only.
/// </summary>
public sealed class RouteWalkFixture : IAsyncLifetime
{
    private readonly Dictionary<string, RouteWalkWorld> worlds = new();
    private readonly SemaphoreSlim gate = new(1, 1);

    public async Task<RouteWalkWorld> WorldAsync(string provider)
    {
        await gate.WaitAsync();
        try
        {
            if (!worlds.TryGetValue(provider, out var world)) worlds[provider] = world = await RouteWalkWorld.CreateAsync(provider);
            return world;
        }
        finally { gate.Release(); }
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var w in worlds.Values) await w.DisposeAsync();
    }
}

public sealed class RouteWalkWorld : IAsyncDisposable
{
    public required TestDatabase Db { get; init; }
    public required PortalApp App { get; init; }
    public required Guid ProjectId { get; init; }
    public required Guid OtherProjectId { get; init; }
    public required HttpClient Anonymous { get; init; }
    public required HttpClient Admin { get; init; }
    public required HttpClient User { get; init; }
    public required HttpClient Outsider { get; init; }

    public static async Task<RouteWalkWorld> CreateAsync(string provider)
    {
        var db = await TestDatabase.CreateAsync(provider);
        var app = new PortalApp(db);
        var (admin, projectId) = await app.SetupAsync();
        await app.InstallSuiteAsync(projectId, admin.Id, Tier.EnterprisePlus, Modules.All.Select(m => m.Id).Where(m => m != Modules.Audit).ToArray());
        var other = await app.Get<ProjectService>().CreateAsync(admin.Id, "Other bank unit", null);
        await app.AddMemberAsync(other.Id, "outsider@bank.test", Roles.Admin, admin.Id);
        await app.AddMemberAsync(projectId, "user@bank.test", Roles.User, admin.Id);
        // Routes addressing a record of the project (an alert) need a real one to render for the project's own admin.
        var now = DateTimeOffset.UtcNow;
        await app.Get<Portal.Domain.Security.Alerts.AlertService>().RaiseAsync([new(projectId, "injection", "injection_attempt", "warning", "gateway", "ip", "10.0.0.1", null,
            null, null, "Route walk alert", "Seeded for the route walk.", new { }, [], now, now)]);
        var alert = (await app.Get<Portal.Domain.Security.Alerts.AlertService>().ListAsync(projectId, new(), 0, 1)).Items.Single();
        KnownIds[(projectId, "AlertId")] = alert.Id.ToString();
        return new RouteWalkWorld
        {
            Db = db, App = app, ProjectId = projectId, OtherProjectId = other.Id,
            Anonymous = app.Client(),
            Admin = await app.SignedInClientAsync(admin.Email!),
            User = await app.SignedInClientAsync("user@bank.test"),
            Outsider = await app.SignedInClientAsync("outsider@bank.test"),
        };
    }

    /// <summary>Ids of real records per project and route parameter name, used by <see cref="UrlFor"/>.</summary>
    public static readonly System.Collections.Concurrent.ConcurrentDictionary<(Guid Project, string Parameter), string> KnownIds = new();

    public IReadOnlyList<RouteEndpoint> Endpoints => App.Get<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>().ToList();

    /// <summary>A concrete address for a route: {ProjectId} becomes the given project, other values fresh ones.</summary>
    public static string UrlFor(RouteEndpoint endpoint, Guid projectId)
    {
        var sb = new StringBuilder();
        foreach (var segment in endpoint.RoutePattern.PathSegments)
        {
            sb.Append('/');
            foreach (var part in segment.Parts)
            {
                sb.Append(part switch
                {
                    RoutePatternLiteralPart l => l.Content,
                    RoutePatternSeparatorPart s => s.Content,
                    RoutePatternParameterPart p when p.Name.Equals("ProjectId", StringComparison.OrdinalIgnoreCase) => projectId.ToString(),
                    RoutePatternParameterPart p when KnownIds.TryGetValue((projectId, p.Name), out var known) => known,
                    RoutePatternParameterPart { IsCatchAll: true } => "no-such-file.txt",
                    RoutePatternParameterPart p when p.ParameterPolicies.Any(x => x.Content is "int" or "long") => "1",
                    RoutePatternParameterPart p when p.ParameterPolicies.Any(x => x.Content == "guid") => Guid.NewGuid().ToString(),
                    RoutePatternParameterPart => "x" + Guid.NewGuid().ToString("N")[..8],
                    _ => throw new InvalidOperationException($"Unexpected route part in {endpoint.RoutePattern.RawText}"),
                });
            }
        }
        return sb.Length == 0 ? "/" : sb.ToString();
    }

    public async ValueTask DisposeAsync()
    {
        await App.DisposeAsync();
        await Db.DisposeAsync();
    }
}
