using Microsoft.EntityFrameworkCore;
using Portal.Domain.Security.ApiKeys;
using Portal.Domain.Security.RateLimits;
using Portal.Domain.Tenancy;

namespace Portal.Domain.Security;

/// <summary>The EF model of the Security feature, kept here so PortalDbContext only calls it.</summary>
internal static class SecurityModel
{
    /// <summary>API keys and rate limits (Database/*/0003_api_keys_rate_limits.sql).</summary>
    public static void Configure(ModelBuilder b)
    {
        b.Entity<ApiKey>(e =>
        {
            e.Property(x => x.Name).HasMaxLength(200);
            e.Property(x => x.Role).HasMaxLength(32);
            e.Property(x => x.Prefix).HasMaxLength(ApiKeySecret.PrefixLength);
            e.Property(x => x.SecretHash).HasMaxLength(64);
            e.Property(x => x.LastUsedIp).HasMaxLength(64);
            e.Property(x => x.RevokeReason).HasMaxLength(500);
            e.HasIndex(x => x.Prefix).IsUnique();
            e.HasIndex(x => new { x.ProjectId, x.CreatedAt });
            e.HasOne<Project>().WithMany().HasForeignKey(x => x.ProjectId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<ApiKeyChange>(e =>
        {
            e.Property(x => x.Action).HasMaxLength(16);
            e.Property(x => x.KeyName).HasMaxLength(200);
            e.Property(x => x.KeyPrefix).HasMaxLength(ApiKeySecret.PrefixLength);
            e.Property(x => x.Role).HasMaxLength(32);
            e.Property(x => x.Reason).HasMaxLength(500);
            e.HasIndex(x => new { x.ProjectId, x.ChangedAt });
        });
        b.Entity<RateLimit>(e =>
        {
            e.Property(x => x.Scope).HasMaxLength(16);
            e.Property(x => x.Subject).HasMaxLength(100);
            e.HasIndex(x => x.ProjectId);
            e.HasOne<Project>().WithMany().HasForeignKey(x => x.ProjectId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<RateLimitChange>(e =>
        {
            e.Property(x => x.Action).HasMaxLength(16);
            e.Property(x => x.Before).HasMaxLength(1000);
            e.Property(x => x.After).HasMaxLength(1000);
            e.HasIndex(x => new { x.ProjectId, x.ChangedAt });
        });
    }
}
