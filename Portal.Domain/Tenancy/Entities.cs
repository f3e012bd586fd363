using Microsoft.AspNetCore.Identity;

namespace Portal.Domain.Tenancy;

public sealed class Organization
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public required string Name { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}

/// <summary>The tenant boundary: every tenant-owned row carries its project_id.</summary>
public sealed class Project
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid OrganizationId { get; set; }
    public required string Name { get; set; }
    public string? Description { get; set; }
    public bool IsDemo { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public Guid? CreatedBy { get; set; }
}

/// <summary>A portal account (ASP.NET Core Identity), keyed by a time-ordered GUID.</summary>
public sealed class PortalUser : IdentityUser<Guid>
{
    public PortalUser() { Id = Guid.CreateVersion7(); SecurityStamp = Guid.NewGuid().ToString("N"); }
    public Guid? OrganizationId { get; set; }
    public string? DisplayName { get; set; }
    /// <summary>Organization admins create projects; project rights still come from project membership.</summary>
    public bool IsOrganizationAdmin { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}

/// <summary>The seed's engine_users(project_id, user_id, role).</summary>
public sealed class ProjectMember
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    public Guid UserId { get; set; }
    public required string Role { get; set; }
    public bool Suspended { get; set; }
    public DateTimeOffset AddedAt { get; set; }
    public Guid? AddedBy { get; set; }
}

/// <summary>Every grant, change and removal of a project role, kept for the audit trail.</summary>
public sealed class MembershipChange
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    public Guid UserId { get; set; }
    public string? UserEmail { get; set; }
    public string? OldRole { get; set; }
    public string? NewRole { get; set; }
    public Guid? ChangedBy { get; set; }
    public string? ChangedByEmail { get; set; }
    public DateTimeOffset ChangedAt { get; set; }
}

/// <summary>One-time token that guards the first-run setup page; only its hash is stored.</summary>
public sealed class SetupToken
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public required string TokenHash { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset ExpiresAt { get; set; }
    public DateTimeOffset? UsedAt { get; set; }
}
