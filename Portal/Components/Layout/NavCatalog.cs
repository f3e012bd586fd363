namespace Portal.Components.Layout;

/// <summary>A page in the side navigation, shown only when the user's role holds its permission and its module is on.</summary>
public sealed record NavEntry(string Section, string Text, string Icon, string RelativePath, string Permission);

public static class NavCatalog
{
    public static readonly IReadOnlyList<NavEntry> Entries =
    [
        new("Project", "Overview", "space_dashboard", "", Portal.Domain.Tenancy.Permissions.ProjectView),
        new("Access", "API keys", "key", "keys", Portal.Domain.Tenancy.Permissions.KeysManage),
        new("Access", "Datasources", "storage", "datasources", Portal.Domain.Tenancy.Permissions.DatasourcesManage),
        new("Audit", "Audit log", "receipt_long", "audit", Portal.Domain.Tenancy.Permissions.AuditRead),
        new("Audit", "Reports", "summarize", "reports", Portal.Domain.Tenancy.Permissions.ReportsGenerate),
        new("Settings", "Members", "group", "members", Portal.Domain.Tenancy.Permissions.MembersManage),
        new("Settings", "Roles", "admin_panel_settings", "roles", Portal.Domain.Tenancy.Permissions.ProjectView),
        new("Settings", "Enterprise Suite", "extension", "enterprise", Portal.Domain.Tenancy.Permissions.SuiteManage),
    ];
}
