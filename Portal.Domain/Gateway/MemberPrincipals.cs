using Microsoft.EntityFrameworkCore;
using Portal.Domain.Persistence;

namespace Portal.Domain.Gateway;

/// <summary>Turns a signed-in portal user into a gateway principal: their e-mail and current role in the project, if an active member.</summary>
public sealed class MemberPrincipals(IDbContextFactory<PortalDbContext> dbFactory)
{
    public async Task<GatewayPrincipal?> FindAsync(Guid projectId, Guid userId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var member = await db.ProjectMembers.AsNoTracking()
            .Where(m => m.ProjectId == projectId && m.UserId == userId && !m.Suspended)
            .Join(db.Users, m => m.UserId, u => u.Id, (m, u) => new { m.Role, u.Email })
            .FirstOrDefaultAsync(ct);
        return member is null ? null : GatewayPrincipal.ForMember(projectId, userId, member.Email ?? "", member.Role);
    }
}
