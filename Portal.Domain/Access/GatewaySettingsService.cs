using Microsoft.EntityFrameworkCore;
using Portal.Domain.Audit;
using Portal.Domain.Gateway;
using Portal.Domain.Persistence;
using Portal.Domain.Tenancy;

namespace Portal.Domain.Access;

/// <summary>A project's gateway settings as the pipeline applies them; <see cref="IsDefault"/> when the project has not chosen.</summary>
public sealed record GatewaySettingsRow(InjectionScreeningMode InjectionScreening, bool IsDefault, InjectionScreeningMode Default, Guid? UpdatedBy, DateTimeOffset? UpdatedAt);

/// <summary>
/// Per-project gateway settings: what the pipeline does with a parameter value that looks like SQL injection
/// (block with 400, or flag: run and mark the audit event). Without a project setting the portal-wide
/// "Gateway:InjectionScreening" applies. Only members who manage access may change it; every change is recorded in
/// access_changes and the audit trail with before/after, and switching to flag is a warning (it lowers a protection).
/// </summary>
public sealed class GatewaySettingsService(IDbContextFactory<PortalDbContext> dbFactory, GatewayOptions options, TimeProvider clock, PortalAudit audit)
{
    public static string ModeName(InjectionScreeningMode mode) => mode.ToString().ToLowerInvariant();

    public async Task<GatewaySettingsRow> GetAsync(Guid projectId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        if (!await db.Projects.AnyAsync(p => p.Id == projectId, ct)) throw DomainException.NotFound("Project");
        var row = await db.Set<GatewaySetting>().AsNoTracking().FirstOrDefaultAsync(s => s.ProjectId == projectId, ct);
        return ToRow(row);
    }

    /// <summary>The mode the pipeline applies now. Called only when a value was found suspicious, so it costs nothing on ordinary calls.</summary>
    public async Task<InjectionScreeningMode> InjectionScreeningAsync(Guid projectId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var stored = await db.Set<GatewaySetting>().AsNoTracking().Where(s => s.ProjectId == projectId).Select(s => s.InjectionScreening).FirstOrDefaultAsync(ct);
        return Parse(stored) ?? options.InjectionScreening;
    }

    /// <param name="mode">"block", "flag", or "default" to follow the portal-wide setting again.</param>
    public async Task<GatewaySettingsRow> SetInjectionScreeningAsync(Guid projectId, string? mode, Guid actor, CancellationToken ct = default)
    {
        var text = mode?.Trim().ToLowerInvariant();
        InjectionScreeningMode? chosen = text switch
        {
            "block" => InjectionScreeningMode.Block,
            "flag" => InjectionScreeningMode.Flag,
            "default" => null,
            _ => throw DomainException.Invalid("injectionScreening", "Injection screening must be block, flag or default."),
        };
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        if (!await db.Projects.AnyAsync(p => p.Id == projectId, ct)) throw DomainException.NotFound("Project");
        var role = await db.ProjectMembers.AsNoTracking().Where(m => m.ProjectId == projectId && m.UserId == actor && !m.Suspended).Select(m => m.Role).FirstOrDefaultAsync(ct);
        if (!Permissions.RoleHas(role, Permissions.AccessManage))
            throw DomainException.Forbidden("Your role in this project cannot change access settings.");

        var existing = await db.Set<GatewaySetting>().FirstOrDefaultAsync(s => s.ProjectId == projectId, ct);
        var before = ToRow(existing);
        var now = clock.GetUtcNow();
        if (chosen is null)
        {
            if (existing is null) return before;
            db.Remove(existing);
        }
        else
        {
            if (existing is not null && Parse(existing.InjectionScreening) == chosen) return before;
            existing ??= db.Add(new GatewaySetting { ProjectId = projectId, InjectionScreening = "" }).Entity;
            existing.InjectionScreening = ModeName(chosen.Value);
            existing.UpdatedBy = actor;
            existing.UpdatedAt = now;
        }
        var after = ToRow(chosen is null ? null : existing);
        AccessChanges.Stage(db, projectId, AccessSubjects.GatewaySettings, projectId, "updated", Describe(before), Describe(after), actor, now);
        try { await db.SaveChangesAsync(ct); }
        catch (DbUpdateException) { throw DomainException.Conflict("The settings were changed at the same time. Reload and try again."); }
        var lowered = before.InjectionScreening == InjectionScreeningMode.Block && after.InjectionScreening == InjectionScreeningMode.Flag;
        await AccessChanges.RecordAsync(audit, db, projectId, AccessSubjects.GatewaySettings, projectId, "updated", Describe(before), Describe(after), actor,
            lowered ? AuditSecurityLevel.Warning : AuditSecurityLevel.Normal, now, ct);
        return after;
    }

    private GatewaySettingsRow ToRow(GatewaySetting? s) => Parse(s?.InjectionScreening) is { } mode
        ? new(mode, false, options.InjectionScreening, s!.UpdatedBy, s.UpdatedAt)
        : new(options.InjectionScreening, true, options.InjectionScreening, null, null);

    private static InjectionScreeningMode? Parse(string? stored) => stored switch
    {
        "block" => InjectionScreeningMode.Block,
        "flag" => InjectionScreeningMode.Flag,
        _ => null,
    };

    private static string? Describe(GatewaySettingsRow r) =>
        PortalAudit.Json(new { injectionScreening = ModeName(r.InjectionScreening), source = r.IsDefault ? "portal default" : "project" });
}
