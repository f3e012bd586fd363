using Microsoft.EntityFrameworkCore;
using Portal.Domain.Persistence;

namespace Portal.Domain.Tenancy;

public sealed record ProjectRow(Guid Id, string Name, string? Description, string Role, int MemberCount, bool IsDemo, DateTimeOffset CreatedAt);

public sealed class ProjectService(IDbContextFactory<PortalDbContext> dbFactory, TimeProvider clock)
{
    public async Task<Page<ProjectRow>> ListForUserAsync(Guid userId, int skip, int take, CancellationToken ct = default)
    {
        take = Math.Clamp(take, 1, 200);
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var q = db.ProjectMembers.AsNoTracking().Where(m => m.UserId == userId && !m.Suspended)
            .Join(db.Projects, m => m.ProjectId, p => p.Id, (m, p) => new { m, p });
        var total = await q.CountAsync(ct);
        var items = await q.OrderBy(x => x.p.Name).Skip(Math.Max(0, skip)).Take(take)
            .Select(x => new ProjectRow(x.p.Id, x.p.Name, x.p.Description, x.m.Role, db.ProjectMembers.Count(o => o.ProjectId == x.p.Id), x.p.IsDemo, x.p.CreatedAt))
            .ToListAsync(ct);
        return new Page<ProjectRow>(items, total, skip, take);
    }

    /// <summary>Only organization admins create projects; the creator becomes the project's first admin.</summary>
    public async Task<Project> CreateAsync(Guid actor, string? name, string? description, CancellationToken ct = default)
    {
        if (string.IsNullOrWhiteSpace(name)) throw DomainException.Invalid("name", "Project name is required.");
        name = name.Trim();
        if (name.Length > 200) throw DomainException.Invalid("name", "Project name is limited to 200 characters.");
        if (description is { Length: > 2000 }) throw DomainException.Invalid("description", "Description is limited to 2000 characters.");
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var user = await db.Users.FirstOrDefaultAsync(u => u.Id == actor, ct) ?? throw DomainException.NotFound("User");
        if (!user.IsOrganizationAdmin || user.OrganizationId is null) throw DomainException.Forbidden("Only organization admins can create projects.");
        if (await db.Projects.AnyAsync(p => p.OrganizationId == user.OrganizationId && p.Name == name, ct))
            throw DomainException.Conflict($"A project named '{name}' already exists.", "name");
        var now = clock.GetUtcNow();
        var project = new Project { OrganizationId = user.OrganizationId.Value, Name = name, Description = description?.Trim(), CreatedAt = now, CreatedBy = actor };
        db.Projects.Add(project);
        db.ProjectMembers.Add(new ProjectMember { ProjectId = project.Id, UserId = actor, Role = Roles.Admin, AddedAt = now, AddedBy = actor });
        db.MembershipChanges.Add(new MembershipChange { ProjectId = project.Id, UserId = actor, UserEmail = user.Email, NewRole = Roles.Admin, ChangedBy = actor, ChangedByEmail = user.Email, ChangedAt = now });
        await db.SaveChangesAsync(ct);
        return project;
    }
}
