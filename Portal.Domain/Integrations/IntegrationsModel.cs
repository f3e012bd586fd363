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
        b.Entity<WebhookEndpoint>(e =>
        {
            e.ToTable("webhook_endpoints");
            e.Property(x => x.Name).HasMaxLength(200);
            e.Property(x => x.Kind).HasMaxLength(16);
            e.Property(x => x.Url).HasMaxLength(2000);
            e.Property(x => x.EventTypes).HasMaxLength(1000);
            e.Property(x => x.DisabledReason).HasMaxLength(500);
            e.HasIndex(x => x.ProjectId);
            e.HasOne<Project>().WithMany().HasForeignKey(x => x.ProjectId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<WebhookDelivery>(e =>
        {
            e.ToTable("webhook_deliveries");
            e.Property(x => x.EventType).HasMaxLength(64);
            e.Property(x => x.Status).HasMaxLength(16);
            e.Property(x => x.ResponseExcerpt).HasMaxLength(500);
            // Outcomes are recorded only by the worker that still holds the lease.
            e.Property(x => x.LeaseOwner).HasMaxLength(64).IsConcurrencyToken();
            e.HasIndex(x => new { x.Status, x.NextAttemptAt });
            e.HasIndex(x => new { x.EndpointId, x.CreatedAt });
            e.HasIndex(x => x.LeaseOwner);
            e.HasOne<WebhookEndpoint>().WithMany().HasForeignKey(x => x.EndpointId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<SiemIntegration>(e =>
        {
            e.ToTable("siem_integrations");
            e.Property(x => x.Name).HasMaxLength(200);
            e.Property(x => x.Kind).HasMaxLength(16);
            e.Property(x => x.Format).HasMaxLength(16);
            e.Property(x => x.Endpoint).HasMaxLength(2000);
            e.Property(x => x.EventTypes).HasMaxLength(1000);
            e.Property(x => x.Status).HasMaxLength(16);
            e.Property(x => x.LeaseOwner).HasMaxLength(64);
            e.Property(x => x.LastError).HasMaxLength(2000);
            e.HasIndex(x => x.ProjectId);
            e.HasOne<Project>().WithMany().HasForeignKey(x => x.ProjectId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<IntegrationChange>(e =>
        {
            e.ToTable("integration_changes");
            e.Property(x => x.SubjectType).HasMaxLength(32);
            e.Property(x => x.SubjectId).HasMaxLength(64);
            e.Property(x => x.Action).HasMaxLength(32);
            e.Property(x => x.Before).HasMaxLength(4000);
            e.Property(x => x.After).HasMaxLength(4000);
            e.HasIndex(x => new { x.ProjectId, x.ChangedAt });
        });
    }
}
