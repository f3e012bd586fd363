using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Portal.Domain.Gateway;

/// <summary>
/// A governed SQLite file, opened read-only. Microsoft.Data.Sqlite has no API for the authorizer, statement
/// read-only flag, prepare tail, column origins or progress handler, so statements are prepared and stepped through
/// SQLitePCLRaw on the connection's native handle.
/// </summary>
public sealed class SqliteEngine(string path) : IDatasourceEngine
{
    // Authorizer action codes from sqlite3.h; everything not listed is denied while preparing.
    private const int SqliteRead = 20, SqliteSelect = 21, SqliteFunction = 31, SqliteRecursive = 33;
    private static readonly Dictionary<int, string> ActionNames = new()
    {
        [1] = "CREATE INDEX", [2] = "CREATE TABLE", [3] = "CREATE TEMP INDEX", [4] = "CREATE TEMP TABLE", [5] = "CREATE TEMP TRIGGER",
        [6] = "CREATE TEMP VIEW", [7] = "CREATE TRIGGER", [8] = "CREATE VIEW", [9] = "DELETE", [10] = "DROP INDEX", [11] = "DROP TABLE",
        [12] = "DROP TEMP INDEX", [13] = "DROP TEMP TABLE", [14] = "DROP TEMP TRIGGER", [15] = "DROP TEMP VIEW", [16] = "DROP TRIGGER",
        [17] = "DROP VIEW", [18] = "INSERT", [19] = "PRAGMA", [22] = "TRANSACTION", [23] = "UPDATE", [24] = "ATTACH", [25] = "DETACH",
        [26] = "ALTER TABLE", [27] = "REINDEX", [28] = "ANALYZE", [29] = "CREATE VTABLE", [30] = "DROP VTABLE", [32] = "SAVEPOINT",
    };

    // EXPLAIN QUERY PLAN lines that keep one row source per result column. Any other line (COMPOUND, UNION,
    // MERGE, RECURSIVE STEP, SETUP...) means a result column may mix several sources, so origins are not trusted.
    private static readonly string[] SingleSourcePlanPrefixes =
    [
        "SCAN ", "SEARCH ", "USE TEMP B-TREE", "CO-ROUTINE ", "MATERIALIZE ", "SCALAR SUBQUERY", "CORRELATED SCALAR SUBQUERY",
        "LIST SUBQUERY", "CORRELATED LIST SUBQUERY", "BLOOM FILTER", "MULTI-INDEX OR", "INDEX ", "RIGHT-JOIN", "SCAN CONSTANT ROW",
    ];

    private string ConnectionString => new SqliteConnectionStringBuilder
    {
        DataSource = path,
        Mode = SqliteOpenMode.ReadOnly,
        // This engine keeps its own sessions for execution (see SessionPool); the rare analysis and schema listing get a
        // fresh connection each, so no hook set on them can outlive the call.
        Pooling = false,
    }.ToString();

    /// <summary>Closes the idle sessions on a file (its datasource was deleted or moved); sessions in use close when returned.</summary>
    public static void ReleaseSessions(string path) => SessionPool.Release(path);

    public Task<StatementAnalysis> AnalyzeAsync(string sql, IReadOnlyList<QueryParameter> parameters, CancellationToken ct = default) =>
        Task.Run(() =>
        {
            using var conn = Open();
            var (stmt, analysis) = Prepare(conn.Handle!, sql);
            using (stmt) EngineChecks.MatchPlaceholders(analysis.Placeholders, parameters.Select(p => p.Name));
            return analysis;
        }, ct);

    public Task<QueryResult> ExecuteAsync(string sql, IReadOnlyList<TypedParameter> parameters, int rowCap, TimeSpan timeout, CancellationToken ct = default)
    {
        EngineChecks.CheckLimits(rowCap, timeout);
        if (ct.IsCancellationRequested) return Task.FromCanceled<QueryResult>(ct);
        // A UI caller (Blazor circuit) must not have its dispatcher held by a long query; the API has no context to hold,
        // and saves a thread-pool hop per call.
        if (SynchronizationContext.Current is not null) return Task.Run(() => Execute(sql, parameters, rowCap, timeout, ct), ct);
        try { return Task.FromResult(Execute(sql, parameters, rowCap, timeout, ct)); }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { return Task.FromCanceled<QueryResult>(ct); }
        catch (Exception e) { return Task.FromException<QueryResult>(e); }
    }

    private QueryResult Execute(string sql, IReadOnlyList<TypedParameter> parameters, int rowCap, TimeSpan timeout, CancellationToken ct)
    {
        var watch = Stopwatch.StartNew();
        var pool = SessionPool.For(path);
        var session = pool.Rent();
        while (true)
        {
            // A fresh session never answers "stale", so this runs at most twice.
            session ??= new Session(Open());
            var reusable = false;
            try
            {
                var result = session.Run(sql, parameters, rowCap, timeout, ct, watch);
                if (result is null) continue;
                reusable = true;
                return result;
            }
            catch (DatasourceException)
            {
                // Refusals and timeouts leave the session clean (hooks cleared, statement reset, transaction ended).
                reusable = true;
                throw;
            }
            finally
            {
                if (reusable) pool.Return(session);
                else { session.Dispose(); session = null; }
            }
        }
    }

    /// <summary>
    /// One open read-only connection with its prepared statements and their analyses. The analysis (authorizer reads,
    /// prepare checks, EXPLAIN QUERY PLAN, origin columns) depends on the SQL text and the database schema, never on
    /// parameter values, so it is kept with the statement for as long as the schema stays as this session first saw it.
    /// The schema cookie is read inside the read transaction the query then runs in; once it has moved, the whole
    /// session is dropped (its in-memory schema may be stale too) and a fresh connection prepares and analyses again.
    /// </summary>
    private sealed class Session : IDisposable
    {
        private const int MaxStatements = 64;
        private readonly SqliteConnection conn;
        private readonly sqlite3 db;
        private readonly sqlite3_stmt begin, cookie, end;
        private readonly Dictionary<string, Cached> statements = new(StringComparer.Ordinal);

        private long? schemaVersion;

        private sealed record Cached(sqlite3_stmt Stmt, StatementAnalysis Analysis, List<ResultColumn> Columns);

        public Session(SqliteConnection conn)
        {
            this.conn = conn;
            db = conn.Handle!;
            try
            {
                begin = Internal("BEGIN");
                cookie = Internal("PRAGMA schema_version");
                end = Internal("COMMIT");
            }
            catch
            {
                begin?.Dispose();
                cookie?.Dispose();
                conn.Dispose();
                throw;
            }
        }

        private sqlite3_stmt Internal(string sql)
        {
            if (raw.sqlite3_prepare_v2(db, sql, out var stmt) != raw.SQLITE_OK)
                throw new DatasourceException(DatasourceErrorKind.Failed, "SQLite: " + raw.sqlite3_errmsg(db).utf8_to_string());
            return stmt;
        }

        /// <summary>The result, or null when the schema changed since this session last ran (drop it and use a fresh one).</summary>
        public QueryResult? Run(string sql, IReadOnlyList<TypedParameter> parameters, int rowCap, TimeSpan timeout, CancellationToken ct, Stopwatch watch)
        {
            StepOnce(begin);
            try
            {
                var version = SchemaVersion();
                if (schemaVersion is { } seen && seen != version) return null;
                schemaVersion = version;
                if (!statements.TryGetValue(sql, out var cached))
                {
                    if (statements.Count >= MaxStatements) Clear();
                    var (stmt, analysis) = Prepare(db, sql);
                    var columns = new List<ResultColumn>();
                    for (var i = 0; i < raw.sqlite3_column_count(stmt); i++)
                        columns.Add(new(raw.sqlite3_column_name(stmt, i).utf8_to_string() ?? $"column{i + 1}",
                            raw.sqlite3_column_table_name(stmt, i).utf8_to_string(), raw.sqlite3_column_origin_name(stmt, i).utf8_to_string()));
                    cached = new Cached(stmt, analysis, columns);
                    statements[sql] = cached;
                }
                var result = Step(cached, parameters, rowCap, timeout, ct, watch);
                StepOnce(end);
                return result;
            }
            finally
            {
                // Any path that left the read transaction open (a refusal, a timeout) closes it here, so the session holds no snapshot while idle.
                if (raw.sqlite3_get_autocommit(db) == 0) raw.sqlite3_exec(db, "ROLLBACK");
            }
        }

        private long SchemaVersion()
        {
            try
            {
                if (raw.sqlite3_step(cookie) != raw.SQLITE_ROW)
                    throw new DatasourceException(DatasourceErrorKind.Failed, "SQLite: " + raw.sqlite3_errmsg(db).utf8_to_string());
                return raw.sqlite3_column_int64(cookie, 0);
            }
            finally { raw.sqlite3_reset(cookie); }
        }

        private void StepOnce(sqlite3_stmt stmt)
        {
            try
            {
                if (raw.sqlite3_step(stmt) != raw.SQLITE_DONE)
                    throw new DatasourceException(DatasourceErrorKind.Failed, "SQLite: " + raw.sqlite3_errmsg(db).utf8_to_string());
            }
            finally { raw.sqlite3_reset(stmt); }
        }

        private QueryResult Step(Cached cached, IReadOnlyList<TypedParameter> parameters, int rowCap, TimeSpan timeout, CancellationToken ct, Stopwatch watch)
        {
            var stmt = cached.Stmt;
            EngineChecks.MatchPlaceholders(cached.Analysis.Placeholders, parameters.Select(p => p.Name));
            raw.sqlite3_reset(stmt);
            raw.sqlite3_clear_bindings(stmt);
            foreach (var p in parameters) Bind(stmt, p);
            var count = cached.Columns.Count;
            var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
            // The progress handler runs every N virtual-machine steps; a non-zero return interrupts sqlite3_step.
            raw.sqlite3_progress_handler(db, 1000, _ =>
            {
                if (ct.IsCancellationRequested) return 1;
                if (Stopwatch.GetTimestamp() > deadline) return 1;
                return 0;
            }, null);
            try
            {
                var rows = new List<object?[]>();
                var truncated = false;
                while (true)
                {
                    var rc = raw.sqlite3_step(stmt);
                    if (rc == raw.SQLITE_DONE) break;
                    if (rc == raw.SQLITE_INTERRUPT)
                    {
                        ct.ThrowIfCancellationRequested();
                        throw new DatasourceException(DatasourceErrorKind.Timeout, $"The query ran longer than its {timeout.TotalSeconds:0.###} s timeout and was stopped.");
                    }
                    if (rc != raw.SQLITE_ROW)
                        throw new DatasourceException(DatasourceErrorKind.Failed, "SQLite: " + raw.sqlite3_errmsg(db).utf8_to_string());
                    if (rows.Count == rowCap) { truncated = true; break; }
                    rows.Add(ReadRow(stmt, count));
                }
                return new QueryResult(cached.Columns, rows, truncated, watch.Elapsed, cached.Analysis);
            }
            finally
            {
                raw.sqlite3_progress_handler(db, 0, null, null);
                // Bound values (which may be sensitive) and the statement's read position are dropped before the session idles.
                raw.sqlite3_reset(stmt);
                raw.sqlite3_clear_bindings(stmt);
            }
        }

        private void Clear()
        {
            foreach (var c in statements.Values) c.Stmt.Dispose();
            statements.Clear();
        }

        public void Dispose()
        {
            Clear();
            begin.Dispose();
            cookie.Dispose();
            end.Dispose();
            conn.Dispose();
        }
    }

    /// <summary>
    /// Idle sessions per datasource file, shared by every engine instance for that path (the gateway builds a new
    /// engine object whenever its lookups expire). A file replaced at the same path (new creation time) starts a new
    /// pool, so no session keeps reading a deleted file.
    /// </summary>
    private sealed class SessionPool(DateTime stamp)
    {
        private const int MaxIdle = 16;
        private static readonly ConcurrentDictionary<string, SessionPool> Pools = new(StringComparer.Ordinal);
        private readonly ConcurrentBag<Session> idle = [];
        private int idleCount;
        private volatile bool retired;
        private DateTime Stamp { get; } = stamp;

        public static void Release(string path)
        {
            if (Pools.TryRemove(path, out var pool)) pool.Retire();
        }

        public static SessionPool For(string path)
        {
            var stamp = File.GetCreationTimeUtc(path);
            if (stamp == DateTime.FromFileTimeUtc(0))
            {
                Release(path);
                throw new DatasourceException(DatasourceErrorKind.Failed, "The datasource file does not exist.");
            }
            while (true)
            {
                var pool = Pools.GetOrAdd(path, _ => new SessionPool(stamp));
                if (pool.Stamp == stamp) return pool;
                if (Pools.TryUpdate(path, new SessionPool(stamp), pool)) pool.Retire();
            }
        }

        public Session? Rent()
        {
            if (!idle.TryTake(out var s)) return null;
            Interlocked.Decrement(ref idleCount);
            return s;
        }

        public void Return(Session session)
        {
            if (retired || Interlocked.Increment(ref idleCount) > MaxIdle)
            {
                if (!retired) Interlocked.Decrement(ref idleCount);
                session.Dispose();
                return;
            }
            idle.Add(session);
            if (retired) Drain();
        }

        private void Retire()
        {
            retired = true;
            Drain();
        }

        private void Drain()
        {
            while (idle.TryTake(out var s)) s.Dispose();
        }
    }

    public Task<IReadOnlyList<SchemaColumn>> ListColumnsAsync(CancellationToken ct = default) => Task.Run<IReadOnlyList<SchemaColumn>>(() =>
    {
        using var conn = Open();
        using var cmd = conn.CreateCommand();
        cmd.CommandText = "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY m.name, p.cid LIMIT $max";
        cmd.Parameters.AddWithValue("$max", SchemaColumn.MaxListed);
        using var reader = cmd.ExecuteReader();
        var result = new List<SchemaColumn>();
        while (reader.Read()) result.Add(new(reader.GetString(0).ToLowerInvariant(), reader.GetString(1).ToLowerInvariant()));
        return result;
    }, ct);

    private SqliteConnection Open()
    {
        if (!File.Exists(path)) throw new DatasourceException(DatasourceErrorKind.Failed, "The datasource file does not exist.");
        var conn = new SqliteConnection(ConnectionString);
        conn.Open();
        return conn;
    }

    private static object?[] ReadRow(sqlite3_stmt stmt, int count)
    {
        var row = new object?[count];
        for (var i = 0; i < count; i++)
            row[i] = raw.sqlite3_column_type(stmt, i) switch
            {
                raw.SQLITE_INTEGER => raw.sqlite3_column_int64(stmt, i),
                raw.SQLITE_FLOAT => raw.sqlite3_column_double(stmt, i),
                raw.SQLITE_TEXT => raw.sqlite3_column_text(stmt, i).utf8_to_string(),
                raw.SQLITE_BLOB => raw.sqlite3_column_blob(stmt, i).ToArray(),
                _ => null,
            };
        return row;
    }

    private static void Bind(sqlite3_stmt stmt, TypedParameter p)
    {
        var index = raw.sqlite3_bind_parameter_index(stmt, "@" + p.Name);
        if (index == 0) throw new DatasourceException(DatasourceErrorKind.Parameters, $"The SQL has no placeholder @{p.Name}.");
        var rc = p.Value switch
        {
            null => raw.sqlite3_bind_null(stmt, index),
            string s => raw.sqlite3_bind_text(stmt, index, s),
            long l => raw.sqlite3_bind_int64(stmt, index, l),
            int n => raw.sqlite3_bind_int64(stmt, index, n),
            // SQLite has no decimal type; REAL is what numeric columns compare against.
            decimal d => raw.sqlite3_bind_double(stmt, index, (double)d),
            DateOnly date => raw.sqlite3_bind_text(stmt, index, date.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture)),
            bool b => raw.sqlite3_bind_int64(stmt, index, b ? 1 : 0),
            _ => throw new DatasourceException(DatasourceErrorKind.Parameters, $"Parameter @{p.Name} has an unsupported value type."),
        };
        if (rc != raw.SQLITE_OK) throw new DatasourceException(DatasourceErrorKind.Parameters, $"Could not bind @{p.Name}.");
    }

    /// <summary>
    /// Prepares one statement under an authorizer that allows only reads, records every table.column read, checks
    /// that nothing but comments follows it, and asks the engine whether it is read-only. The caller owns the statement.
    /// </summary>
    private static (sqlite3_stmt Stmt, StatementAnalysis Analysis) Prepare(sqlite3 db, string sql)
    {
        var reads = new List<ColumnRead>();
        var views = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var denied = new List<string>();
        raw.sqlite3_set_authorizer(db, (object _, int action, string p0, string p1, string dbName, string view) =>
        {
            switch (action)
            {
                case SqliteRead:
                    // An empty column name means the table is referenced but no column is extracted (count(*)).
                    reads.Add(new(p0, p1 ?? ""));
                    // Reads through a view name the view as the innermost context; the view's own columns are not base data.
                    if (!string.IsNullOrEmpty(view)) views.Add(view);
                    return raw.SQLITE_OK;
                case SqliteSelect or SqliteFunction or SqliteRecursive: return raw.SQLITE_OK;
                default:
                    denied.Add(ActionNames.TryGetValue(action, out var n) ? n : $"action {action}");
                    return raw.SQLITE_DENY;
            }
        }, null);
        sqlite3_stmt? stmt = null;
        try
        {
            var rc = raw.sqlite3_prepare_v2(db, sql, out stmt, out string tail);
            if (denied.Count > 0)
                throw new DatasourceException(DatasourceErrorKind.Rejected, $"Only read-only SELECT statements are accepted; this statement performs {string.Join(", ", denied.Distinct())}.");
            if (rc != raw.SQLITE_OK)
                throw new DatasourceException(DatasourceErrorKind.Syntax, "SQLite: " + raw.sqlite3_errmsg(db).utf8_to_string());
            if (stmt is null || stmt.IsInvalid)
                throw new DatasourceException(DatasourceErrorKind.Syntax, "The SQL contains no statement.");
            if (!string.IsNullOrWhiteSpace(tail))
            {
                // Let the engine decide whether the tail is only comments: preparing it yields no statement then.
                var rc2 = raw.sqlite3_prepare_v2(db, tail, out var next, out string _);
                var more = rc2 != raw.SQLITE_OK || (next is not null && !next.IsInvalid);
                next?.Dispose();
                if (more) throw new DatasourceException(DatasourceErrorKind.Rejected, "Only a single statement is accepted; the SQL contains more than one.");
            }
            if (raw.sqlite3_stmt_readonly(stmt) == 0)
                throw new DatasourceException(DatasourceErrorKind.Rejected, "Only read-only statements are accepted; SQLite reports that this statement writes.");
            if (raw.sqlite3_column_count(stmt) == 0)
                throw new DatasourceException(DatasourceErrorKind.Rejected, "Only queries that return rows are accepted.");

            var placeholders = new List<string>();
            for (var i = 1; i <= raw.sqlite3_bind_parameter_count(stmt); i++)
            {
                var name = raw.sqlite3_bind_parameter_name(stmt, i).utf8_to_string();
                if (name is null || name[0] != '@' || !QueryParameter.NamePattern.IsMatch(name[1..]))
                    throw new DatasourceException(DatasourceErrorKind.Parameters, $"Placeholder '{name ?? "?"}' is not supported; write parameters as @name (lower-case).");
                placeholders.Add(name[1..]);
            }
            var trusted = OriginsTrusted(db, sql);
            reads.RemoveAll(r => views.Contains(r.Table));
            var analysis = new StatementAnalysis(
                reads.Select(r => r.Table).Distinct(StringComparer.OrdinalIgnoreCase).ToList(),
                reads.Where(r => r.Column.Length > 0).Distinct().ToList(), trusted, placeholders);
            var result = (stmt, analysis);
            stmt = null;
            return result;
        }
        finally
        {
            stmt?.Dispose();
            raw.sqlite3_set_authorizer(db, (strdelegate_authorizer?)null, null);
        }
    }

    private static bool OriginsTrusted(sqlite3 db, string sql)
    {
        var rc = raw.sqlite3_prepare_v2(db, "EXPLAIN QUERY PLAN " + sql, out var plan, out string _);
        using (plan)
        {
            if (rc != raw.SQLITE_OK || plan is null || plan.IsInvalid) return false;
            while (raw.sqlite3_step(plan) == raw.SQLITE_ROW)
            {
                var detail = raw.sqlite3_column_text(plan, 3).utf8_to_string() ?? "";
                if (!SingleSourcePlanPrefixes.Any(p => detail.StartsWith(p, StringComparison.Ordinal))) return false;
            }
            return true;
        }
    }
}
