using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.DependencyInjection;
using Portal.Domain.Security.ApiKeys;
using Portal.Domain.Security.RateLimits;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Security;

/// <summary>A real database with one project, its admin, Domain services and a manual clock.</summary>
internal sealed class SecurityWorld : IAsyncDisposable
{
    public required TestDatabase Db { get; init; }
    public required ServiceProvider Services { get; init; }
    public required ManualClock Clock { get; init; }
    public required Guid ProjectId { get; init; }
    public required Guid Admin { get; init; }

    public ApiKeyService Keys => Services.GetRequiredService<ApiKeyService>();
    public RateLimitService Limits => Services.GetRequiredService<RateLimitService>();
    public RateLimiter Limiter => Services.GetRequiredService<RateLimiter>();

    public static async Task<SecurityWorld> CreateAsync(string provider)
    {
        var db = await TestDatabase.CreateAsync(provider);
        var clock = new ManualClock();
        // Identity's token providers need data protection, which only the web host registers.
        var sp = db.Services(clock, s => s.AddDataProtection().UseEphemeralDataProtectionProvider());
        await using var scope = sp.CreateAsyncScope();
        var setup = scope.ServiceProvider.GetRequiredService<SetupService>();
        var token = await setup.IssueTokenAsync() ?? throw new InvalidOperationException("setup already done");
        var admin = await setup.CompleteAsync(new SetupRequest(token, "Test Bank", "Payments", "admin@bank.test", "Ada Admin", TestUsers.Password));
        var project = (await sp.GetRequiredService<ProjectService>().ListForUserAsync(admin.Id, 0, 10)).Items.Single();
        return new SecurityWorld { Db = db, Services = sp, Clock = clock, ProjectId = project.Id, Admin = admin.Id };
    }

    public async Task<Guid> MemberAsync(string role, Guid? projectId = null)
    {
        await using var scope = Services.CreateAsyncScope();
        var result = await scope.ServiceProvider.GetRequiredService<MembershipService>()
            .AddAsync(projectId ?? ProjectId, $"{role}-{Guid.NewGuid():N}@bank.test", role, Admin);
        return result.Member.UserId;
    }

    public async Task<Guid> OtherProjectAsync() =>
        (await Services.GetRequiredService<ProjectService>().CreateAsync(Admin, "Other " + Guid.NewGuid().ToString("N")[..6], null)).Id;

    public async ValueTask DisposeAsync()
    {
        await Services.DisposeAsync();
        await Db.DisposeAsync();
    }
}
