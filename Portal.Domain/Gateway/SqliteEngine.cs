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
        // Hooks (authorizer, progress handler) are set per use; a fresh connection guarantees none leak between calls.
        Pooling = false,
    }.ToString();

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
        return Task.Run(() =>
        {
            var watch = Stopwatch.StartNew();
            using var conn = Open();
            var db = conn.Handle!;
            var (stmt, analysis) = Prepare(db, sql);
            using (stmt)
            {
                EngineChecks.MatchPlaceholders(analysis.Placeholders, parameters.Select(p => p.Name));
                foreach (var p in parameters) Bind(stmt, p);

                var columns = new List<ResultColumn>();
                for (var i = 0; i < raw.sqlite3_column_count(stmt); i++)
                    columns.Add(new(raw.sqlite3_column_name(stmt, i).utf8_to_string() ?? $"column{i + 1}",
                        raw.sqlite3_column_table_name(stmt, i).utf8_to_string(), raw.sqlite3_column_origin_name(stmt, i).utf8_to_string()));

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
                        rows.Add(ReadRow(stmt, columns.Count));
                    }
                    return new QueryResult(columns, rows, truncated, watch.Elapsed, analysis);
                }
                finally { raw.sqlite3_progress_handler(db, 0, null, null); }
            }
        }, ct);
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
