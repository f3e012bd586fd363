using Microsoft.AspNetCore.DataProtection;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Portal.Domain.Audit;
using Portal.Domain.Integrations;
using Portal.Domain.Persistence;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Integrations;

/// <summary>A real database with one project and its admin, the integrations services, a manual clock and short timeouts.</summary>
internal sealed class IntegrationWorld : IAsyncDisposable
{
    public required TestDatabase Db { get; init; }
    public required ServiceProvider Services { get; init; }
    public required ManualClock Clock { get; init; }
    public required Guid ProjectId { get; init; }
    public required Guid Admin { get; init; }
    public required IntegrationsOptions Options { get; init; }
    /// <summary>False for a second "process" over another world's database: that world drops it.</summary>
    public bool OwnsDatabase { get; init; } = true;

    public WebhookService Webhooks => Services.GetRequiredService<WebhookService>();
    public WebhookDispatcher Dispatcher => Services.GetRequiredService<WebhookDispatcher>();
    public SiemService Siem => Services.GetRequiredService<SiemService>();
    public SiemExporter Exporter => Services.GetRequiredService<SiemExporter>();
    public IDbContextFactory<PortalDbContext> Factory => Services.GetRequiredService<IDbContextFactory<PortalDbContext>>();

    public static async Task<IntegrationWorld> CreateAsync(string provider, TestDatabase? existing = null, ManualClock? clock = null)
    {
        var db = existing ?? await TestDatabase.CreateAsync(provider);
        clock ??= new ManualClock();
        // Long enough that a loopback answer on a loaded 2-core CI machine is not taken for a timeout; hanging receivers still time out.
        var options = new IntegrationsOptions { Timeout = TimeSpan.FromSeconds(3), Lease = TimeSpan.FromMinutes(2), Hostname = "portal-test" };
        var sp = db.Services(clock, s =>
        {
            s.AddDataProtection().UseEphemeralDataProtectionProvider();
            s.AddSingleton(options);
        });
        Guid projectId, admin;
        await using (var ctx = db.NewContext())
        {
            var existingProject = existing is null ? null : await ctx.Projects.AsNoTracking().FirstOrDefaultAsync();
            if (existingProject is not null)
            {
                projectId = existingProject.Id;
                admin = await ctx.ProjectMembers.Where(m => m.ProjectId == projectId).Select(m => m.UserId).FirstAsync();
                return new IntegrationWorld { Db = db, Services = sp, Clock = clock, ProjectId = projectId, Admin = admin, Options = options, OwnsDatabase = false };
            }
        }
        await using var scope = sp.CreateAsyncScope();
        var setup = scope.ServiceProvider.GetRequiredService<SetupService>();
        var token = await setup.IssueTokenAsync() ?? throw new InvalidOperationException("setup already done");
        var user = await setup.CompleteAsync(new SetupRequest(token, "Test Bank", "Payments", "admin@bank.test", "Ada Admin", TestUsers.Password));
        var project = (await sp.GetRequiredService<ProjectService>().ListForUserAsync(user.Id, 0, 10)).Items.Single();
        return new IntegrationWorld { Db = db, Services = sp, Clock = clock, ProjectId = project.Id, Admin = user.Id, Options = options };
    }

    public async Task<Guid> OtherProjectAsync() =>
        (await Services.GetRequiredService<ProjectService>().CreateAsync(Admin, "Other " + Guid.NewGuid().ToString("N")[..6], null)).Id;

    public async Task<OutboxMessage> OutboxAsync(string type, object payload, Guid? project = null)
    {
        await using var db = await Factory.CreateDbContextAsync();
        var m = Outbox.Add(db, project ?? ProjectId, type, payload, Clock.GetUtcNow(), "alert", "a1");
        await db.SaveChangesAsync();
        return m;
    }

    public async Task AuditAsync(int count, string eventType = "gateway.query_executed", DateTimeOffset? at = null, Guid? project = null)
    {
        var writer = Services.GetRequiredService<AuditWriter>();
        var tasks = new List<Task>();
        for (var i = 0; i < count; i++)
            tasks.Add(writer.AppendAsync(new AuditEventDraft
            {
                ProjectId = project ?? ProjectId, EventType = eventType, Actor = new AuditActor("api_key", "k" + i, ClientIp: "10.0.0.1"),
                ResourceType = "query", ResourceId = "q-" + i, SqlText = "SELECT 1 WHERE a = @p", RowsReturned = i, OccurredAt = at,
            }));
        await Task.WhenAll(tasks);
    }

    public async Task<List<WebhookDelivery>> DeliveriesAsync()
    {
        await using var db = await Factory.CreateDbContextAsync();
        return await db.Set<WebhookDelivery>().AsNoTracking().OrderBy(d => d.CreatedAt).ThenBy(d => d.Id).ToListAsync();
    }

    public async Task<SiemIntegration> IntegrationAsync(Guid id)
    {
        await using var db = await Factory.CreateDbContextAsync();
        return await db.Set<SiemIntegration>().AsNoTracking().FirstAsync(i => i.Id == id);
    }

    public async ValueTask DisposeAsync()
    {
        await Services.DisposeAsync();
        if (OwnsDatabase) await Db.DisposeAsync();
    }
}
