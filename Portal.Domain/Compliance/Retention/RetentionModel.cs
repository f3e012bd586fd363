using Microsoft.EntityFrameworkCore;

namespace Portal.Domain.Compliance.Retention;

/// <summary>How long one class of a project's audit events stays in the database (table retention_policies).</summary>
public sealed class RetentionPolicy
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    public string EventClass { get; set; } = "";
    public int Days { get; set; }
    public Guid UpdatedBy { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
}

/// <summary>The manifest of one archive file (table audit_archives).</summary>
public sealed class AuditArchive
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    /// <summary>The UTC day (midnight) whose events the file holds.</summary>
    public DateTimeOffset Day { get; set; }
    /// <summary>Relative to the archive directory.</summary>
    public string FileName { get; set; } = "";
    public long EventCount { get; set; }
    public long FirstSeq { get; set; }
    public long LastSeq { get; set; }
    /// <summary>The prev_hash of the first archived event (links it to the event before it).</summary>
    public byte[] FirstPrevHash { get; set; } = [];
    /// <summary>The hash of the last archived event.</summary>
    public byte[] LastHash { get; set; } = [];
    /// <summary>SHA-256 of the compressed file, hex.</summary>
    public string Sha256 { get; set; } = "";
    public long ByteSize { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}

internal static class RetentionModel
{
    public static void Configure(ModelBuilder b)
    {
        b.Entity<RetentionPolicy>(e =>
        {
            e.ToTable("retention_policies");
            e.Property(x => x.EventClass).HasMaxLength(32);
            e.HasIndex(x => new { x.ProjectId, x.EventClass }).IsUnique();
        });
        b.Entity<AuditArchive>(e =>
        {
            e.ToTable("audit_archives");
            e.Property(x => x.FileName).HasMaxLength(500);
            e.Property(x => x.Sha256).HasMaxLength(64);
            e.HasIndex(x => new { x.ProjectId, x.Day });
        });
    }
}
