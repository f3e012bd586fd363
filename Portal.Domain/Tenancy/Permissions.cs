using Portal.Domain.Suite;

using System.Collections.Frozen;

namespace Portal.Domain.Tenancy;

public static class Roles
{
    public const string Admin = "admin";
    public const string Data = "data";
    public const string User = "user";
    public const string Compliance = "compliance";
    public const string Security = "security";

    public static readonly IReadOnlyList<string> All = [Admin, Data, User, Compliance, Security];

    public static string Describe(string role) => role switch
    {
        Admin => "Runs the project: members, modules, queries, keys and integrations.",
        Data => "Data engineer: suggests and edits queries, runs them.",
        User => "Runs approved queries through the portal or an API key.",
        Compliance => "Reviews the audit trail and produces compliance reports.",
        Security => "Triages security alerts and contains incidents.",
        _ => role,
    };

    public static bool IsValid(string? role) => role is not null && All.Contains(role);
}

/// <summary>A fine-grained permission and the suite module it belongs to (null = always available).</summary>
public sealed record Permission(string Name, string Description, string? Module);

/// <summary>
/// The single table mapping roles to permissions. Pages and endpoints declare a permission; the authorization
/// handler grants it when the member's role holds it and the permission's module is enabled for the project.
/// </summary>
public static class Permissions
{
    public const string ProjectView = "project.view";
    public const string MembersManage = "members.manage";
    public const string SuiteManage = "suite.manage";
    public const string AuditRead = "audit.read";
    public const string AuditExport = "audit.export";
    public const string ReportsGenerate = "reports.generate";
    public const string QueriesView = "queries.view";
    public const string QueriesExecute = "queries.execute";
    public const string QueriesEdit = "queries.edit";
    public const string AccessManage = "access.manage";
    public const string DatasourcesManage = "datasources.manage";
    public const string KeysManage = "keys.manage";
    public const string SuggestionsSubmit = "suggestions.submit";
    public const string SuggestionsReview = "suggestions.review";
    public const string AlertsRead = "alerts.read";
    public const string AlertsTriage = "alerts.triage";
    public const string IntegrationsManage = "integrations.manage";
    public const string RetentionManage = "retention.manage";

    public static readonly IReadOnlyList<Permission> All =
    [
        new(ProjectView, "See the project, its members and roles", null),
        new(MembersManage, "Add, change and remove project members", null),
        new(SuiteManage, "Install the Enterprise Suite and toggle its modules", null),
        new(AuditRead, "Read the audit trail and verify its chain", Modules.Audit),
        new(AuditExport, "Export the audit trail to CSV/JSON", Modules.Audit),
        new(ReportsGenerate, "Generate and download compliance reports", Modules.Audit),
        new(QueriesView, "Browse the query catalog", Modules.AccessControl),
        new(QueriesExecute, "Run approved queries", Modules.AccessControl),
        new(QueriesEdit, "Create and change approved queries", Modules.AccessControl),
        new(AccessManage, "Edit query permissions, column masks and classifications", Modules.AccessControl),
        new(DatasourcesManage, "Add datasources and test their connections", Modules.AccessControl),
        new(KeysManage, "Create, rotate and revoke API keys", Modules.AccessControl),
        new(SuggestionsSubmit, "Suggest new queries or changes", Modules.Governance),
        new(SuggestionsReview, "Approve or reject suggested queries", Modules.Governance),
        new(AlertsRead, "See security alerts", Modules.Security),
        new(AlertsTriage, "Acknowledge, resolve and contain alerts", Modules.Security),
        new(IntegrationsManage, "Configure SIEM export, webhooks and notifications", Modules.Integrations),
        new(RetentionManage, "Edit retention policies and archives", Modules.Integrations),
    ];

    private static readonly FrozenDictionary<string, Permission> ByName = All.ToFrozenDictionary(p => p.Name);

    public static readonly FrozenDictionary<string, FrozenSet<string>> ByRole = new Dictionary<string, FrozenSet<string>>
    {
        [Roles.Admin] = All.Select(p => p.Name).ToFrozenSet(),
        [Roles.Data] = new[] { ProjectView, QueriesView, QueriesExecute, QueriesEdit, DatasourcesManage, SuggestionsSubmit, AuditRead }.ToFrozenSet(),
        [Roles.User] = new[] { ProjectView, QueriesView, QueriesExecute, SuggestionsSubmit }.ToFrozenSet(),
        [Roles.Compliance] = new[] { ProjectView, AuditRead, AuditExport, ReportsGenerate, QueriesView, AlertsRead }.ToFrozenSet(),
        [Roles.Security] = new[] { ProjectView, AuditRead, AlertsRead, AlertsTriage, QueriesView, KeysManage }.ToFrozenSet(),
    }.ToFrozenDictionary();

    public static Permission Get(string name) =>
        ByName.TryGetValue(name, out var p) ? p : throw new ArgumentException($"Unknown permission '{name}'.", nameof(name));

    public static bool Exists(string name) => ByName.ContainsKey(name);

    public static bool RoleHas(string? role, string permission) =>
        role is not null && ByRole.TryGetValue(role, out var set) && set.Contains(permission);
}
