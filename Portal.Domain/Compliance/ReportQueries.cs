using System.Data.Common;
using System.Globalization;
using System.Text;
using Microsoft.Data.Sqlite;
using Npgsql;
using Portal.Domain.Persistence;

namespace Portal.Domain.Compliance;

/// <summary>
/// Aggregations over one project's audit trail for a report period, done in the database (GROUP BY over the
/// (project_id, occurred_at) and (project_id, event_type, occurred_at) indexes) so memory does not grow with the
/// number of events. Every query is bounded by the project, the period and the chain seq recorded when the report was
/// requested, so a report's figures never change afterwards. Provider differences (ticks vs timestamptz, JSON and
/// date functions) are confined to the expressions below.
/// </summary>
internal sealed class ReportQueries : IAsyncDisposable
{
    public const string ExecutedEvent = Gateway.GatewayService.ExecutedEvent;
    public const string DeniedEvent = Gateway.GatewayService.DeniedEvent;
    public const string KeyRejectedEvent = Gateway.GatewayService.KeyRejectedEvent;

    private readonly PortalDatabase db;
    private readonly DbConnection connection;
    private readonly Guid projectId;
    private readonly DateTimeOffset from, to;
    private readonly long maxSeq;
    private readonly string extraScope;
    private readonly List<(string Name, object Value)> extraParameters;
    private DbTransaction? transaction;

    public bool Sqlite => db.Provider == DatabaseProvider.Sqlite;

    private ReportQueries(PortalDatabase db, DbConnection connection, Guid projectId, DateTimeOffset from, DateTimeOffset to, long maxSeq,
        string extraScope, List<(string, object)> extraParameters)
    {
        this.db = db;
        this.connection = connection;
        this.projectId = projectId;
        this.from = from;
        this.to = to;
        this.maxSeq = maxSeq;
        this.extraScope = extraScope;
        this.extraParameters = extraParameters;
    }

    /// <param name="filter">Custom reports narrow every query by event types, classifications and actors.</param>
    public static async Task<ReportQueries> OpenAsync(PortalDatabase db, Guid projectId, DateTimeOffset from, DateTimeOffset to, long maxSeq,
        ReportParameters? filter, CancellationToken ct)
    {
        DbConnection c = db.Provider == DatabaseProvider.Sqlite ? new SqliteConnection(db.ConnectionString) : new NpgsqlConnection(db.ConnectionString);
        await c.OpenAsync(ct);
        var (scope, ps) = CustomScopeFor(filter);
        return new ReportQueries(db, c, projectId, from, to, maxSeq, scope, ps);
    }

    /// <summary>
    /// Another connection over the same report scope, so independent queries can run at the same time (on SQLite the
    /// ADO.NET "async" calls run synchronously on the caller's thread, so only separate connections on separate
    /// threads overlap).
    /// </summary>
    public async Task<ReportQueries> OpenSiblingAsync(CancellationToken ct)
    {
        DbConnection c = Sqlite ? new SqliteConnection(db.ConnectionString) : new NpgsqlConnection(db.ConnectionString);
        await c.OpenAsync(ct);
        return new ReportQueries(db, c, projectId, from, to, maxSeq, extraScope, extraParameters);
    }

    /// <summary>
    /// PostgreSQL cannot estimate how few groups a report's GROUP BY yields (it guesses about one per row), so it plans
    /// a sort of every event of the period, spilled to disk, where a hash table of a few thousand groups would do at
    /// half the CPU. This connection's queries are planned without sorts, in a transaction so the setting cannot
    /// outlive the report on a pooled connection. A hash aggregate that outgrows work_mem spills to disk in batches.
    /// </summary>
    public async Task PreferHashAggregationAsync(CancellationToken ct)
    {
        if (Sqlite || transaction is not null) return;
        transaction = await connection.BeginTransactionAsync(ct);
        await using var cmd = connection.CreateCommand();
        cmd.Transaction = transaction;
        cmd.CommandText = "SET LOCAL enable_sort = off";
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>
    /// The number of the project's events in [from, to) up to chain position <paramref name="maxSeq"/>. Counted as all
    /// events in the period (read from the (project_id, occurred_at) index alone) minus those above maxSeq (read
    /// through the primary key, normally none), because filtering on seq directly makes the database visit every row.
    /// </summary>
    public static async Task<long> CountAsync(PortalDatabase db, Guid projectId, DateTimeOffset from, DateTimeOffset to, long maxSeq, CancellationToken ct)
    {
        await using var q = await OpenAsync(db, projectId, from, to, maxSeq, null, ct);
        // SQLite: the unary + keeps the planner off the occurred_at index for the second count, whose seq range is tiny.
        var t = q.Sqlite ? "+occurred_at" : "occurred_at";
        long count = 0;
        await q.RawAsync("SELECT (SELECT count(*) FROM audit_events WHERE project_id = @p AND occurred_at >= @from AND occurred_at < @to) - " +
            $"(SELECT count(*) FROM audit_events WHERE project_id = @p AND seq > @maxseq AND {t} >= @from AND {t} < @to)",
            r => count = Long(r, 0), ct, ("@from", from), ("@to", to), ("@maxseq", maxSeq));
        return count;
    }

    /// <summary>The custom report's filters as SQL over audit_events (parameters are bound, never spliced).</summary>
    internal static (string, List<(string, object)>) CustomScopeFor(ReportParameters? f)
    {
        var sql = new StringBuilder();
        var ps = new List<(string, object)>();
        if (f is null || f.Type != ReportTypes.Custom) return ("", ps);
        if (f.EventTypes is { Count: > 0 } types)
        {
            sql.Append(" AND (");
            for (var i = 0; i < types.Count; i++)
            {
                if (i > 0) sql.Append(" OR ");
                if (types[i].EndsWith('.')) { sql.Append($"event_type LIKE @et{i} ESCAPE '\\'"); ps.Add(($"@et{i}", Like(types[i], prefixOnly: true))); }
                else { sql.Append($"event_type = @et{i}"); ps.Add(($"@et{i}", types[i])); }
            }
            sql.Append(')');
        }
        if (f.Classifications is { Count: > 0 } labels)
        {
            sql.Append(" AND (");
            for (var i = 0; i < labels.Count; i++)
            {
                if (i > 0) sql.Append(" OR ");
                sql.Append($"data_classifications LIKE @cl{i} ESCAPE '\\'");
                ps.Add(($"@cl{i}", "%\"" + Escape(labels[i]) + "\"%"));
            }
            sql.Append(')');
        }
        if (f.Users is { Count: > 0 } users)
        {
            sql.Append(" AND (");
            for (var i = 0; i < users.Count; i++)
            {
                if (i > 0) sql.Append(" OR ");
                sql.Append($"actor_id = @us{i} OR actor_email = @us{i}");
                ps.Add(($"@us{i}", users[i]));
            }
            sql.Append(')');
        }
        return (sql.ToString(), ps);
    }

    public static string Escape(string s) => s.Replace("\\", "\\\\").Replace("%", "\\%").Replace("_", "\\_");
    public static string Like(string s, bool prefixOnly = false) => prefixOnly ? Escape(s) + "%" : "%" + Escape(s) + "%";

    /// <summary>A case-insensitive LIKE on both providers.</summary>
    public string ILike => Sqlite ? "LIKE" : "ILIKE";

    /// <summary>Days since 0001-01-01 (SQLite ticks) or since 1970-01-01 (PostgreSQL), turned into a date by <see cref="Day"/>.</summary>
    public string DayExpr => Sqlite ? "(occurred_at / 864000000000)" : "(floor(extract(epoch from occurred_at) / 86400))::bigint";
    public string HourExpr => Sqlite ? "((occurred_at / 36000000000) % 24)" : "(extract(hour from occurred_at at time zone 'UTC'))::bigint";
    /// <summary>0 = Monday ... 6 = Sunday.</summary>
    public string WeekdayExpr => Sqlite ? "((occurred_at / 864000000000) % 7)" : "((extract(isodow from occurred_at at time zone 'UTC'))::bigint - 1)";
    /// <summary>The "outcome" of a gateway event's details JSON, without failing on text that is not JSON.</summary>
    public string OutcomeExpr => Sqlite
        ? "(CASE WHEN json_valid(details) THEN json_extract(details, '$.outcome') END)"
        : "substring(details from '\"outcome\":\\s*\"([^\"]*)\"')";
    public string SuccessTrue => Sqlite ? "success <> 0" : "success";

    public DateOnly Day(long value) => Sqlite
        ? DateOnly.FromDateTime(new DateTime(value * TimeSpan.TicksPerDay, DateTimeKind.Utc))
        : DateOnly.FromDateTime(DateTime.UnixEpoch.AddDays(value));

    public DateTimeOffset Time(object value) => value switch
    {
        long ticks => new DateTimeOffset(ticks, TimeSpan.Zero),
        DateTime dt => new DateTimeOffset(DateTime.SpecifyKind(dt, DateTimeKind.Utc)),
        DateTimeOffset dto => dto,
        _ => throw new InvalidCastException($"Unexpected time value {value.GetType()}"),
    };

    private object Id(Guid id) => Sqlite ? id.ToString().ToUpperInvariant() : id;
    private object TimeParam(DateTimeOffset t) => Sqlite ? t.UtcTicks : t.ToUniversalTime();

    /// <summary>
    /// Runs <paramref name="select"/> over the report's events: "SELECT {select} FROM audit_events WHERE {scope} AND
    /// {where} {tail}". Rows are handed to <paramref name="row"/> one at a time.
    /// </summary>
    public async Task QueryAsync(string select, string? where, string? tail, Action<DbDataReader> row, CancellationToken ct,
        params (string Name, object Value)[] parameters)
    {
        await using var cmd = connection.CreateCommand();
        cmd.Transaction = transaction;
        cmd.CommandTimeout = 0;
        cmd.CommandText = $"SELECT {select} FROM audit_events WHERE project_id = @p AND occurred_at >= @from AND occurred_at < @to AND seq <= @maxseq{extraScope}"
            + (where is null ? "" : $" AND ({where})") + (tail is null ? "" : " " + tail);
        Add(cmd, "@p", Id(projectId));
        Add(cmd, "@from", TimeParam(from));
        Add(cmd, "@to", TimeParam(to));
        Add(cmd, "@maxseq", maxSeq);
        foreach (var (n, v) in extraParameters) Add(cmd, n, v);
        foreach (var (n, v) in parameters) Add(cmd, n, v);
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct)) row(r);
    }

    /// <summary>Any SQL on the report's connection (other tables), with the project id bound as @p.</summary>
    public async Task RawAsync(string sql, Action<DbDataReader> row, CancellationToken ct, params (string Name, object Value)[] parameters)
    {
        await using var cmd = connection.CreateCommand();
        cmd.Transaction = transaction;
        cmd.CommandText = sql;
        Add(cmd, "@p", Id(projectId));
        foreach (var (n, v) in parameters) Add(cmd, n, v is DateTimeOffset t ? TimeParam(t) : v is Guid g ? Id(g) : v);
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct)) row(r);
    }

    public static string? Str(DbDataReader r, int i) => r.IsDBNull(i) ? null : Convert.ToString(r.GetValue(i), CultureInfo.InvariantCulture);
    public static long Long(DbDataReader r, int i) => r.IsDBNull(i) ? 0 : Convert.ToInt64(r.GetValue(i), CultureInfo.InvariantCulture);

    private static void Add(DbCommand cmd, string name, object value)
    {
        var p = cmd.CreateParameter();
        p.ParameterName = name;
        p.Value = value;
        cmd.Parameters.Add(p);
    }

    public async ValueTask DisposeAsync()
    {
        if (transaction is not null) await transaction.DisposeAsync();
        await connection.DisposeAsync();
    }
}
