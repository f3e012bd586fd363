using Microsoft.EntityFrameworkCore;
using Portal.Domain.Persistence;
using Portal.Domain.Suite;

namespace Portal.Domain.Tenancy;

public sealed record Membership(Guid ProjectId, string ProjectName, string Role, bool Suspended);

/// <summary>
/// Answers "may this user do X in this project?" from the role table in <see cref="Permissions"/> and the
/// module gate in <see cref="SuiteService"/>. Deny by default: no membership, a suspended membership, an unknown
/// permission or a disabled module all answer no.
/// </summary>
public sealed class ProjectAccess(IDbContextFactory<PortalDbContext> dbFactory)
{
    public async Task<Membership?> GetMembershipAsync(Guid projectId, Guid userId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        return await db.ProjectMembers.AsNoTracking()
            .Where(m => m.ProjectId == projectId && m.UserId == userId)
            .Join(db.Projects, m => m.ProjectId, p => p.Id, (m, p) => new Membership(p.Id, p.Name, m.Role, m.Suspended))
            .FirstOrDefaultAsync(ct);
    }

    public async Task<IReadOnlyList<Membership>> ListMembershipsAsync(Guid userId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        return await db.ProjectMembers.AsNoTracking()
            .Where(m => m.UserId == userId && !m.Suspended)
            .Join(db.Projects, m => m.ProjectId, p => p.Id, (m, p) => new { p.Id, p.Name, m.Role, m.Suspended })
            .OrderBy(x => x.Name)
            .Select(x => new Membership(x.Id, x.Name, x.Role, x.Suspended))
            .ToListAsync(ct);
    }

    public async Task<AccessDecision> CheckAsync(Guid projectId, Guid userId, string permission, CancellationToken ct = default)
    {
        if (!Permissions.Exists(permission)) return AccessDecision.Deny("unknown permission");
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var member = await db.ProjectMembers.AsNoTracking().FirstOrDefaultAsync(m => m.ProjectId == projectId && m.UserId == userId, ct);
        if (member is null) return AccessDecision.NotMember;
        if (member.Suspended) return AccessDecision.Deny("membership suspended");
        if (!Permissions.RoleHas(member.Role, permission)) return AccessDecision.Deny($"role '{member.Role}' lacks '{permission}'");
        var module = Permissions.Get(permission).Module;
        if (module is not null)
        {
            var app = await db.InstalledApplications.AsNoTracking()
                .FirstOrDefaultAsync(a => a.ProjectId == projectId && a.AppId == InstalledApplication.EnterpriseSuite, ct);
            if (!SuiteService.IsEnabled(app, module)) return AccessDecision.ModuleOff(module);
        }
        return new AccessDecision(true, member.Role, null, null);
    }
}

public sealed record AccessDecision(bool Allowed, string? Role, string? Reason, string? DisabledModule)
{
    public static readonly AccessDecision NotMember = new(false, null, "not a member of this project", null);
    public static AccessDecision Deny(string reason) => new(false, null, reason, null);
    public static AccessDecision ModuleOff(string module) => new(false, null, $"module '{module}' is not enabled", module);
}
