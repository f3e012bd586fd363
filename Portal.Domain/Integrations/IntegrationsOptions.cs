using System.Data.Common;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using Portal.Domain.Persistence;

namespace Portal.Domain.Integrations;

/// <summary>Settings of outbound integrations ("Integrations" section).</summary>
public sealed class IntegrationsOptions
{
    public const string Section = "Integrations";
    public const string HttpClientName = "integrations";

    /// <summary>How long one HTTP call or syslog batch may take before it counts as failed (retryable).</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);
    /// <summary>How long a worker owns claimed deliveries or an export; after a crash another worker takes over then.</summary>
    public TimeSpan Lease { get; set; } = TimeSpan.FromMinutes(2);
    /// <summary>Delays before the 2nd, 3rd, … attempt of a webhook; after the last one the delivery fails (dead letter).</summary>
    public TimeSpan[] RetrySchedule { get; set; } =
        [TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(2), TimeSpan.FromMinutes(10), TimeSpan.FromHours(1), TimeSpan.FromHours(6), TimeSpan.FromHours(24)];
    /// <summary>Jitter as a fraction of the delay (0.2 = ±20%), so endpoints recovering together are not hit at once.</summary>
    public double Jitter { get; set; } = 0.2;
    /// <summary>Links in Slack/Teams messages point here.</summary>
    public string PortalBaseUrl { get; set; } = "http://localhost:5000";
    /// <summary>Concurrent HTTP calls of one dispatcher run.</summary>
    public int Parallelism { get; set; } = 16;
    /// <summary>The syslog HOSTNAME and HEC/Datadog host field.</summary>
    public string Hostname { get; set; } = Environment.MachineName;
    /// <summary>Syslog over TLS: accept any server certificate (tests and lab receivers only).</summary>
    public bool AllowUntrustedSyslogCertificates { get; set; }

    public TimeSpan Backoff(int failedAttempts, Random random)
    {
        var schedule = RetrySchedule;
        var baseDelay = schedule[Math.Clamp(failedAttempts - 1, 0, schedule.Length - 1)];
        var factor = 1 + (random.NextDouble() * 2 - 1) * Jitter;
        return TimeSpan.FromTicks((long)(baseDelay.Ticks * factor));
    }
}

/// <summary>Raw SQL parameters that match how EF stores values on each provider (SQLite: upper-case GUID text, UTC ticks).</summary>
internal static class SqlValues
{
    public static DbParameter P(PortalDbContext db, string name, object? value) =>
        db.IsSqlite ? new SqliteParameter(name, Sqlite(value)) : new NpgsqlParameter(name, value ?? DBNull.Value);

    /// <summary>A value as EF stores it in SQLite, for re-binding a prepared statement's parameters row by row.</summary>
    public static object Sqlite(object? value) => value switch
    {
        null => DBNull.Value,
        Guid g => g.ToString().ToUpperInvariant(),
        DateTimeOffset d => d.UtcTicks,
        bool b => b ? 1L : 0L,
        _ => value,
    };

    /// <summary>
    /// A SQLite command prepared once with parameters named <paramref name="names"/> (values NULL until set, through
    /// <see cref="Sqlite"/>), for statements re-bound per row inside the caller's transaction.
    /// </summary>
    public static DbCommand PreparedSqlite(PortalDbContext db, DbConnection conn, DbTransaction tx, string sql, string[] names, out DbParameter[] parameters)
    {
        var cmd = conn.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        parameters = new DbParameter[names.Length];
        for (var i = 0; i < names.Length; i++) cmd.Parameters.Add(parameters[i] = P(db, names[i], null));
        cmd.Prepare();
        return cmd;
    }
}
