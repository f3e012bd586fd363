using Microsoft.EntityFrameworkCore;
using Portal.Domain.Gateway.Catalog;
using Portal.Domain.Tenancy;

namespace Portal.Domain.Governance;

/// <summary>The EF model of suggestions, approvals, policies, query versions and consumers (Database/*/0007_governance.sql).</summary>
internal static class GovernanceModel
{
    public static void Configure(ModelBuilder b)
    {
        b.Entity<Suggestion>(e =>
        {
            e.ToTable("suggestions");
            e.Property(x => x.Name).HasMaxLength(200);
            e.Property(x => x.Description).HasMaxLength(2000);
            e.Property(x => x.Prompt).HasMaxLength(GovernanceDefaults.MaxPrompt);
            e.Property(x => x.Justification).HasMaxLength(GovernanceDefaults.MaxJustification);
            e.Property(x => x.ClassificationsJson).HasMaxLength(1000);
            e.Property(x => x.RiskFlags).HasMaxLength(500);
            e.Property(x => x.ReadClassifications).HasMaxLength(500);
            e.Property(x => x.ContentHash).HasMaxLength(64);
            e.Property(x => x.Status).HasMaxLength(16);
            e.Property(x => x.SubmittedByType).HasMaxLength(16);
            e.Property(x => x.SubmittedByName).HasMaxLength(256);
            e.Property(x => x.DecisionReason).HasMaxLength(2000);
            e.Property(x => x.RowVersion).IsConcurrencyToken();
            e.HasIndex(x => new { x.ProjectId, x.Status, x.CreatedAt });
            e.HasIndex(x => new { x.ProjectId, x.SubmittedBy });
            e.HasOne<Project>().WithMany().HasForeignKey(x => x.ProjectId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<SuggestionApproval>(e =>
        {
            e.ToTable("suggestion_approvals");
            e.Property(x => x.ReviewerRole).HasMaxLength(32);
            e.Property(x => x.ContentHash).HasMaxLength(64);
            e.Property(x => x.Reason).HasMaxLength(2000);
            e.HasIndex(x => x.SuggestionId);
            e.HasOne<Suggestion>().WithMany().HasForeignKey(x => x.SuggestionId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<SuggestionEvent>(e =>
        {
            e.ToTable("suggestion_events");
            e.Property(x => x.Action).HasMaxLength(32);
            e.Property(x => x.ActorType).HasMaxLength(16);
            e.Property(x => x.ActorName).HasMaxLength(256);
            e.Property(x => x.Reason).HasMaxLength(2000);
            e.Property(x => x.ContentHash).HasMaxLength(64);
            e.HasIndex(x => new { x.SuggestionId, x.CreatedAt });
            e.HasOne<Suggestion>().WithMany().HasForeignKey(x => x.SuggestionId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<GovernanceSettings>(e =>
        {
            e.ToTable("governance_settings");
            e.HasKey(x => x.ProjectId);
            e.Property(x => x.ProjectId).ValueGeneratedNever();
            e.Property(x => x.DefaultGrantRolesJson).HasMaxLength(500);
            e.HasOne<Project>().WithMany().HasForeignKey(x => x.ProjectId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<ApprovalPolicy>(e =>
        {
            e.ToTable("approval_policies");
            e.Property(x => x.Classification).HasMaxLength(64);
            e.Property(x => x.ReviewerRolesJson).HasMaxLength(500);
            e.HasIndex(x => new { x.ProjectId, x.Classification }).IsUnique();
            e.HasOne<Project>().WithMany().HasForeignKey(x => x.ProjectId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<QueryVersion>(e =>
        {
            e.ToTable("query_versions");
            e.Property(x => x.Name).HasMaxLength(200);
            e.Property(x => x.Description).HasMaxLength(2000);
            e.Property(x => x.ClassificationsJson).HasMaxLength(1000);
            e.Property(x => x.Status).HasMaxLength(16);
            e.Property(x => x.Change).HasMaxLength(16);
            e.Property(x => x.Reason).HasMaxLength(2000);
            e.HasIndex(x => new { x.QueryId, x.Version }).IsUnique();
            e.HasIndex(x => x.ProjectId);
            e.HasOne<Project>().WithMany().HasForeignKey(x => x.ProjectId).OnDelete(DeleteBehavior.Cascade);
            e.HasOne<ApprovedQuery>().WithMany().HasForeignKey(x => x.QueryId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<QueryConsumer>(e =>
        {
            e.ToTable("query_consumers");
            e.Property(x => x.Kind).HasMaxLength(16);
            e.Property(x => x.Name).HasMaxLength(200);
            e.Property(x => x.ExternalId).HasMaxLength(200);
            e.Property(x => x.Owner).HasMaxLength(200);
            e.HasIndex(x => x.QueryId);
            e.HasIndex(x => x.ProjectId);
            e.HasOne<Project>().WithMany().HasForeignKey(x => x.ProjectId).OnDelete(DeleteBehavior.Cascade);
            e.HasOne<ApprovedQuery>().WithMany().HasForeignKey(x => x.QueryId).OnDelete(DeleteBehavior.Cascade);
        });
    }
}
