using Microsoft.EntityFrameworkCore;
using Portal.Domain;
using Portal.Domain.Suite;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;
using Portal.Tests.Tenancy;

namespace Portal.Tests.Suite;

public class SuiteServiceTests
{
    public static TheoryData<string, Tier> TiersOnBoth()
    {
        var data = new TheoryData<string, Tier>();
        foreach (var provider in new[] { "sqlite", "postgres" })
            foreach (var tier in Enum.GetValues<Tier>()) data.Add(provider, tier);
        return data;
    }

    private static readonly Dictionary<Tier, string[]> Allowed = new()
    {
        [Tier.Essentials] = [Modules.Audit],
        [Tier.Professional] = [Modules.Audit, Modules.AccessControl, Modules.Governance],
        [Tier.Enterprise] = [Modules.Audit, Modules.AccessControl, Modules.Governance, Modules.Security],
        [Tier.EnterprisePlus] = [Modules.Audit, Modules.AccessControl, Modules.Governance, Modules.Security, Modules.Integrations],
    };

    [Theory]
    [MemberData(nameof(TiersOnBoth))]
    public async Task Tiers_gate_modules(string provider, Tier tier)
    {
        await using var w = await TenancyWorld.CreateAsync(provider);
        var (admin, projectId) = await w.SetupAsync();
        var suite = w.Get<SuiteService>();
        var state = await suite.InstallAsync(projectId, tier, admin.Id);
        Assert.Equal([Modules.Audit], state.Modules.Where(m => m.Enabled).Select(m => m.Module.Id));
        Assert.Equal(Allowed[tier], state.Modules.Where(m => m.AllowedByTier).Select(m => m.Module.Id));

        foreach (var module in Modules.All)
        {
            if (Allowed[tier].Contains(module.Id))
            {
                await suite.SetModuleAsync(projectId, module.Id, true, admin.Id);
                Assert.True(await suite.IsModuleEnabledAsync(projectId, module.Id), module.Id);
            }
            else
            {
                var e = await DomainAssert.RefusedAsync(ErrorKind.Validation, "module", () => suite.SetModuleAsync(projectId, module.Id, true, admin.Id));
                Assert.Contains(SuiteService.TierName(module.MinimumTier), e.Message);
                Assert.False(await suite.IsModuleEnabledAsync(projectId, module.Id), module.Id);
            }
        }
        await DomainAssert.RefusedAsync(ErrorKind.Validation, "module", () => suite.SetModuleAsync(projectId, "billing", true, admin.Id));
        Assert.False(await suite.IsModuleEnabledAsync(projectId, "billing"));
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Disable_uninstall_and_tier_changes_keep_settings_and_restore_the_module_list(string provider)
    {
        await using var w = await TenancyWorld.CreateAsync(provider);
        var (admin, projectId) = await w.SetupAsync();
        w.Clock.Tick = TimeSpan.FromSeconds(1);
        var suite = w.Get<SuiteService>();
        Assert.False(await suite.IsModuleEnabledAsync(projectId, Modules.Audit)); // not installed
        await DomainAssert.RefusedAsync(ErrorKind.Conflict, null, () => suite.SetModuleAsync(projectId, Modules.Audit, true, admin.Id));

        await suite.InstallAsync(projectId, Tier.Enterprise, admin.Id, "SUB-1");
        await DomainAssert.RefusedAsync(ErrorKind.Conflict, null, () => suite.InstallAsync(projectId, Tier.Enterprise, admin.Id));
        await DomainAssert.RefusedAsync(ErrorKind.Validation, "tier", () => suite.InstallAsync(projectId, (Tier)99, admin.Id));
        foreach (var m in new[] { Modules.AccessControl, Modules.Governance, Modules.Security })
            await suite.SetModuleAsync(projectId, m, true, admin.Id);
        await w.QueryAsync(async ctx =>
        {
            ctx.ModuleSettings.Add(new ModuleSetting { ProjectId = projectId, Module = Modules.Security, SettingsJson = """{"threshold":7}""", UpdatedAt = w.Clock.GetUtcNow() });
            return await ctx.SaveChangesAsync();
        });

        await suite.SetModuleAsync(projectId, Modules.Security, false, admin.Id);
        Assert.False(await suite.IsModuleEnabledAsync(projectId, Modules.Security));
        Assert.Equal("""{"threshold":7}""", await SettingsAsync(w, projectId));
        await suite.SetModuleAsync(projectId, Modules.Security, true, admin.Id);
        Assert.True(await suite.IsModuleEnabledAsync(projectId, Modules.Security));

        // A lower tier turns modules above it off without forgetting them; the higher tier brings them back.
        await suite.ChangeTierAsync(projectId, Tier.Professional, admin.Id);
        Assert.False(await suite.IsModuleEnabledAsync(projectId, Modules.Security));
        Assert.True(await suite.IsModuleEnabledAsync(projectId, Modules.Governance));
        await suite.ChangeTierAsync(projectId, Tier.Enterprise, admin.Id);
        Assert.True(await suite.IsModuleEnabledAsync(projectId, Modules.Security));

        var enabledBefore = (await suite.GetAsync(projectId)).Modules.Where(m => m.Enabled).Select(m => m.Module.Id).ToList();
        await suite.UninstallAsync(projectId, admin.Id);
        var uninstalled = await suite.GetAsync(projectId);
        Assert.False(uninstalled.Installed);
        Assert.All(Modules.All, m => Assert.False(SuiteService.IsEnabled(uninstalled.Installation, m.Id)));
        foreach (var m in Modules.All) Assert.False(await suite.IsModuleEnabledAsync(projectId, m.Id), m.Id);
        await DomainAssert.RefusedAsync(ErrorKind.Conflict, null, () => suite.UninstallAsync(projectId, admin.Id));
        Assert.Equal("""{"threshold":7}""", await SettingsAsync(w, projectId));

        var reinstalled = await suite.InstallAsync(projectId, Tier.Enterprise, admin.Id);
        Assert.Equal(enabledBefore, reinstalled.Modules.Where(m => m.Enabled).Select(m => m.Module.Id));
        Assert.Equal("SUB-1", reinstalled.Installation!.SubscriptionReference);
        Assert.Equal(4, enabledBefore.Count);

        var actions = (await w.QueryAsync(ctx => ctx.SuiteChanges.AsNoTracking().Where(c => c.ProjectId == projectId).ToListAsync()))
            .OrderBy(c => c.ChangedAt).ToList();
        Assert.All(actions, c => Assert.Equal(admin.Id, c.ChangedBy));
        Assert.Equal(
            ["install", "enable_module", "enable_module", "enable_module", "disable_module", "enable_module", "change_tier", "change_tier", "uninstall", "install"],
            actions.Select(c => c.Action));
        var disable = actions[4];
        Assert.Equal((Modules.Security, "audit,access_control,governance,security", "audit,access_control,governance"), (disable.Module, disable.Before, disable.After));
        Assert.Equal(("Enterprise", "Professional"), (actions[6].Before, actions[6].After));
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task A_suspended_installation_enables_nothing(string provider)
    {
        await using var w = await TenancyWorld.CreateAsync(provider);
        var (admin, projectId) = await w.SetupAsync();
        var suite = w.Get<SuiteService>();
        await suite.InstallAsync(projectId, Tier.EnterprisePlus, admin.Id);
        await suite.SetModuleAsync(projectId, Modules.Integrations, true, admin.Id);
        await w.QueryAsync(ctx => ctx.InstalledApplications.Where(a => a.ProjectId == projectId)
            .ExecuteUpdateAsync(s => s.SetProperty(a => a.Status, InstallStatus.Suspended)));
        foreach (var m in Modules.All) Assert.False(await suite.IsModuleEnabledAsync(projectId, m.Id), m.Id);
        Assert.False((await w.Get<ProjectAccess>().CheckAsync(projectId, admin.Id, Permissions.AuditRead)).Allowed);
        // Permissions outside any module do not depend on the suite.
        Assert.True((await w.Get<ProjectAccess>().CheckAsync(projectId, admin.Id, Permissions.SuiteManage)).Allowed);
    }

    private static Task<string?> SettingsAsync(TenancyWorld w, Guid projectId) =>
        w.QueryAsync(ctx => ctx.ModuleSettings.AsNoTracking().Where(s => s.ProjectId == projectId && s.Module == Modules.Security).Select(s => s.SettingsJson).FirstOrDefaultAsync());
}
