using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Components.Authorization;
using Portal.Domain.Suite;
using Portal.Domain.Tenancy;
using Portal.Security;

namespace Portal.Components.Layout;

/// <summary>
/// The project the user is looking at (from the /p/{id}/ address), their membership and the suite state, for the
/// shell's navigation. Holds no rules: permission answers come from <see cref="Permissions"/> and <see cref="SuiteService"/>.
/// </summary>
public sealed partial class ProjectContext(NavigationManager nav, ProjectAccess access, SuiteService suite, AuthenticationStateProvider auth,
    Portal.Domain.Security.Alerts.AlertService alerts)
{
    public Guid? ProjectId { get; private set; }
    public Membership? Membership { get; private set; }
    public SuiteState? Suite { get; private set; }
    public IReadOnlyList<Membership> Memberships { get; private set; } = [];
    public bool IsOrgAdmin { get; private set; }
    public string? UserName { get; private set; }
    /// <summary>Open and acknowledged security alerts of the project (the nav badge), when the user may read alerts.</summary>
    public int ActiveAlerts { get; private set; }
    public event Action? Changed;

    [GeneratedRegex(@"^p/(?<id>[0-9a-fA-F-]{36})(/|$)")]
    private static partial Regex ProjectPath();

    public static Guid? ProjectIdFromUri(NavigationManager nav)
    {
        var m = ProjectPath().Match(nav.ToBaseRelativePath(nav.Uri));
        return m.Success && Guid.TryParse(m.Groups["id"].Value, out var id) ? id : null;
    }

    public async Task RefreshAsync()
    {
        var user = (await auth.GetAuthenticationStateAsync()).User;
        var userId = user.UserId();
        IsOrgAdmin = user.HasClaim(OrgAdmin.Claim, "true");
        UserName = user.FindFirst("display_name")?.Value ?? user.Identity?.Name;
        ProjectId = ProjectIdFromUri(nav);
        if (userId is null) { Membership = null; Suite = null; Memberships = []; Changed?.Invoke(); return; }
        Memberships = await access.ListMembershipsAsync(userId.Value);
        Membership = ProjectId is { } pid ? await access.GetMembershipAsync(pid, userId.Value) : null;
        if (Membership is { Suspended: true }) Membership = null;
        Suite = Membership is not null ? await suite.GetAsync(Membership.ProjectId) : null;
        ActiveAlerts = Membership is not null && Allows(Permissions.AlertsRead) ? await alerts.ActiveCountAsync(Membership.ProjectId) : 0;
        Changed?.Invoke();
    }

    /// <summary>Re-counts the alerts badge after a triage action.</summary>
    public async Task RefreshAlertsAsync()
    {
        ActiveAlerts = Membership is not null && Allows(Permissions.AlertsRead) ? await alerts.ActiveCountAsync(Membership.ProjectId) : 0;
        Changed?.Invoke();
    }

    public bool Allows(string permission)
    {
        if (Membership is null || !Permissions.RoleHas(Membership.Role, permission)) return false;
        var module = Permissions.Get(permission).Module;
        return module is null || Suite?.Modules.Any(m => m.Module.Id == module && m.Enabled) == true;
    }

    public IEnumerable<NavEntry> VisibleEntries => NavCatalog.Entries.Where(e => Allows(e.Permission));

    public string PathFor(string relative) => ProjectId is { } id ? (relative.Length == 0 ? $"p/{id}" : $"p/{id}/{relative}") : "";
}
