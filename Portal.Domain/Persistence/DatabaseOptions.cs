namespace Portal.Domain.Persistence;

public enum DatabaseProvider { Sqlite, Postgres }

/// <summary>Bound from the "Database" section of appsettings.json.</summary>
public sealed class DatabaseOptions
{
    public const string Section = "Database";

    /// <summary>"Sqlite" (embedded default) or "Postgres".</summary>
    public string Provider { get; set; } = "Sqlite";

    /// <summary>Optional for SQLite (defaults to a file in <see cref="DataDirectory"/>); required for PostgreSQL.</summary>
    public string? ConnectionString { get; set; }

    /// <summary>Folder for the embedded database, data-protection keys and archives.</summary>
    public string DataDirectory { get; set; } = "data";

    public DatabaseProvider ParsedProvider => Provider.Trim().ToLowerInvariant() switch
    {
        "sqlite" => DatabaseProvider.Sqlite,
        "postgres" or "postgresql" or "npgsql" => DatabaseProvider.Postgres,
        _ => throw new ConfigurationException($"Database:Provider '{Provider}' is not supported; use 'Sqlite' or 'Postgres'."),
    };

    public string ResolveConnectionString()
    {
        var provider = ParsedProvider;
        if (provider == DatabaseProvider.Postgres)
        {
            if (string.IsNullOrWhiteSpace(ConnectionString))
                throw new ConfigurationException("Database:ConnectionString is required when Database:Provider is 'Postgres'.");
            try { _ = new Npgsql.NpgsqlConnectionStringBuilder(ConnectionString); }
            catch (Exception e) when (e is ArgumentException or FormatException or KeyNotFoundException)
            {
                throw new ConfigurationException($"Database:ConnectionString is not a valid PostgreSQL connection string: {e.Message}");
            }
            return ConnectionString;
        }
        if (!string.IsNullOrWhiteSpace(ConnectionString))
        {
            try { _ = new Microsoft.Data.Sqlite.SqliteConnectionStringBuilder(ConnectionString); }
            catch (Exception e) when (e is ArgumentException or FormatException or KeyNotFoundException)
            {
                throw new ConfigurationException($"Database:ConnectionString is not a valid SQLite connection string: {e.Message}");
            }
            return ConnectionString;
        }
        Directory.CreateDirectory(DataDirectory);
        var file = Path.GetFullPath(Path.Combine(DataDirectory, "portal.db"));
        return new Microsoft.Data.Sqlite.SqliteConnectionStringBuilder
        {
            DataSource = file,
            Cache = Microsoft.Data.Sqlite.SqliteCacheMode.Default,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();
    }
}

/// <summary>A setting is wrong; startup stops with this one-line message naming the setting.</summary>
public sealed class ConfigurationException(string message, Exception? inner = null) : Exception(message, inner);
