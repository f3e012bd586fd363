using Microsoft.EntityFrameworkCore;
using Portal.Domain.Tenancy;

namespace Portal.Domain.Compliance;

/// <summary>The EF model of compliance reports (Database/*/0009_compliance_reports.sql).</summary>
internal static class ComplianceModel
{
    public static void Configure(ModelBuilder b)
    {
        b.Entity<ComplianceReport>(e =>
        {
            e.Property(x => x.ReportType).HasMaxLength(16);
            e.Property(x => x.Title).HasMaxLength(200);
            e.Property(x => x.Status).HasMaxLength(16);
            e.Property(x => x.ProgressMessage).HasMaxLength(200);
            e.Property(x => x.RequestedByEmail).HasMaxLength(256);
            e.Property(x => x.Generator).HasMaxLength(100);
            e.Property(x => x.ClaimedBy).HasMaxLength(200);
            e.Property(x => x.DataSha256).HasMaxLength(64);
            e.Property(x => x.PdfSha256).HasMaxLength(64);
            e.Property(x => x.SignerThumbprint).HasMaxLength(64);
            e.Property(x => x.Error).HasMaxLength(2000);
            e.HasIndex(x => new { x.ProjectId, x.RequestedAt });
            e.HasIndex(x => new { x.Status, x.RequestedAt });
            e.HasOne<Project>().WithMany().HasForeignKey(x => x.ProjectId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<ComplianceReportFile>(e =>
        {
            e.HasKey(x => x.ReportId);
            e.HasOne<ComplianceReport>().WithOne().HasForeignKey<ComplianceReportFile>(x => x.ReportId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<ComplianceReportSchedule>(e =>
        {
            e.Property(x => x.ReportType).HasMaxLength(16);
            e.Property(x => x.Frequency).HasMaxLength(16);
            e.HasIndex(x => x.ProjectId);
            e.HasIndex(x => new { x.Enabled, x.NextRunAt });
            e.HasOne<Project>().WithMany().HasForeignKey(x => x.ProjectId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<ReportSigningCertificate>(e =>
        {
            e.Property(x => x.Subject).HasMaxLength(300);
            e.Property(x => x.Thumbprint).HasMaxLength(64);
            e.HasIndex(x => x.Thumbprint).IsUnique();
        });
    }
}
