using System.Data.Common;
using System.Diagnostics;
using System.Globalization;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using Portal.Domain.Persistence;
using Portal.Domain.Security;

namespace Portal.Domain.Gateway.Catalog;

/// <summary>What a user enters for a datasource. On update a null password keeps the stored one; "" removes it.</summary>
public sealed record DatasourceRequest(
    string? Name, string? Engine, string? SqlitePath = null, string? Host = null, int? Port = null,
    string? Database = null, string? Username = null, string? Password = null);

/// <summary>A datasource as lists and forms show it: never its password, only whether one is stored.</summary>
public sealed record DatasourceRow(
    Guid Id, string Name, string Engine, string? SqlitePath, string? Host, int? Port, string? Database, string? Username,
    bool HasPassword, Guid CreatedBy, DateTimeOffset CreatedAt, Guid UpdatedBy, DateTimeOffset UpdatedAt);

/// <summary>The outcome of "Test connection": <see cref="Message"/> quotes the engine, never the password.</summary>
public sealed record ConnectionTestResult(bool Ok, string Message, TimeSpan Duration);

/// <summary>
/// Datasources of a project. Every method is scoped by project id (another project's datasource answers NotFound);
/// passwords are encrypted with <see cref="SecretProtector"/> under a purpose bound to the datasource id, so a
/// ciphertext copied to another row does not decrypt.
/// </summary>
public sealed class DatasourceService(
    IDbContextFactory<PortalDbContext> dbFactory, SecretProtector secrets, DatabaseOptions options, PortalDatabase portalDatabase, TimeProvider clock,
    GatewayLookupCache? lookups = null)
{
    public const string DatasourcesFolder = "datasources";
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(10);

    public static string PasswordPurpose(Guid datasourceId) => $"datasource:{datasourceId:N}:password";

    public async Task<DatasourceRow> CreateAsync(Guid projectId, DatasourceRequest request, Guid actor, CancellationToken ct = default)
    {
        var now = clock.GetUtcNow();
        var ds = new Datasource { ProjectId = projectId, Name = "", Engine = "", CreatedBy = actor, CreatedAt = now, UpdatedBy = actor, UpdatedAt = now };
        Apply(ds, request, isNew: true);
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        if (!await db.Projects.AnyAsync(p => p.Id == projectId, ct)) throw DomainException.NotFound("Project");
        await RequireUniqueNameAsync(db, projectId, ds.Name, null, ct);
        db.Add(ds);
        await SaveAsync(db, ct);
        lookups?.Invalidate(projectId);
        return ToRow(ds);
    }

    public async Task<DatasourceRow> UpdateAsync(Guid projectId, Guid datasourceId, DatasourceRequest request, Guid actor, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var ds = await FindAsync(db, projectId, datasourceId, ct);
        var oldPath = ds.SqlitePath;
        Apply(ds, request, isNew: false);
        await RequireUniqueNameAsync(db, projectId, ds.Name, ds.Id, ct);
        ds.UpdatedBy = actor;
        ds.UpdatedAt = clock.GetUtcNow();
        await SaveAsync(db, ct);
        lookups?.Invalidate(projectId);
        if (oldPath is not null && oldPath != ds.SqlitePath) SqliteEngine.ReleaseSessions(oldPath);
        return ToRow(ds);
    }

    /// <summary>Refused while approved queries (archived ones too: the audit trail names them) use the datasource.</summary>
    public async Task DeleteAsync(Guid projectId, Guid datasourceId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var ds = await FindAsync(db, projectId, datasourceId, ct);
        var used = await db.Set<ApprovedQuery>().CountAsync(q => q.DatasourceId == ds.Id && q.ProjectId == projectId, ct);
        if (used > 0)
            throw DomainException.Conflict($"'{ds.Name}' is used by {used} approved quer{(used == 1 ? "y" : "ies")} (archived ones included, because the audit trail refers to them); it cannot be deleted.");
        db.Remove(ds);
        await db.SaveChangesAsync(ct);
        lookups?.Invalidate(projectId);
        // Open sessions would otherwise keep the file open for the life of the process.
        if (ds.SqlitePath is { } path) SqliteEngine.ReleaseSessions(path);
    }

    public async Task<DatasourceRow> GetAsync(Guid projectId, Guid datasourceId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        return ToRow(await FindAsync(db, projectId, datasourceId, ct, tracking: false));
    }

    public async Task<Page<DatasourceRow>> ListAsync(Guid projectId, int skip, int take, CancellationToken ct = default)
    {
        take = Math.Clamp(take, 1, 200);
        skip = Math.Max(0, skip);
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var q = db.Set<Datasource>().AsNoTracking().Where(d => d.ProjectId == projectId);
        var total = await q.CountAsync(ct);
        var items = await q.OrderBy(d => d.Name).ThenBy(d => d.Id).Skip(skip).Take(take).ToListAsync(ct);
        return new Page<DatasourceRow>(items.Select(ToRow).ToList(), total, skip, take);
    }

    /// <summary>The engine for the gateway pipeline, holding the decrypted password only inside its connection string.</summary>
    public Task<IDatasourceEngine> OpenEngineAsync(Guid projectId, Guid datasourceId, CancellationToken ct = default) =>
        lookups is null ? LoadEngineAsync(projectId, datasourceId, ct)
            : lookups.GetOrLoadAsync(projectId, $"engine:{datasourceId:N}", () => LoadEngineAsync(projectId, datasourceId, ct));

    private async Task<IDatasourceEngine> LoadEngineAsync(Guid projectId, Guid datasourceId, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        return EngineFor(await FindAsync(db, projectId, datasourceId, ct, tracking: false));
    }

    public async Task<ConnectionTestResult> TestConnectionAsync(Guid projectId, Guid datasourceId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var ds = await FindAsync(db, projectId, datasourceId, ct, tracking: false);
        return await ProbeAsync(ds, ct);
    }

    /// <summary>
    /// The datasource's tables and columns for the mask editor, or an empty list with the reason when the engine cannot
    /// list them now (the editor then takes free text, which the mask service validates).
    /// </summary>
    public async Task<(IReadOnlyList<SchemaColumn> Columns, string? Problem)> ListColumnsAsync(Guid projectId, Guid datasourceId, CancellationToken ct = default)
    {
        var engine = await OpenEngineAsync(projectId, datasourceId, ct);
        try { return (await engine.ListColumnsAsync(ct), null); }
        catch (Exception e) when (e is DatasourceException or DbException or InvalidOperationException or TimeoutException)
        {
            return ([], $"The datasource's columns could not be listed ({e.Message}); type the table and column names.");
        }
    }

    /// <summary>Tests settings before they are saved (the form's "Test connection"); the password is not stored.</summary>
    public Task<ConnectionTestResult> TestSettingsAsync(Guid projectId, DatasourceRequest request, CancellationToken ct = default)
    {
        var ds = new Datasource { ProjectId = projectId, Name = "", Engine = "" };
        Apply(ds, request with { Name = string.IsNullOrWhiteSpace(request.Name) ? "test" : request.Name }, isNew: true);
        return ProbeAsync(ds, ct);
    }

    /// <summary>
    /// Re-encrypts every stored datasource password (all projects) under the active key, after a key was added in
    /// front of Security:EncryptionKeys. Returns how many were re-encrypted. A row whose password changed meanwhile
    /// is left alone: it was just written under the active key anyway.
    /// </summary>
    public async Task<int> RotateSecretsAsync(CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var rows = await db.Set<Datasource>().AsNoTracking().Where(d => d.PasswordProtected != null)
            .Select(d => new { d.Id, d.PasswordProtected }).ToListAsync(ct);
        var rotated = 0;
        foreach (var row in rows.Where(r => secrets.NeedsRotation(r.PasswordProtected!)))
        {
            var fresh = secrets.Rotate(row.PasswordProtected!, PasswordPurpose(row.Id));
            rotated += await db.Set<Datasource>().Where(d => d.Id == row.Id && d.PasswordProtected == row.PasswordProtected)
                .ExecuteUpdateAsync(s => s.SetProperty(d => d.PasswordProtected, fresh), ct);
        }
        if (rotated > 0) lookups?.InvalidateAll();
        return rotated;
    }

    internal static async Task<Datasource> FindAsync(PortalDbContext db, Guid projectId, Guid datasourceId, CancellationToken ct, bool tracking = true)
    {
        var q = db.Set<Datasource>().Where(d => d.Id == datasourceId && d.ProjectId == projectId);
        if (!tracking) q = q.AsNoTracking();
        return await q.FirstOrDefaultAsync(ct) ?? throw DomainException.NotFound("Datasource");
    }

    internal IDatasourceEngine EngineFor(Datasource ds) => ds.Engine switch
    {
        DatasourceEngines.Sqlite => new SqliteEngine(ds.SqlitePath!),
        DatasourceEngines.Postgres => new PostgresEngine(PostgresConnectionString(ds, ds.PasswordProtected is null ? null : secrets.Unprotect(ds.PasswordProtected, PasswordPurpose(ds.Id)))),
        _ => throw new InvalidOperationException($"Unknown datasource engine '{ds.Engine}'."),
    };

    private static string PostgresConnectionString(Datasource ds, string? password) => new NpgsqlConnectionStringBuilder
    {
        Host = ds.Host,
        Port = ds.Port ?? 5432,
        Database = ds.DatabaseName,
        Username = ds.Username,
        Password = password,
        Timeout = (int)ProbeTimeout.TotalSeconds,
        ApplicationName = "governance-portal gateway",
    }.ToString();

    private async Task<ConnectionTestResult> ProbeAsync(Datasource ds, CancellationToken ct)
    {
        var watch = Stopwatch.StartNew();
        string? password = null;
        try
        {
            password = ds.PasswordProtected is null ? null : secrets.Unprotect(ds.PasswordProtected, PasswordPurpose(ds.Id));
            var engine = EngineFor(ds);
            if (ds.Engine == DatasourceEngines.Sqlite)
            {
                var result = await engine.ExecuteAsync("SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'view')", [], 1, ProbeTimeout, ct);
                return new(true, $"Connected to the SQLite file (read-only): {Convert.ToString(result.Rows[0][0], CultureInfo.InvariantCulture)} tables and views.", watch.Elapsed);
            }
            var pg = await engine.ExecuteAsync("SELECT version()", [], 1, ProbeTimeout, ct);
            return new(true, $"Connected (read-only transaction): {pg.Rows[0][0]}", watch.Elapsed);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { throw; }
        catch (Exception e) when (e is DatasourceException or DbException or IOException or System.Security.Cryptography.CryptographicException or TimeoutException or InvalidOperationException or ArgumentException)
        {
            return new(false, "Connection failed: " + Scrub(EngineText(e), password), watch.Elapsed);
        }
    }

    private static string EngineText(Exception e) => e switch
    {
        PostgresException pg => $"PostgreSQL: {pg.MessageText}",
        NpgsqlException { InnerException: { } inner } npg when inner is not PostgresException => $"{npg.Message} ({inner.Message})",
        SqliteException sq => $"SQLite: {sq.Message}",
        _ => e.Message,
    };

    // Engines do not echo passwords, but a connection string in an exception message would; never show it.
    private static string Scrub(string text, string? password) =>
        string.IsNullOrEmpty(password) ? text : text.Replace(password, "********", StringComparison.Ordinal);

    private void Apply(Datasource ds, DatasourceRequest r, bool isNew)
    {
        var name = r.Name?.Trim();
        if (string.IsNullOrEmpty(name)) throw DomainException.Invalid("name", "Name is required.");
        if (name.Length > 200) throw DomainException.Invalid("name", "Name is limited to 200 characters.");
        var engine = r.Engine?.Trim().ToLowerInvariant();
        if (engine is null || !DatasourceEngines.All.Contains(engine))
            throw DomainException.Invalid("engine", "Engine must be sqlite or postgres.");
        if (!isNew && engine != ds.Engine) throw DomainException.Invalid("engine", "The engine of a datasource cannot change; create a new datasource instead.");
        ds.Name = name;
        ds.Engine = engine;
        if (engine == DatasourceEngines.Sqlite)
        {
            ds.SqlitePath = CheckSqlitePath(r.SqlitePath);
            ds.Host = null; ds.Port = null; ds.DatabaseName = null; ds.Username = null; ds.PasswordProtected = null;
            if (!string.IsNullOrEmpty(r.Password)) throw DomainException.Invalid("password", "A SQLite datasource has no password.");
            return;
        }
        ds.SqlitePath = null;
        ds.Host = Required(r.Host, "host", "Host", 255);
        if (r.Port is { } port && (port < 1 || port > 65535)) throw DomainException.Invalid("port", "Port must be between 1 and 65535.");
        ds.Port = r.Port ?? 5432;
        ds.DatabaseName = Required(r.Database, "database", "Database", 200);
        ds.Username = Required(r.Username, "username", "Username", 200);
        if (r.Password is { Length: > 500 }) throw DomainException.Invalid("password", "Password is limited to 500 characters.");
        if (r.Password == "") ds.PasswordProtected = null;
        else if (r.Password is not null) ds.PasswordProtected = secrets.Protect(r.Password, PasswordPurpose(ds.Id));
    }

    private static string Required(string? value, string field, string label, int max)
    {
        var v = value?.Trim();
        if (string.IsNullOrEmpty(v)) throw DomainException.Invalid(field, $"{label} is required for a PostgreSQL datasource.");
        if (v.Length > max) throw DomainException.Invalid(field, $"{label} is limited to {max} characters.");
        return v;
    }

    /// <summary>
    /// A project admin must not be able to point a datasource at the portal's own files (its database, encryption
    /// keys, key ring) and read other projects' data through the gateway; only the data directory's
    /// "datasources" folder is allowed inside it.
    /// </summary>
    private string CheckSqlitePath(string? raw)
    {
        var path = raw?.Trim();
        if (string.IsNullOrEmpty(path)) throw DomainException.Invalid("sqlitePath", "The SQLite file path is required.");
        if (path.Length > 1000) throw DomainException.Invalid("sqlitePath", "The path is limited to 1000 characters.");
        if (!Path.IsPathFullyQualified(path)) throw DomainException.Invalid("sqlitePath", "Enter the full path of the SQLite file (for example /srv/data/sales.db).");
        var full = Path.GetFullPath(path);
        var dataDir = Path.GetFullPath(options.DataDirectory);
        var allowed = Path.Combine(dataDir, DatasourcesFolder);
        if (IsUnder(full, dataDir) && !IsUnder(full, allowed))
            throw DomainException.Invalid("sqlitePath", $"Files in the portal's data directory are off limits; put governed SQLite files in {allowed} or elsewhere.");
        if (portalDatabase.Provider == DatabaseProvider.Sqlite
            && new SqliteConnectionStringBuilder(portalDatabase.ConnectionString).DataSource is { Length: > 0 } own
            && string.Equals(Path.GetFullPath(own), full, StringComparison.Ordinal))
            throw DomainException.Invalid("sqlitePath", "The portal's own database cannot be a datasource.");
        return full;
    }

    private static bool IsUnder(string path, string dir) =>
        path.StartsWith(dir.EndsWith(Path.DirectorySeparatorChar) ? dir : dir + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    private static async Task RequireUniqueNameAsync(PortalDbContext db, Guid projectId, string name, Guid? self, CancellationToken ct)
    {
        if (await db.Set<Datasource>().AnyAsync(d => d.ProjectId == projectId && d.Name == name && d.Id != self, ct))
            throw DomainException.Conflict($"A datasource named '{name}' already exists in this project.", "name");
    }

    private static async Task SaveAsync(PortalDbContext db, CancellationToken ct)
    {
        try { await db.SaveChangesAsync(ct); }
        catch (DbUpdateException) { throw DomainException.Conflict("A datasource with this name was added at the same time; choose another name.", "name"); }
    }

    private static DatasourceRow ToRow(Datasource d) => new(d.Id, d.Name, d.Engine, d.SqlitePath, d.Host, d.Port, d.DatabaseName, d.Username,
        d.PasswordProtected is not null, d.CreatedBy, d.CreatedAt, d.UpdatedBy, d.UpdatedAt);
}
