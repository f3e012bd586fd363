namespace Portal.Components.Layout;

/// <summary>A page in the side navigation, shown only when the user's role holds its permission and its module is on.</summary>
public sealed record NavEntry(string Section, string Text, string Icon, string RelativePath, string Permission);

public static class NavCatalog
{
    public static readonly IReadOnlyList<NavEntry> Entries =
    [
        new("Project", "Overview", "space_dashboard", "", Portal.Domain.Tenancy.Permissions.ProjectView),
        new("Access", "Queries", "manage_search", "queries", Portal.Domain.Tenancy.Permissions.QueriesView),
        new("Access", "Access control", "policy", "access", Portal.Domain.Tenancy.Permissions.AccessManage),
        new("Access", "API keys", "key", "keys", Portal.Domain.Tenancy.Permissions.KeysManage),
        new("Access", "Datasources", "storage", "datasources", Portal.Domain.Tenancy.Permissions.DatasourcesManage),
        new("Governance", "Suggestions", "lightbulb", "suggestions", Portal.Domain.Tenancy.Permissions.SuggestionsSubmit),
        new("Governance", "Approvals", "fact_check", "approvals", Portal.Domain.Tenancy.Permissions.SuggestionsReview),
        new("Governance", "Query history", "history", "history", Portal.Domain.Tenancy.Permissions.QueriesView),
        new("Audit", "Audit log", "receipt_long", "audit", Portal.Domain.Tenancy.Permissions.AuditRead),
        new("Security", "Alerts", "notification_important", "alerts", Portal.Domain.Tenancy.Permissions.AlertsRead),
        new("Security", "Rate limits", "speed", "rate-limits", Portal.Domain.Tenancy.Permissions.AlertsTriage),
        new("Audit", "Reports", "summarize", "reports", Portal.Domain.Tenancy.Permissions.ReportsGenerate),
        new("Settings", "Members", "group", "members", Portal.Domain.Tenancy.Permissions.MembersManage),
        new("Settings", "Roles", "admin_panel_settings", "roles", Portal.Domain.Tenancy.Permissions.ProjectView),
        new("Settings", "Integrations", "hub", "integrations", Portal.Domain.Tenancy.Permissions.IntegrationsManage),
        new("Settings", "Retention", "inventory_2", "retention", Portal.Domain.Tenancy.Permissions.RetentionManage),
        new("Settings", "Enterprise Suite", "extension", "enterprise", Portal.Domain.Tenancy.Permissions.SuiteManage),
    ];
}
