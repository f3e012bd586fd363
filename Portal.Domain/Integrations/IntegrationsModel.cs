using Microsoft.EntityFrameworkCore;
using Portal.Domain.Tenancy;

namespace Portal.Domain.Integrations;

/// <summary>The EF model of the outbox and notifications (Database/*/0005_outbox_notifications.sql).</summary>
internal static class IntegrationsModel
{
    public static void Configure(ModelBuilder b)
    {
        b.Entity<OutboxMessage>(e =>
        {
            // No foreign key: a message about a deleted project may still have to be delivered.
            e.Property(x => x.EventType).HasMaxLength(64);
            e.Property(x => x.SubjectType).HasMaxLength(64);
            e.Property(x => x.SubjectId).HasMaxLength(200);
            e.HasIndex(x => new { x.ProcessedAt, x.Id });
            e.HasIndex(x => new { x.ProjectId, x.CreatedAt });
        });
        b.Entity<Notification>(e =>
        {
            e.Property(x => x.Kind).HasMaxLength(64);
            e.Property(x => x.Title).HasMaxLength(NotificationService.MaxTitle);
            e.Property(x => x.Body).HasMaxLength(NotificationService.MaxBody);
            e.Property(x => x.Link).HasMaxLength(500);
            e.HasIndex(x => new { x.UserId, x.ReadAt, x.CreatedAt });
            e.HasIndex(x => x.ProjectId);
            e.HasOne<Project>().WithMany().HasForeignKey(x => x.ProjectId).OnDelete(DeleteBehavior.Cascade);
            e.HasOne<PortalUser>().WithMany().HasForeignKey(x => x.UserId).OnDelete(DeleteBehavior.Cascade);
        });
    }
}
