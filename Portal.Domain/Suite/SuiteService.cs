using Microsoft.EntityFrameworkCore;
using Portal.Domain.Audit;
using Portal.Domain.Persistence;

namespace Portal.Domain.Suite;

public sealed record SuiteState(InstalledApplication? Installation, IReadOnlyList<ModuleState> Modules)
{
    public bool Installed => Installation is { Status: InstallStatus.Active or InstallStatus.Suspended };
}

public sealed record ModuleState(ModuleInfo Module, bool Enabled, bool AllowedByTier);

/// <summary>
/// The Enterprise Suite installation of a project and the one server-side module gate
/// (<see cref="IsModuleEnabledAsync"/>) used by pages, gateway endpoints and jobs. Every change is recorded in
/// suite_changes (same transaction) and then appended to the audit trail (see <see cref="PortalAudit"/>).
/// </summary>
public sealed class SuiteService(IDbContextFactory<PortalDbContext> dbFactory, TimeProvider clock, PortalAudit audit, Gateway.GatewayLookupCache? lookups = null)
{
    public const string CurrentVersion = "1.0.0";

    public Task<bool> IsModuleEnabledAsync(Guid projectId, string module, CancellationToken ct = default) =>
        lookups is null ? LoadModuleEnabledAsync(projectId, module, ct) : lookups.GetOrLoadAsync(projectId, "module:" + module, () => LoadModuleEnabledAsync(projectId, module, ct));

    private async Task<bool> LoadModuleEnabledAsync(Guid projectId, string module, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var app = await db.InstalledApplications.AsNoTracking()
            .FirstOrDefaultAsync(a => a.ProjectId == projectId && a.AppId == InstalledApplication.EnterpriseSuite, ct);
        return IsEnabled(app, module);
    }

    public static bool IsEnabled(InstalledApplication? app, string module) =>
        app is { Status: InstallStatus.Active }
        && Modules.Find(module) is { } info
        && app.Tier >= info.MinimumTier
        && app.EnabledModuleSet.Contains(module);

    public async Task<SuiteState> GetAsync(Guid projectId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var app = await db.InstalledApplications.AsNoTracking()
            .FirstOrDefaultAsync(a => a.ProjectId == projectId && a.AppId == InstalledApplication.EnterpriseSuite, ct);
        return ToState(app);
    }

    private static SuiteState ToState(InstalledApplication? app) => new(app, Modules.All
        .Select(m => new ModuleState(m, IsEnabled(app, m.Id), app is not null && app.Tier >= m.MinimumTier))
        .ToList());

    /// <summary>Installs (or re-installs, restoring the modules enabled before) the suite at a tier.</summary>
    public async Task<SuiteState> InstallAsync(Guid projectId, Tier tier, Guid actor, string? subscriptionReference = null, CancellationToken ct = default)
    {
        if (!Enum.IsDefined(tier)) throw DomainException.Invalid("tier", $"Tier '{tier}' is not one of {string.Join(", ", Enum.GetNames<Tier>())}.");
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var now = clock.GetUtcNow();
        var app = await db.InstalledApplications.FirstOrDefaultAsync(a => a.ProjectId == projectId && a.AppId == InstalledApplication.EnterpriseSuite, ct);
        if (app is { Status: InstallStatus.Active }) throw DomainException.Conflict("The Enterprise Suite is already installed in this project.");
        var before = app is null ? null : Snapshot(app);
        if (app is null)
        {
            app = new InstalledApplication
            {
                ProjectId = projectId, Version = CurrentVersion, Tier = tier, InstalledAt = now, UpdatedAt = now, InstalledBy = actor,
                // The audit module is the suite's core; a fresh install starts with it on.
                EnabledModules = Modules.Audit, SubscriptionReference = subscriptionReference,
            };
            db.InstalledApplications.Add(app);
        }
        else
        {
            app.Status = InstallStatus.Active; app.Tier = tier; app.UpdatedAt = now; app.InstalledAt = now; app.InstalledBy = actor;
            app.SubscriptionReference = subscriptionReference ?? app.SubscriptionReference;
        }
        db.SuiteChanges.Add(new SuiteChange { ProjectId = projectId, Action = "install", After = $"{tier}; modules: {app.EnabledModules}", ChangedBy = actor, ChangedAt = now });
        await db.SaveChangesAsync(ct);
        lookups?.Invalidate(projectId);
        await RecordAsync(db, app, "suite.installed", "install", actor, before, AuditSecurityLevel.Normal, null, ct);
        return ToState(app);
    }

    public async Task<SuiteState> ChangeTierAsync(Guid projectId, Tier tier, Guid actor, CancellationToken ct = default)
    {
        if (!Enum.IsDefined(tier)) throw DomainException.Invalid("tier", $"Tier '{tier}' is not one of {string.Join(", ", Enum.GetNames<Tier>())}.");
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var app = await RequireActiveAsync(db, projectId, ct);
        var before = app.Tier;
        if (before == tier) return ToState(app);
        var snapshot = Snapshot(app);
        app.Tier = tier;
        app.UpdatedAt = clock.GetUtcNow();
        // Modules above the new tier stay recorded but are off until the tier allows them again.
        db.SuiteChanges.Add(new SuiteChange { ProjectId = projectId, Action = "change_tier", Before = before.ToString(), After = tier.ToString(), ChangedBy = actor, ChangedAt = app.UpdatedAt });
        await db.SaveChangesAsync(ct);
        lookups?.Invalidate(projectId);
        await RecordAsync(db, app, "suite.tier_changed", "change_tier", actor, snapshot, AuditSecurityLevel.Normal, null, ct);
        return ToState(app);
    }

    public async Task<SuiteState> SetModuleAsync(Guid projectId, string module, bool enabled, Guid actor, CancellationToken ct = default)
    {
        var info = Modules.Find(module) ?? throw DomainException.Invalid("module", $"Unknown module '{module}'. Modules: {string.Join(", ", Modules.All.Select(m => m.Id))}.");
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var app = await RequireActiveAsync(db, projectId, ct);
        if (enabled && app.Tier < info.MinimumTier)
            throw DomainException.Invalid("module", $"{info.Name} needs the {TierName(info.MinimumTier)} tier; this project is on {TierName(app.Tier)}.");
        var set = app.EnabledModuleSet.ToHashSet();
        var changed = enabled ? set.Add(module) : set.Remove(module);
        if (!changed) return ToState(app);
        var before = app.EnabledModules;
        var snapshot = Snapshot(app);
        app.EnabledModules = string.Join(',', Modules.All.Select(m => m.Id).Where(set.Contains));
        app.UpdatedAt = clock.GetUtcNow();
        db.SuiteChanges.Add(new SuiteChange
        {
            ProjectId = projectId, Action = enabled ? "enable_module" : "disable_module", Module = module,
            Before = before, After = app.EnabledModules, ChangedBy = actor, ChangedAt = app.UpdatedAt,
        });
        await db.SaveChangesAsync(ct);
        lookups?.Invalidate(projectId);
        // Switching off the audit trail or the security center weakens oversight of the project.
        var level = !enabled && module is Modules.Audit or Modules.Security ? AuditSecurityLevel.Warning : AuditSecurityLevel.Normal;
        await RecordAsync(db, app, enabled ? "suite.module_enabled" : "suite.module_disabled", enabled ? "enable_module" : "disable_module",
            actor, snapshot, level, module, ct);
        return ToState(app);
    }

    /// <summary>Uninstalls the suite. Module data and the module list are kept so a re-install restores them.</summary>
    public async Task<SuiteState> UninstallAsync(Guid projectId, Guid actor, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var app = await RequireActiveAsync(db, projectId, ct);
        var snapshot = Snapshot(app);
        app.Status = InstallStatus.Uninstalled;
        app.UpdatedAt = clock.GetUtcNow();
        db.SuiteChanges.Add(new SuiteChange { ProjectId = projectId, Action = "uninstall", Before = $"{app.Tier}; modules: {app.EnabledModules}", ChangedBy = actor, ChangedAt = app.UpdatedAt });
        await db.SaveChangesAsync(ct);
        lookups?.Invalidate(projectId);
        // Uninstalling turns every module off, the audit module included.
        await RecordAsync(db, app, "suite.uninstalled", "uninstall", actor, snapshot, AuditSecurityLevel.Warning, null, ct);
        return ToState(app);
    }

    private sealed record SuiteSnapshot(string Status, string Tier, IReadOnlyList<string> EnabledModules);

    private static SuiteSnapshot Snapshot(InstalledApplication app) =>
        new(app.Status, app.Tier.ToString(), app.EnabledModuleSet.ToList());

    private async Task RecordAsync(PortalDbContext db, InstalledApplication app, string eventType, string action, Guid actor,
        SuiteSnapshot? before, AuditSecurityLevel level, string? module, CancellationToken ct)
    {
        var after = Snapshot(app);
        await audit.RecordAsync(new AuditEventDraft
        {
            ProjectId = app.ProjectId, EventType = eventType, Actor = await PortalAudit.UserAsync(db, app.ProjectId, actor, ct),
            ResourceType = module is null ? "suite" : "module", ResourceId = module ?? app.AppId, Action = action,
            BeforeState = PortalAudit.Json(before is null ? null : new { status = before.Status, tier = before.Tier, enabled_modules = before.EnabledModules }),
            AfterState = PortalAudit.Json(new { status = after.Status, tier = after.Tier, enabled_modules = after.EnabledModules }),
            SecurityLevel = level, OccurredAt = app.UpdatedAt,
        }, ct);
    }

    public async Task<IReadOnlyList<SuiteChange>> RecentChangesAsync(Guid projectId, int take = 20, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        return await db.SuiteChanges.AsNoTracking().Where(c => c.ProjectId == projectId)
            .OrderByDescending(c => c.ChangedAt).Take(Math.Clamp(take, 1, 200)).ToListAsync(ct);
    }

    public static string TierName(Tier tier) => tier == Tier.EnterprisePlus ? "Enterprise Plus" : tier.ToString();

    private static async Task<InstalledApplication> RequireActiveAsync(PortalDbContext db, Guid projectId, CancellationToken ct) =>
        await db.InstalledApplications.FirstOrDefaultAsync(a => a.ProjectId == projectId && a.AppId == InstalledApplication.EnterpriseSuite && a.Status == InstallStatus.Active, ct)
        ?? throw DomainException.Conflict("The Enterprise Suite is not installed in this project. Install it first.");
}
