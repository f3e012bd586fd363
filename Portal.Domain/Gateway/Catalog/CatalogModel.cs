using Microsoft.EntityFrameworkCore;
using Portal.Domain.Access;
using Portal.Domain.Tenancy;

namespace Portal.Domain.Gateway.Catalog;

/// <summary>The EF model of datasources, approved queries, query permissions and column masks (Database/*/0004_datasources_queries.sql).</summary>
internal static class CatalogModel
{
    public static void Configure(ModelBuilder b)
    {
        b.Entity<Datasource>(e =>
        {
            e.ToTable("datasources");
            e.Property(x => x.Name).HasMaxLength(200);
            e.Property(x => x.Engine).HasMaxLength(16);
            e.Property(x => x.SqlitePath).HasMaxLength(1000);
            e.Property(x => x.Host).HasMaxLength(255);
            e.Property(x => x.DatabaseName).HasMaxLength(200);
            e.Property(x => x.Username).HasMaxLength(200);
            e.Property(x => x.PasswordProtected).HasMaxLength(2000);
            e.HasIndex(x => new { x.ProjectId, x.Name }).IsUnique();
            e.HasOne<Project>().WithMany().HasForeignKey(x => x.ProjectId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<ApprovedQuery>(e =>
        {
            e.ToTable("approved_queries");
            e.Property(x => x.Name).HasMaxLength(200);
            e.Property(x => x.Description).HasMaxLength(2000);
            e.Property(x => x.ClassificationsJson).HasMaxLength(1000);
            e.Property(x => x.Status).HasMaxLength(16);
            // Every change bumps the version; saving checks it so two editors cannot silently overwrite each other.
            e.Property(x => x.Version).IsConcurrencyToken();
            e.HasIndex(x => new { x.ProjectId, x.Name }).IsUnique();
            e.HasIndex(x => x.DatasourceId);
            e.HasOne<Project>().WithMany().HasForeignKey(x => x.ProjectId).OnDelete(DeleteBehavior.Cascade);
            // Restrict: a datasource with queries is not deleted from under them (the service says so first).
            e.HasOne<Datasource>().WithMany().HasForeignKey(x => x.DatasourceId).OnDelete(DeleteBehavior.Restrict);
        });
        b.Entity<QueryPermission>(e =>
        {
            e.ToTable("query_permissions");
            e.Property(x => x.PrincipalType).HasMaxLength(16);
            e.Property(x => x.Principal).HasMaxLength(100);
            e.HasIndex(x => new { x.ProjectId, x.QueryId });
            e.HasOne<Project>().WithMany().HasForeignKey(x => x.ProjectId).OnDelete(DeleteBehavior.Cascade);
            e.HasOne<ApprovedQuery>().WithMany().HasForeignKey(x => x.QueryId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<ColumnMask>(e =>
        {
            e.ToTable("column_masks");
            e.Property(x => x.TableName).HasMaxLength(128);
            e.Property(x => x.ColumnName).HasMaxLength(128);
            e.Property(x => x.MaskType).HasMaxLength(16);
            e.Property(x => x.VisibleToRolesJson).HasMaxLength(500);
            e.Property(x => x.Classification).HasMaxLength(64);
            e.HasIndex(x => new { x.DatasourceId, x.TableName, x.ColumnName }).IsUnique();
            e.HasIndex(x => x.ProjectId);
            e.HasOne<Project>().WithMany().HasForeignKey(x => x.ProjectId).OnDelete(DeleteBehavior.Cascade);
            e.HasOne<Datasource>().WithMany().HasForeignKey(x => x.DatasourceId).OnDelete(DeleteBehavior.Cascade);
        });
    }
}
