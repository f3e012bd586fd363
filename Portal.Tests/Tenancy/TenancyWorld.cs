using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Portal.Domain;
using Portal.Domain.Persistence;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Tenancy;

/// <summary>A migrated database with the Domain services and a manual clock; one per test.</summary>
public sealed class TenancyWorld : IAsyncDisposable
{
    public required TestDatabase Db { get; init; }
    public required ServiceProvider Provider { get; init; }
    public required ManualClock Clock { get; init; }
    private AsyncServiceScope? scope;

    public static async Task<TenancyWorld> CreateAsync(string provider)
    {
        var db = await TestDatabase.CreateAsync(provider);
        var clock = new ManualClock();
        return new TenancyWorld { Db = db, Provider = db.Services(clock), Clock = clock };
    }

    private TenancyWorld() { }

    public IServiceProvider Services
    {
        get
        {
            scope ??= Provider.CreateAsyncScope();
            return scope.Value.ServiceProvider;
        }
    }

    public T Get<T>() where T : notnull => Services.GetRequiredService<T>();

    /// <summary>A service from its own scope, as two concurrent requests would get.</summary>
    public T Fresh<T>() where T : notnull
    {
        var extra = Provider.CreateAsyncScope();
        scopes.Add(extra);
        return extra.ServiceProvider.GetRequiredService<T>();
    }

    private readonly List<AsyncServiceScope> scopes = [];

    public async Task<(PortalUser Admin, Guid ProjectId)> SetupAsync(string email = "admin@bank.test")
    {
        var setup = Get<SetupService>();
        var token = await setup.IssueTokenAsync() ?? throw new InvalidOperationException("setup already done");
        var admin = await setup.CompleteAsync(new SetupRequest(token, "Test Bank", "Payments", email, "Ada Admin", TestUsers.Password));
        var project = (await Get<ProjectService>().ListForUserAsync(admin.Id, 0, 10)).Items.Single();
        return (admin, project.Id);
    }

    public async Task<T> QueryAsync<T>(Func<PortalDbContext, Task<T>> query)
    {
        await using var ctx = Db.NewContext();
        return await query(ctx);
    }

    public Task<List<MembershipChange>> ChangesAsync(Guid projectId) =>
        QueryAsync(ctx => ctx.MembershipChanges.AsNoTracking().Where(c => c.ProjectId == projectId).ToListAsync());

    public Task<ProjectMember?> MemberAsync(Guid memberId) =>
        QueryAsync(ctx => ctx.ProjectMembers.AsNoTracking().FirstOrDefaultAsync(m => m.Id == memberId));

    public async ValueTask DisposeAsync()
    {
        if (scope is { } s) await s.DisposeAsync();
        foreach (var extra in scopes) await extra.DisposeAsync();
        await Provider.DisposeAsync();
        await Db.DisposeAsync();
    }
}

public static class DomainAssert
{
    public static async Task<DomainException> RefusedAsync(ErrorKind kind, string? field, Func<Task> action)
    {
        var e = await Assert.ThrowsAsync<DomainException>(action);
        Assert.Equal(kind, e.Kind);
        if (field is not null) Assert.Equal(field, e.Field);
        Assert.False(string.IsNullOrWhiteSpace(e.Message));
        return e;
    }
}
