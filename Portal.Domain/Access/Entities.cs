namespace Portal.Domain.Access;

public static class PrincipalTypes
{
    public const string Role = "role";
    public const string User = "user";
    public const string All = "all";
    public static readonly IReadOnlyList<string> Values = [Role, User, All];
}

/// <summary>
/// A grant on one approved query to a role, a user (member id) or everyone in the project. No grant means no
/// access: admins aside, a principal can do only what some matching grant allows.
/// </summary>
public sealed class QueryPermission
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    public Guid QueryId { get; set; }
    public required string PrincipalType { get; set; }
    /// <summary>Role name, user id (as text) or null for "all".</summary>
    public string? Principal { get; set; }
    public bool CanView { get; set; }
    public bool CanExecute { get; set; }
    public bool CanEdit { get; set; }
    public Guid UpdatedBy { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
}

/// <summary>How one base-table column of a datasource is shown to roles not listed in <see cref="VisibleToRolesJson"/>.</summary>
public sealed class ColumnMask
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    public Guid DatasourceId { get; set; }
    /// <summary>Lower-case table name without schema, as engines report column origins.</summary>
    public required string TableName { get; set; }
    public required string ColumnName { get; set; }
    /// <summary>redact, partial, hash, null or email_domain.</summary>
    public required string MaskType { get; set; }
    public int ShowFirst { get; set; }
    public int ShowLast { get; set; }
    public string VisibleToRolesJson { get; set; } = "[]";
    public string? Classification { get; set; }
    public Guid CreatedBy { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public Guid UpdatedBy { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
}

/// <summary>A project's own gateway settings; without a row the portal-wide defaults from configuration apply.</summary>
public sealed class GatewaySetting
{
    public Guid ProjectId { get; set; }
    /// <summary>block or flag (see <see cref="Gateway.InjectionScreeningMode"/>).</summary>
    public required string InjectionScreening { get; set; }
    public Guid UpdatedBy { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
}

public static class AccessSubjects
{
    public const string QueryPermission = "query_permission";
    public const string ColumnMask = "column_mask";
    public const string GatewaySettings = "gateway_settings";
}

/// <summary>Every change to a grant, a mask or the gateway settings, before/after as JSON, written with the change itself.</summary>
public sealed class AccessChange
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    public required string SubjectType { get; set; }
    public Guid SubjectId { get; set; }
    public required string Action { get; set; }
    public string? Before { get; set; }
    public string? After { get; set; }
    public Guid ChangedBy { get; set; }
    public DateTimeOffset ChangedAt { get; set; }
}
