using Microsoft.EntityFrameworkCore;
using Portal.Domain.Tenancy;

namespace Portal.Domain.Security.Alerts;

/// <summary>The EF model of the security center (Database/*/0008_security_center.sql).</summary>
internal static class SecurityCenterModel
{
    public static void Configure(ModelBuilder b)
    {
        b.Entity<SecurityAlert>(e =>
        {
            e.ToTable("security_alerts");
            e.Property(x => x.Type).HasMaxLength(32);
            e.Property(x => x.Rule).HasMaxLength(64);
            e.Property(x => x.Severity).HasMaxLength(16);
            e.Property(x => x.Source).HasMaxLength(16);
            e.Property(x => x.Fingerprint).HasMaxLength(300);
            e.Property(x => x.Title).HasMaxLength(300);
            e.Property(x => x.Description).HasMaxLength(2000);
            e.Property(x => x.SubjectType).HasMaxLength(16);
            e.Property(x => x.SubjectId).HasMaxLength(200);
            e.Property(x => x.SubjectLabel).HasMaxLength(256);
            e.Property(x => x.Status).HasMaxLength(16);
            e.Property(x => x.ResolutionNote).HasMaxLength(2000);
            e.HasIndex(x => new { x.ProjectId, x.Fingerprint, x.LastSeenAt });
            e.HasIndex(x => new { x.ProjectId, x.Status, x.CreatedAt });
            e.HasOne<Project>().WithMany().HasForeignKey(x => x.ProjectId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<SecurityAlertChange>(e =>
        {
            e.ToTable("security_alert_changes");
            e.Property(x => x.Action).HasMaxLength(32);
            e.Property(x => x.Before).HasMaxLength(2000);
            e.Property(x => x.After).HasMaxLength(2000);
            e.Property(x => x.Note).HasMaxLength(2000);
            e.HasIndex(x => new { x.ProjectId, x.AlertId, x.ChangedAt });
        });
        b.Entity<SecuritySuppression>(e =>
        {
            e.ToTable("security_suppressions");
            e.Property(x => x.Type).HasMaxLength(32);
            e.Property(x => x.Rule).HasMaxLength(64);
            e.Property(x => x.SubjectType).HasMaxLength(16);
            e.Property(x => x.SubjectId).HasMaxLength(200);
            e.Property(x => x.Reason).HasMaxLength(2000);
            e.HasIndex(x => new { x.ProjectId, x.ExpiresAt });
            e.HasOne<Project>().WithMany().HasForeignKey(x => x.ProjectId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<DetectorSetting>(e =>
        {
            e.ToTable("security_detector_settings");
            e.HasKey(x => new { x.ProjectId, x.Rule });
            e.Property(x => x.Rule).HasMaxLength(64);
            e.Property(x => x.ThresholdsJson).HasMaxLength(2000);
            e.HasOne<Project>().WithMany().HasForeignKey(x => x.ProjectId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<ActivityProfile>(e =>
        {
            e.ToTable("security_activity_profiles");
            e.HasKey(x => new { x.ProjectId, x.ActorId, x.Day, x.Hour });
            e.Property(x => x.ActorId).HasMaxLength(200);
            e.Property(x => x.ActorType).HasMaxLength(16);
        });
        b.Entity<KnownSource>(e =>
        {
            e.ToTable("security_known_sources");
            e.HasKey(x => new { x.ProjectId, x.ActorId, x.Kind, x.Value });
            e.Property(x => x.ActorId).HasMaxLength(200);
            e.Property(x => x.Kind).HasMaxLength(8);
            e.Property(x => x.Value).HasMaxLength(512);
        });
        b.Entity<ScanWatermark>(e =>
        {
            e.ToTable("security_scan_watermarks");
            e.HasKey(x => x.ChainId);
            e.Property(x => x.ChainId).ValueGeneratedNever();
        });
    }
}
