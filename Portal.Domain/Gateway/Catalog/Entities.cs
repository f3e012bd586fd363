namespace Portal.Domain.Gateway.Catalog;

public static class DatasourceEngines
{
    public const string Sqlite = "sqlite";
    public const string Postgres = "postgres";
    public static readonly IReadOnlyList<string> All = [Sqlite, Postgres];
}

/// <summary>
/// A governed database of one project: a SQLite file or a PostgreSQL connection. The password is stored only as
/// <see cref="Security.SecretProtector"/> ciphertext bound to this datasource's id, and never leaves the Domain.
/// </summary>
public sealed class Datasource
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    public required string Name { get; set; }
    public required string Engine { get; set; }
    public string? SqlitePath { get; set; }
    public string? Host { get; set; }
    public int? Port { get; set; }
    public string? DatabaseName { get; set; }
    public string? Username { get; set; }
    public string? PasswordProtected { get; set; }
    public Guid CreatedBy { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public Guid UpdatedBy { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
}

public static class QueryStatuses
{
    public const string Active = "active";
    public const string Archived = "archived";
}

/// <summary>A reviewed, parameterized read-only query that callers may run by id; the SQL is never built from input.</summary>
public sealed class ApprovedQuery
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    public Guid DatasourceId { get; set; }
    public required string Name { get; set; }
    public string Description { get; set; } = "";
    public required string Sql { get; set; }
    /// <summary>JSON array of <see cref="QueryParameter"/> (see <see cref="CatalogJson"/>).</summary>
    public string ParametersJson { get; set; } = "[]";
    /// <summary>JSON array of classification labels (pii, financial, internal, custom:&lt;label&gt;).</summary>
    public string ClassificationsJson { get; set; } = "[]";
    public int RowCap { get; set; }
    public int TimeoutMs { get; set; }
    public int Version { get; set; } = 1;
    public string Status { get; set; } = QueryStatuses.Active;
    public Guid CreatedBy { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public Guid UpdatedBy { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
}
