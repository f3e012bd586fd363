using System.Data.Common;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Portal.Domain.Persistence;

public sealed record MigrationScript(string Version, string Name, string ResourcePath, string Sql)
{
    public string Checksum { get; } = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Sql.ReplaceLineEndings("\n"))));
}

public sealed record MigrationResult(IReadOnlyList<string> Applied, IReadOnlyList<string> AlreadyApplied);

/// <summary>Applying the scripts in Database/ would be unsafe: an applied script changed, or the database is newer than this build.</summary>
public sealed class MigrationException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Applies Database/{sqlite|postgres}/NNNN_name.sql in order, each in its own transaction, recording a checksum
/// in schema_migrations. Written by hand: DbUp, FluentMigrator and EF design-time tooling are not on our feed.
/// </summary>
public sealed class MigrationRunner(DatabaseProvider provider, string connectionString, ILogger? logger = null)
{
    private const long PostgresLockKey = 0x5047_4F56_4D49_4752; // "PGOVMIGR": one runner at a time across portal and workers

    public static IReadOnlyList<MigrationScript> LoadScripts(DatabaseProvider provider)
    {
        var folder = provider == DatabaseProvider.Sqlite ? "sqlite" : "postgres";
        var prefix = $"Database/{folder}/";
        var asm = typeof(MigrationRunner).Assembly;
        var scripts = new List<MigrationScript>();
        foreach (var resource in asm.GetManifestResourceNames().Where(n => n.StartsWith(prefix, StringComparison.Ordinal) && n.EndsWith(".sql", StringComparison.Ordinal)))
        {
            var file = resource[prefix.Length..^4];
            var underscore = file.IndexOf('_');
            if (underscore <= 0 || !file[..underscore].All(char.IsAsciiDigit))
                throw new MigrationException($"Database script {resource} must be named NNNN_name.sql.");
            using var stream = asm.GetManifestResourceStream(resource)!;
            using var reader = new StreamReader(stream, Encoding.UTF8);
            scripts.Add(new MigrationScript(file[..underscore], file[(underscore + 1)..], resource, reader.ReadToEnd()));
        }
        var dup = scripts.GroupBy(s => s.Version).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null) throw new MigrationException($"Two database scripts share version {dup.Key}: {string.Join(", ", dup.Select(s => s.ResourcePath))}.");
        return scripts.OrderBy(s => s.Version, StringComparer.Ordinal).ToList();
    }

    public DbConnection Open()
    {
        DbConnection c = provider == DatabaseProvider.Sqlite ? new SqliteConnection(connectionString) : new NpgsqlConnection(connectionString);
        c.Open();
        return c;
    }

    public async Task<MigrationResult> RunAsync(CancellationToken ct = default) => await RunAsync(LoadScripts(provider), ct);

    public async Task<MigrationResult> RunAsync(IReadOnlyList<MigrationScript> scripts, CancellationToken ct = default)
    {
        await using var conn = Open();
        if (provider == DatabaseProvider.Sqlite)
        {
            // WAL lets readers continue while the audit writer commits; the setting persists in the file.
            await ExecAsync(conn, null, "PRAGMA journal_mode=WAL;", ct);
        }
        else
        {
            await ExecAsync(conn, null, $"SELECT pg_advisory_lock({PostgresLockKey});", ct);
        }
        try
        {
            await ExecAsync(conn, null, """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version varchar(16) NOT NULL PRIMARY KEY,
                    name varchar(200) NOT NULL,
                    checksum varchar(64) NOT NULL,
                    applied_at varchar(40) NOT NULL
                );
                """, ct);

            var applied = await ReadAppliedAsync(conn, ct);
            Verify(scripts, applied);

            var done = new List<string>();
            var already = new List<string>();
            foreach (var script in scripts)
            {
                if (applied.ContainsKey(script.Version)) { already.Add(script.ResourcePath); continue; }
                await using var tx = await conn.BeginTransactionAsync(ct);
                try
                {
                    // Another runner (a second portal or the worker) may have applied it since we read the list. PostgreSQL
                    // runners are serialized by the advisory lock; SQLite ones by the write lock this transaction takes.
                    if (await IsAppliedAsync(conn, tx, script.Version, ct))
                    {
                        await tx.RollbackAsync(ct);
                        already.Add(script.ResourcePath);
                        continue;
                    }
                    await ExecAsync(conn, tx, script.Sql, ct);
                    await using var insert = conn.CreateCommand();
                    insert.Transaction = tx;
                    insert.CommandText = "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (@v, @n, @c, @a)";
                    AddParam(insert, "@v", script.Version);
                    AddParam(insert, "@n", script.Name);
                    AddParam(insert, "@c", script.Checksum);
                    AddParam(insert, "@a", DateTimeOffset.UtcNow.ToString("O"));
                    await insert.ExecuteNonQueryAsync(ct);
                    await tx.CommitAsync(ct);
                }
                catch (Exception e) when (e is DbException)
                {
                    await tx.RollbackAsync(CancellationToken.None);
                    throw new MigrationException($"Database script {script.ResourcePath} failed and was rolled back: {e.Message}", e);
                }
                done.Add(script.ResourcePath);
                logger?.LogInformation("Applied database script {Script}", script.ResourcePath);
            }
            if (done.Count == 0) logger?.LogInformation("Database schema is up to date ({Count} scripts applied earlier)", already.Count);
            return new MigrationResult(done, already);
        }
        finally
        {
            if (provider == DatabaseProvider.Postgres)
                await ExecAsync(conn, null, $"SELECT pg_advisory_unlock({PostgresLockKey});", CancellationToken.None);
        }
    }

    /// <summary>Scripts not yet applied; throws when an applied script was edited. Used by the readiness check.</summary>
    public async Task<IReadOnlyList<string>> PendingAsync(CancellationToken ct = default)
    {
        var scripts = LoadScripts(provider);
        await using var conn = Open();
        await using var probe = conn.CreateCommand();
        probe.CommandText = provider == DatabaseProvider.Sqlite
            ? "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='schema_migrations'"
            : "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name='schema_migrations'";
        if (Convert.ToInt64(await probe.ExecuteScalarAsync(ct)) == 0) return scripts.Select(s => s.ResourcePath).ToList();
        var applied = await ReadAppliedAsync(conn, ct);
        Verify(scripts, applied);
        return scripts.Where(s => !applied.ContainsKey(s.Version)).Select(s => s.ResourcePath).ToList();
    }

    private static void Verify(IReadOnlyList<MigrationScript> scripts, Dictionary<string, string> applied)
    {
        foreach (var script in scripts)
        {
            if (applied.TryGetValue(script.Version, out var checksum) && checksum != script.Checksum)
                throw new MigrationException(
                    $"Database script {script.ResourcePath} was edited after it was applied (checksum {checksum[..12]}… in schema_migrations, {script.Checksum[..12]}… now). " +
                    "Restore the original script and put the change in a new script.");
        }
        var known = scripts.Select(s => s.Version).ToHashSet();
        var unknown = applied.Keys.Where(v => !known.Contains(v)).OrderBy(v => v, StringComparer.Ordinal).ToList();
        if (unknown.Count > 0)
            throw new MigrationException($"The database has scripts this build does not know ({string.Join(", ", unknown)}); it was upgraded by a newer version of the portal.");
    }

    private static async Task<bool> IsAppliedAsync(DbConnection conn, DbTransaction tx, string version, CancellationToken ct)
    {
        await using var cmd = conn.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "SELECT count(*) FROM schema_migrations WHERE version = @v";
        AddParam(cmd, "@v", version);
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(ct)) > 0;
    }

    private static async Task<Dictionary<string, string>> ReadAppliedAsync(DbConnection conn, CancellationToken ct)
    {
        var applied = new Dictionary<string, string>();
        await using var cmd = conn.CreateCommand();
        cmd.CommandText = "SELECT version, checksum FROM schema_migrations";
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct)) applied[r.GetString(0)] = r.GetString(1);
        return applied;
    }

    private static async Task ExecAsync(DbConnection conn, DbTransaction? tx, string sql, CancellationToken ct)
    {
        await using var cmd = conn.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        cmd.CommandTimeout = 600;
        await cmd.ExecuteNonQueryAsync(ct);
    }

    private static void AddParam(DbCommand cmd, string name, object value)
    {
        var p = cmd.CreateParameter();
        p.ParameterName = name;
        p.Value = value;
        cmd.Parameters.Add(p);
    }
}
