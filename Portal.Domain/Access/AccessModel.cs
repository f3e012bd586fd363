using Microsoft.EntityFrameworkCore;
using Portal.Domain.Audit;
using Portal.Domain.Persistence;
using Portal.Domain.Tenancy;

namespace Portal.Domain.Access;

/// <summary>The EF model of the access-control settings and change log (Database/*/0006_access_settings.sql).</summary>
internal static class AccessModel
{
    public const int MaxStateLength = 4000;

    public static void Configure(ModelBuilder b)
    {
        b.Entity<GatewaySetting>(e =>
        {
            e.ToTable("gateway_settings");
            e.HasKey(x => x.ProjectId);
            e.Property(x => x.InjectionScreening).HasMaxLength(8);
            e.HasOne<Project>().WithMany().HasForeignKey(x => x.ProjectId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<AccessChange>(e =>
        {
            e.ToTable("access_changes");
            e.Property(x => x.SubjectType).HasMaxLength(32);
            e.Property(x => x.Action).HasMaxLength(16);
            e.Property(x => x.Before).HasMaxLength(MaxStateLength);
            e.Property(x => x.After).HasMaxLength(MaxStateLength);
            e.HasIndex(x => new { x.ProjectId, x.ChangedAt });
        });
    }
}

/// <summary>
/// The two halves of recording an access change (see <see cref="PortalAudit"/>): stage the access_changes row in the
/// caller's transaction, then, once committed, append the audit event with the same before/after states.
/// </summary>
internal static class AccessChanges
{
    public static void Stage(PortalDbContext db, Guid projectId, string subjectType, Guid subjectId, string action,
        string? before, string? after, Guid actor, DateTimeOffset now) =>
        db.Add(new AccessChange
        {
            ProjectId = projectId, SubjectType = subjectType, SubjectId = subjectId, Action = action,
            Before = Cap(before), After = Cap(after), ChangedBy = actor, ChangedAt = now,
        });

    public static async Task RecordAsync(PortalAudit audit, PortalDbContext db, Guid projectId, string subjectType, Guid subjectId, string action,
        string? before, string? after, Guid actor, AuditSecurityLevel level, DateTimeOffset now, CancellationToken ct, object? details = null) =>
        await audit.RecordAsync(new AuditEventDraft
        {
            ProjectId = projectId, EventType = $"{subjectType}.{action}", Actor = await PortalAudit.UserAsync(db, projectId, actor, ct),
            ResourceType = subjectType, ResourceId = subjectId.ToString(),
            Action = action switch { "created" => "create", "updated" => "update", "deleted" => "delete", _ => action },
            BeforeState = before, AfterState = after, Details = PortalAudit.Json(details), SecurityLevel = level, OccurredAt = now,
        }, ct);

    // The states are small JSON objects; the cap only guards the column against a pathological value.
    private static string? Cap(string? s) => s is { Length: > AccessModel.MaxStateLength } ? s[..AccessModel.MaxStateLength] : s;
}
