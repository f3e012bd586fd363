namespace Portal.Domain.Suite;

public static class Modules
{
    public const string Audit = "audit";
    public const string AccessControl = "access_control";
    public const string Governance = "governance";
    public const string Security = "security";
    public const string Integrations = "integrations";

    public static readonly IReadOnlyList<ModuleInfo> All =
    [
        new(Audit, "Audit trail", "Tamper-evident record of every query, sign-in and change, with search and export.", Tier.Essentials),
        new(AccessControl, "Access control", "Datasources, approved queries, API keys, permissions and column masking.", Tier.Professional),
        new(Governance, "Governance", "Suggested queries, approval workflow, version history and lineage.", Tier.Professional),
        new(Security, "Security center", "Alerts, detectors and anomaly scans with triage and containment.", Tier.Enterprise),
        new(Integrations, "Integrations", "SIEM export, signed webhooks, Slack/Teams and retention archives.", Tier.EnterprisePlus),
    ];

    public static ModuleInfo? Find(string id) => All.FirstOrDefault(m => m.Id == id);
}

public sealed record ModuleInfo(string Id, string Name, string Description, Tier MinimumTier);

public enum Tier { Essentials = 1, Professional = 2, Enterprise = 3, EnterprisePlus = 4 }

public static class InstallStatus
{
    public const string Active = "active";
    public const string Suspended = "suspended";
    public const string Uninstalled = "uninstalled";
}

/// <summary>The seed's "Application Installation Model": one row per project and app.</summary>
public sealed class InstalledApplication
{
    public const string EnterpriseSuite = "enterprise-suite";

    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    public string AppId { get; set; } = EnterpriseSuite;
    public required string Version { get; set; }
    public string Status { get; set; } = InstallStatus.Active;
    public Tier Tier { get; set; }
    /// <summary>Comma-separated module ids; kept when the suite is uninstalled so a re-install restores them.</summary>
    public string EnabledModules { get; set; } = "";
    public string? SubscriptionReference { get; set; }
    public Guid? InstalledBy { get; set; }
    public DateTimeOffset InstalledAt { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }

    public IReadOnlySet<string> EnabledModuleSet =>
        EnabledModules.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet();
}

/// <summary>Per-project, per-module settings as JSON.</summary>
public sealed class ModuleSetting
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    public required string Module { get; set; }
    public string SettingsJson { get; set; } = "{}";
    public DateTimeOffset UpdatedAt { get; set; }
    public Guid? UpdatedBy { get; set; }
}

/// <summary>Every install, uninstall, tier change and module toggle, kept for the audit trail.</summary>
public sealed class SuiteChange
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    public required string Action { get; set; }
    public string? Module { get; set; }
    public string? Before { get; set; }
    public string? After { get; set; }
    public Guid? ChangedBy { get; set; }
    public DateTimeOffset ChangedAt { get; set; }
}
