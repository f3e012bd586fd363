using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Identity.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage.ValueConversion;
using Portal.Domain.Audit;
using Portal.Domain.Operations;
using Portal.Domain.Suite;
using Portal.Domain.Tenancy;

namespace Portal.Domain.Persistence;

/// <summary>
/// The portal database. The schema comes only from the SQL scripts in Database/ (applied by
/// <see cref="MigrationRunner"/>); this model must agree with them, which a test checks on both providers.
/// </summary>
public class PortalDbContext(DbContextOptions<PortalDbContext> options) : IdentityUserContext<PortalUser, Guid>(options),
    Microsoft.AspNetCore.DataProtection.EntityFrameworkCore.IDataProtectionKeyContext
{
    /// <summary>The ASP.NET data-protection key ring (already encrypted), shared by every node; see Security.DatabaseKeyRing.</summary>
    public DbSet<Microsoft.AspNetCore.DataProtection.EntityFrameworkCore.DataProtectionKey> DataProtectionKeys => Set<Microsoft.AspNetCore.DataProtection.EntityFrameworkCore.DataProtectionKey>();
    public DbSet<Organization> Organizations => Set<Organization>();
    public DbSet<Project> Projects => Set<Project>();
    public DbSet<ProjectMember> ProjectMembers => Set<ProjectMember>();
    public DbSet<MembershipChange> MembershipChanges => Set<MembershipChange>();
    public DbSet<SetupToken> SetupTokens => Set<SetupToken>();
    public DbSet<InstalledApplication> InstalledApplications => Set<InstalledApplication>();
    public DbSet<ModuleSetting> ModuleSettings => Set<ModuleSetting>();
    public DbSet<SuiteChange> SuiteChanges => Set<SuiteChange>();
    public DbSet<JobRun> JobRuns => Set<JobRun>();
    public DbSet<Security.ApiKeys.ApiKey> ApiKeys => Set<Security.ApiKeys.ApiKey>();
    public DbSet<Security.ApiKeys.ApiKeyChange> ApiKeyChanges => Set<Security.ApiKeys.ApiKeyChange>();
    public DbSet<Security.RateLimits.RateLimit> RateLimits => Set<Security.RateLimits.RateLimit>();
    public DbSet<Security.RateLimits.RateLimitChange> RateLimitChanges => Set<Security.RateLimits.RateLimitChange>();
    /// <summary>Read-only for EF: events are appended only by <see cref="AuditWriter"/>.</summary>
    public DbSet<AuditEvent> AuditEvents => Set<AuditEvent>();
    public DbSet<AuditChainHead> AuditChainHeads => Set<AuditChainHead>();
    public DbSet<Integrations.OutboxMessage> OutboxMessages => Set<Integrations.OutboxMessage>();
    public DbSet<Integrations.Notification> Notifications => Set<Integrations.Notification>();
    public DbSet<Security.Alerts.SecurityAlert> SecurityAlerts => Set<Security.Alerts.SecurityAlert>();
    public DbSet<Compliance.ComplianceReport> ComplianceReports => Set<Compliance.ComplianceReport>();
    public DbSet<Compliance.ComplianceReportFile> ComplianceReportFiles => Set<Compliance.ComplianceReportFile>();
    public DbSet<Compliance.ComplianceReportSchedule> ComplianceReportSchedules => Set<Compliance.ComplianceReportSchedule>();
    public DbSet<Compliance.ReportSigningCertificate> ReportSigningCertificates => Set<Compliance.ReportSigningCertificate>();

    public bool IsSqlite => Database.ProviderName == "Microsoft.EntityFrameworkCore.Sqlite";

    protected override void ConfigureConventions(ModelConfigurationBuilder configurationBuilder)
    {
        base.ConfigureConventions(configurationBuilder);
        if (Database.ProviderName == "Microsoft.EntityFrameworkCore.Sqlite")
        {
            // SQLite cannot order or compare DateTimeOffset stored as text; store UTC ticks so ranges and ORDER BY translate.
            configurationBuilder.Properties<DateTimeOffset>().HaveConversion<UtcTicksConverter>();
            configurationBuilder.Properties<DateTimeOffset?>().HaveConversion<UtcTicksConverter>();
        }
    }

    protected override void OnModelCreating(ModelBuilder b)
    {
        base.OnModelCreating(b);

        b.Entity<PortalUser>(e =>
        {
            e.Property(u => u.DisplayName).HasMaxLength(200);
            e.HasOne<Organization>().WithMany().HasForeignKey(u => u.OrganizationId).OnDelete(DeleteBehavior.Restrict);
        });

        b.Entity<Organization>(e => e.Property(x => x.Name).HasMaxLength(200));
        b.Entity<Project>(e =>
        {
            e.Property(x => x.Name).HasMaxLength(200);
            e.Property(x => x.Description).HasMaxLength(2000);
            e.HasIndex(x => new { x.OrganizationId, x.Name }).IsUnique();
            e.HasOne<Organization>().WithMany().HasForeignKey(x => x.OrganizationId).OnDelete(DeleteBehavior.Restrict);
        });
        b.Entity<ProjectMember>(e =>
        {
            e.Property(x => x.Role).HasMaxLength(32);
            e.HasIndex(x => new { x.ProjectId, x.UserId }).IsUnique();
            e.HasIndex(x => x.UserId);
            e.HasOne<Project>().WithMany().HasForeignKey(x => x.ProjectId).OnDelete(DeleteBehavior.Cascade);
            e.HasOne<PortalUser>().WithMany().HasForeignKey(x => x.UserId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<MembershipChange>(e =>
        {
            e.Property(x => x.OldRole).HasMaxLength(32);
            e.Property(x => x.NewRole).HasMaxLength(32);
            e.Property(x => x.UserEmail).HasMaxLength(256);
            e.Property(x => x.ChangedByEmail).HasMaxLength(256);
            e.HasIndex(x => new { x.ProjectId, x.ChangedAt });
        });
        b.Entity<SetupToken>(e => e.Property(x => x.TokenHash).HasMaxLength(128));
        b.Entity<InstalledApplication>(e =>
        {
            e.Property(x => x.AppId).HasMaxLength(64);
            e.Property(x => x.Version).HasMaxLength(32);
            e.Property(x => x.Status).HasMaxLength(16);
            e.Property(x => x.Tier).HasConversion<string>().HasMaxLength(32);
            e.Property(x => x.EnabledModules).HasMaxLength(500);
            e.Property(x => x.SubscriptionReference).HasMaxLength(200);
            e.HasIndex(x => new { x.ProjectId, x.AppId }).IsUnique();
            e.Ignore(x => x.EnabledModuleSet);
            e.HasOne<Project>().WithMany().HasForeignKey(x => x.ProjectId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<ModuleSetting>(e =>
        {
            e.Property(x => x.Module).HasMaxLength(32);
            e.HasIndex(x => new { x.ProjectId, x.Module }).IsUnique();
            e.HasOne<Project>().WithMany().HasForeignKey(x => x.ProjectId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<SuiteChange>(e =>
        {
            e.Property(x => x.Action).HasMaxLength(32);
            e.Property(x => x.Module).HasMaxLength(32);
            e.Property(x => x.Before).HasMaxLength(500);
            e.Property(x => x.After).HasMaxLength(500);
            e.HasIndex(x => new { x.ProjectId, x.ChangedAt });
        });
        b.Entity<JobRun>(e =>
        {
            e.Property(x => x.JobName).HasMaxLength(200);
            e.Property(x => x.JobGroup).HasMaxLength(200);
            e.Property(x => x.TriggerName).HasMaxLength(200);
            e.Property(x => x.FireInstanceId).HasMaxLength(200);
            e.Property(x => x.Outcome).HasMaxLength(16);
            e.Property(x => x.Message).HasMaxLength(2000);
            e.Property(x => x.InstanceName).HasMaxLength(200);
            e.HasIndex(x => new { x.JobGroup, x.JobName, x.StartedAt });
        });
        Security.SecurityModel.Configure(b);
        Gateway.Catalog.CatalogModel.Configure(b);
        Integrations.IntegrationsModel.Configure(b);
        Access.AccessModel.Configure(b);
        Governance.GovernanceModel.Configure(b);
        Security.Alerts.SecurityCenterModel.Configure(b);
        Compliance.Retention.RetentionModel.Configure(b);
        Compliance.ComplianceModel.Configure(b);

        b.Entity<AuditEvent>(e =>
        {
            // No foreign key to projects: the trail must outlive the rows it talks about.
            e.HasKey(x => new { x.ProjectId, x.Seq });
            e.Property(x => x.Seq).ValueGeneratedNever();
            e.Property(x => x.EventType).HasMaxLength(64);
            e.Property(x => x.ResourceType).HasMaxLength(64);
            e.Property(x => x.ResourceId).HasMaxLength(200);
            e.Property(x => x.Action).HasMaxLength(64);
            e.Property(x => x.ActorType).HasMaxLength(16);
            e.Property(x => x.ActorId).HasMaxLength(200);
            e.Property(x => x.ActorEmail).HasMaxLength(256);
            e.Property(x => x.ActorRole).HasMaxLength(32);
            e.Property(x => x.SessionId).HasMaxLength(128);
            e.Property(x => x.ErrorMessage).HasMaxLength(2000);
            e.Property(x => x.SecurityLevel).HasMaxLength(16);
            e.Property(x => x.ClientIp).HasMaxLength(64);
            e.Property(x => x.UserAgent).HasMaxLength(512);
            e.Property(x => x.RequestId).HasMaxLength(128);
            e.HasIndex(x => new { x.ProjectId, x.OccurredAt });
            e.HasIndex(x => new { x.ProjectId, x.EventType, x.OccurredAt });
            e.HasIndex(x => new { x.ProjectId, x.ActorId, x.OccurredAt });
            e.HasIndex(x => new { x.ProjectId, x.SessionId, x.OccurredAt });
            e.HasIndex(x => new { x.ProjectId, x.ActorEmail, x.OccurredAt });
            e.HasIndex(x => new { x.ProjectId, x.SecurityLevel, x.OccurredAt }).HasFilter("security_level <> 'normal'");
        });
        b.Entity<AuditChainHead>(e =>
        {
            e.HasKey(x => x.ProjectId);
            e.Property(x => x.ProjectId).ValueGeneratedNever();
        });

        SnakeCase.Apply(b);
    }
}

public sealed class UtcTicksConverter : ValueConverter<DateTimeOffset, long>
{
    public UtcTicksConverter() : base(v => v.UtcTicks, v => new DateTimeOffset(v, TimeSpan.Zero)) { }
}
