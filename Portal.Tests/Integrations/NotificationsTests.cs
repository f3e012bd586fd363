using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Portal.Domain;
using Portal.Domain.Integrations;
using Portal.Domain.Persistence;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;
using Portal.Tests.Security;

namespace Portal.Tests.Integrations;

public class NotificationsTests
{
    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Notifications_go_to_members_holding_the_permission_and_commit_with_the_change(string provider)
    {
        await using var world = await SecurityWorld.CreateAsync(provider);
        var security = await world.MemberAsync(Roles.Security);
        var user = await world.MemberAsync(Roles.User);
        var factory = world.Services.GetRequiredService<IDbContextFactory<PortalDbContext>>();
        var service = world.Services.GetRequiredService<NotificationService>();

        // Rolled back: neither the outbox message nor the notifications exist afterwards.
        await using (var db = await factory.CreateDbContextAsync())
        {
            await using var tx = await db.Database.BeginTransactionAsync();
            Outbox.Add(db, world.ProjectId, OutboxEvents.AlertCreated, new { id = 1 }, world.Clock.GetUtcNow());
            await NotificationService.AddForPermissionAsync(db, world.ProjectId, Permissions.AlertsTriage, "alert.created", "Injection attempt", null, "/x", world.Clock.GetUtcNow());
            await db.SaveChangesAsync();
            await tx.RollbackAsync();
        }
        Assert.Equal(0, await service.UnreadCountAsync(security));

        await using (var db = await factory.CreateDbContextAsync())
        {
            Outbox.Add(db, world.ProjectId, OutboxEvents.AlertCreated, new { title = "<script>x</script>" }, world.Clock.GetUtcNow(), "alert", "a1");
            var added = await NotificationService.AddForPermissionAsync(db, world.ProjectId, Permissions.AlertsTriage, "alert.created",
                "Injection attempt", "Key ab12cd34 sent ' OR 1=1", "/p/x/alerts/1", world.Clock.GetUtcNow(), except: world.Admin);
            Assert.Equal(1, added); // the security member; the admin was the actor and is skipped; the user lacks the permission
            await db.SaveChangesAsync();
        }

        Assert.Equal(1, await service.UnreadCountAsync(security));
        Assert.Equal(0, await service.UnreadCountAsync(user));
        Assert.Equal(0, await service.UnreadCountAsync(world.Admin));
        var page = await service.ListAsync(security);
        var row = Assert.Single(page.Items);
        Assert.Equal("Injection attempt", row.Title);
        Assert.Equal("Payments", row.ProjectName);

        // Another user cannot mark it read; its owner can.
        await Assert.ThrowsAsync<DomainException>(() => service.MarkReadAsync(user, row.Id));
        await service.MarkReadAsync(security, row.Id);
        Assert.Equal(0, await service.UnreadCountAsync(security));
        Assert.Equal(1, (await service.ListAsync(security)).Total);
        Assert.Equal(0, (await service.ListAsync(security, unreadOnly: true)).Total);

        await using (var db = await factory.CreateDbContextAsync())
        {
            var message = await db.OutboxMessages.SingleAsync();
            Assert.Equal("alert.created", message.EventType);
            Assert.Contains("<script>x</script>", message.PayloadJson);
            Assert.Null(message.ProcessedAt);
        }
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task A_removed_member_no_longer_sees_the_projects_notifications(string provider)
    {
        await using var world = await SecurityWorld.CreateAsync(provider);
        var security = await world.MemberAsync(Roles.Security);
        var factory = world.Services.GetRequiredService<IDbContextFactory<PortalDbContext>>();
        await using (var db = await factory.CreateDbContextAsync())
        {
            NotificationService.AddForUser(db, world.ProjectId, security, "alert.created", "Secret project alert", null, null, world.Clock.GetUtcNow());
            await db.SaveChangesAsync();
        }
        var service = world.Services.GetRequiredService<NotificationService>();
        Assert.Equal(1, await service.UnreadCountAsync(security));

        await using (var scope = world.Services.CreateAsyncScope())
        {
            await using var db = await factory.CreateDbContextAsync();
            var memberId = await db.ProjectMembers.Where(m => m.ProjectId == world.ProjectId && m.UserId == security).Select(m => m.Id).SingleAsync();
            await scope.ServiceProvider.GetRequiredService<MembershipService>().RemoveAsync(world.ProjectId, memberId, world.Admin);
        }

        Assert.Equal(0, await service.UnreadCountAsync(security));
        Assert.Empty((await service.ListAsync(security)).Items);
    }
}
