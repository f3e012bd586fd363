using Microsoft.EntityFrameworkCore;
using Portal.Domain.Audit;
using Portal.Domain.Gateway.Catalog;
using Portal.Domain.Persistence;
using Portal.Domain.Tenancy;

namespace Portal.Domain.Access;

public enum QueryAction { View, Execute, Edit }

/// <summary>Who asks: the member's (or API key's) project role and, for people, their user id.</summary>
public sealed record QueryPrincipal(string Role, Guid? UserId = null);

/// <summary>A grant as entered: principal type role|user|all; principal is a role name, a member's user id, or null for all.</summary>
public sealed record QueryGrant(string? PrincipalType, string? Principal, bool CanView, bool CanExecute, bool CanEdit);

public sealed record QueryPermissionRow(
    Guid Id, Guid QueryId, string PrincipalType, string? Principal, bool CanView, bool CanExecute, bool CanEdit,
    Guid UpdatedBy, DateTimeOffset UpdatedAt);

/// <summary>
/// Who may view, execute or edit each approved query. Deny by default: apart from the project admin, a principal
/// may act only when a grant for its role, its user id or "all" allows that action. Archived queries cannot be
/// executed by anyone. Every change is recorded in access_changes with the change and then appended to the audit
/// trail with before/after (see <see cref="PortalAudit"/>).
/// </summary>
public sealed class QueryPermissionService(IDbContextFactory<PortalDbContext> dbFactory, TimeProvider clock, PortalAudit audit, Gateway.GatewayLookupCache? lookups = null)
{
    /// <summary>Creates or replaces the grant for this principal; a grant allowing nothing is removed.</summary>
    public async Task<QueryPermissionRow?> SetAsync(Guid projectId, Guid queryId, QueryGrant grant, Guid actor, CancellationToken ct = default)
    {
        var type = grant.PrincipalType?.Trim().ToLowerInvariant();
        if (type is null || !PrincipalTypes.Values.Contains(type))
            throw DomainException.Invalid("principalType", "Principal type must be role, user or all.");
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        await ApprovedQueryService.FindAsync(db, projectId, queryId, ct, tracking: false);
        var principal = await PrincipalAsync(db, projectId, type, grant.Principal, ct);

        var existing = await db.Set<QueryPermission>()
            .FirstOrDefaultAsync(p => p.ProjectId == projectId && p.QueryId == queryId && p.PrincipalType == type && p.Principal == principal, ct);
        var before = existing is null ? null : Describe(existing);
        var now = clock.GetUtcNow();
        if (!grant.CanView && !grant.CanExecute && !grant.CanEdit)
        {
            if (existing is null) return null;
            db.Remove(existing);
            AccessChanges.Stage(db, projectId, AccessSubjects.QueryPermission, existing.Id, "deleted", before, null, actor, now);
            await SaveAsync(db, ct);
            lookups?.Invalidate(projectId);
            await AccessChanges.RecordAsync(audit, db, projectId, AccessSubjects.QueryPermission, existing.Id, "deleted", before, null, actor, AuditSecurityLevel.Normal, now, ct);
            return null;
        }
        var created = existing is null;
        existing ??= db.Add(new QueryPermission { ProjectId = projectId, QueryId = queryId, PrincipalType = type, Principal = principal }).Entity;
        existing.CanView = grant.CanView;
        existing.CanExecute = grant.CanExecute;
        existing.CanEdit = grant.CanEdit;
        existing.UpdatedBy = actor;
        existing.UpdatedAt = now;
        var after = Describe(existing);
        if (after == before) return ToRow(existing);
        var action = created ? "created" : "updated";
        AccessChanges.Stage(db, projectId, AccessSubjects.QueryPermission, existing.Id, action, before, after, actor, now);
        await SaveAsync(db, ct);
        lookups?.Invalidate(projectId);
        // Letting every member run a query is the broadest grant there is: worth a second look in the trail.
        var level = type == PrincipalTypes.All && existing.CanExecute ? AuditSecurityLevel.Warning : AuditSecurityLevel.Normal;
        await AccessChanges.RecordAsync(audit, db, projectId, AccessSubjects.QueryPermission, existing.Id, action, before, after, actor, level, now, ct);
        return ToRow(existing);
    }

    public async Task RemoveAsync(Guid projectId, Guid permissionId, Guid actor, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var existing = await db.Set<QueryPermission>().FirstOrDefaultAsync(p => p.Id == permissionId && p.ProjectId == projectId, ct)
            ?? throw DomainException.NotFound("Query permission");
        var before = Describe(existing);
        var now = clock.GetUtcNow();
        db.Remove(existing);
        AccessChanges.Stage(db, projectId, AccessSubjects.QueryPermission, existing.Id, "deleted", before, null, actor, now);
        try { await db.SaveChangesAsync(ct); }
        catch (DbUpdateConcurrencyException) { throw DomainException.NotFound("Query permission"); }
        lookups?.Invalidate(projectId);
        await AccessChanges.RecordAsync(audit, db, projectId, AccessSubjects.QueryPermission, existing.Id, "deleted", before, null, actor, AuditSecurityLevel.Normal, now, ct);
    }

    private static async Task SaveAsync(PortalDbContext db, CancellationToken ct)
    {
        try { await db.SaveChangesAsync(ct); }
        catch (DbUpdateException) { throw DomainException.Conflict("This grant was changed at the same time. Reload and try again."); }
    }

    /// <summary>What the trail keeps of a grant: which query, to whom, and what it allows.</summary>
    private static string? Describe(QueryPermission p) => PortalAudit.Json(new
    {
        queryId = p.QueryId, principalType = p.PrincipalType, principal = p.Principal, canView = p.CanView, canExecute = p.CanExecute, canEdit = p.CanEdit,
    });

    public async Task<IReadOnlyList<QueryPermissionRow>> ListAsync(Guid projectId, Guid queryId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        await ApprovedQueryService.FindAsync(db, projectId, queryId, ct, tracking: false);
        var rows = await db.Set<QueryPermission>().AsNoTracking().Where(p => p.ProjectId == projectId && p.QueryId == queryId).ToListAsync(ct);
        return rows.OrderBy(p => Array.IndexOf(["all", "role", "user"], p.PrincipalType)).ThenBy(p => p.Principal, StringComparer.Ordinal).Select(ToRow).ToList();
    }

    public Task<bool> CanAsync(Guid projectId, Guid queryId, QueryPrincipal who, QueryAction action, CancellationToken ct = default) =>
        lookups is null ? LoadCanAsync(projectId, queryId, who, action, ct)
            : lookups.GetOrLoadAsync(projectId, $"can:{queryId:N}:{action}:{who.UserId:N}:{who.Role}", () => LoadCanAsync(projectId, queryId, who, action, ct));

    private async Task<bool> LoadCanAsync(Guid projectId, Guid queryId, QueryPrincipal who, QueryAction action, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var status = await db.Set<ApprovedQuery>().AsNoTracking().Where(q => q.Id == queryId && q.ProjectId == projectId).Select(q => q.Status).FirstOrDefaultAsync(ct);
        if (status is null) return false;
        if (action == QueryAction.Execute && status != QueryStatuses.Active) return false;
        if (string.Equals(who.Role, Roles.Admin, StringComparison.Ordinal)) return true;
        var user = who.UserId?.ToString();
        var grants = db.Set<QueryPermission>().AsNoTracking().Where(p => p.ProjectId == projectId && p.QueryId == queryId
            && (p.PrincipalType == PrincipalTypes.All
                || (p.PrincipalType == PrincipalTypes.Role && p.Principal == who.Role)
                || (user != null && p.PrincipalType == PrincipalTypes.User && p.Principal == user)));
        return action switch
        {
            QueryAction.View => await grants.AnyAsync(p => p.CanView, ct),
            QueryAction.Execute => await grants.AnyAsync(p => p.CanExecute, ct),
            QueryAction.Edit => await grants.AnyAsync(p => p.CanEdit, ct),
            _ => false,
        };
    }

    private static async Task<string?> PrincipalAsync(PortalDbContext db, Guid projectId, string type, string? raw, CancellationToken ct)
    {
        var value = raw?.Trim();
        switch (type)
        {
            case PrincipalTypes.All:
                if (!string.IsNullOrEmpty(value)) throw DomainException.Invalid("principal", "A grant to all members names no principal.");
                return null;
            case PrincipalTypes.Role:
                value = value?.ToLowerInvariant();
                if (!Roles.IsValid(value)) throw DomainException.Invalid("principal", $"Role must be one of {string.Join(", ", Roles.All)}.");
                return value;
            default:
                if (!Guid.TryParse(value, out var userId)) throw DomainException.Invalid("principal", "Choose a member of this project.");
                if (!await db.ProjectMembers.AnyAsync(m => m.ProjectId == projectId && m.UserId == userId, ct))
                    throw DomainException.Invalid("principal", "That user is not a member of this project.");
                return userId.ToString();
        }
    }

    private static QueryPermissionRow ToRow(QueryPermission p) =>
        new(p.Id, p.QueryId, p.PrincipalType, p.Principal, p.CanView, p.CanExecute, p.CanEdit, p.UpdatedBy, p.UpdatedAt);
}
