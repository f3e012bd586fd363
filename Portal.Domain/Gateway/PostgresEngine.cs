using System.Data;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Npgsql;
using NpgsqlTypes;

namespace Portal.Domain.Gateway;

/// <summary>
/// A governed PostgreSQL database. Each call runs in its own <c>READ ONLY</c> transaction that is rolled back;
/// the server parses and plans the statement (PREPARE + EXPLAIN) and reports what it reads and where each result
/// column comes from. The connection's role should itself be read-only: this is the second lock, not the only one.
/// </summary>
public sealed partial class PostgresEngine(string connectionString) : IDatasourceEngine
{
    private const string PreparedName = "portal_gateway_q";

    // Plan nodes that feed one output column from several inputs; engines then name only one branch as origin.
    private static readonly HashSet<string> MultiSourceNodes = new(StringComparer.Ordinal)
        { "Append", "Merge Append", "SetOp", "Recursive Union", "WorkTable Scan" };

    // Nodes whose expressions (Output, join conditions, aggregates, group keys) name every input column they use.
    private static readonly HashSet<string> Consumers = new(StringComparer.Ordinal)
        { "Hash Join", "Nested Loop", "Merge Join", "Aggregate", "Group", "WindowAgg" };

    // Nodes that hand their input's rows up unchanged, so their Output is their input's.
    private static readonly HashSet<string> PassThrough = new(StringComparer.Ordinal)
        { "Hash", "Materialize", "Sort", "Incremental Sort", "Memoize", "Limit", "Unique", "Gather", "Gather Merge" };

    public async Task<StatementAnalysis> AnalyzeAsync(string sql, IReadOnlyList<QueryParameter> parameters, CancellationToken ct = default)
    {
        var rewritten = Rewrite(sql);
        EngineChecks.MatchPlaceholders(rewritten.Order, parameters.Select(p => p.Name));
        var types = rewritten.Order.Select(n => parameters.First(p => p.Name == n).Type).ToList();
        try
        {
            await using var conn = await OpenReadOnlyAsync(TimeSpan.FromSeconds(30), ct);
            var analysis = await ExplainAsync(conn.Connection, conn.Transaction, sql, rewritten, types, ct);
            await DescribeAsync(conn.Connection, conn.Transaction, rewritten.Sql, types, ct);
            return analysis;
        }
        catch (PostgresException e)
        {
            throw new DatasourceException(DatasourceErrorKind.Failed, $"PostgreSQL: {e.MessageText}", inner: e);
        }
    }

    public async Task<QueryResult> ExecuteAsync(string sql, IReadOnlyList<TypedParameter> parameters, int rowCap, TimeSpan timeout, CancellationToken ct = default)
    {
        EngineChecks.CheckLimits(rowCap, timeout);
        var watch = Stopwatch.StartNew();
        var rewritten = Rewrite(sql);
        EngineChecks.MatchPlaceholders(rewritten.Order, parameters.Select(p => p.Name));
        var ordered = rewritten.Order.Select(n => parameters.First(p => p.Name == n)).ToList();
        var types = ordered.Select(p => p.Type).ToList();
        try
        {
            await using var conn = await OpenReadOnlyAsync(timeout, ct);
            var analysis = await ExplainAsync(conn.Connection, conn.Transaction, sql, rewritten, types, ct);
            var columns = await DescribeAsync(conn.Connection, conn.Transaction, rewritten.Sql, types, ct);

            await using var cmd = Command(rewritten.Sql, conn.Connection, conn.Transaction,
                ordered.Select(p => new NpgsqlParameter { NpgsqlDbType = DbType(p.Type), Value = p.Value ?? DBNull.Value }));
            // statement_timeout is the real limit; this client-side one only catches a server that never answers.
            cmd.CommandTimeout = (int)Math.Ceiling(timeout.TotalSeconds) + 5;
            var rows = new List<object?[]>();
            var truncated = false;
            await using (var reader = await cmd.ExecuteReaderAsync(ct))
            {
                while (await reader.ReadAsync(ct))
                {
                    if (rows.Count == rowCap) { truncated = true; break; }
                    var row = new object?[reader.FieldCount];
                    for (var i = 0; i < row.Length; i++) row[i] = Read(reader, i);
                    rows.Add(row);
                }
            }
            return new QueryResult(columns, rows, truncated, watch.Elapsed, analysis);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.QueryCanceled && !ct.IsCancellationRequested)
        {
            throw new DatasourceException(DatasourceErrorKind.Timeout, $"The query ran longer than its {timeout.TotalSeconds:0.###} s timeout and was stopped.", inner: e);
        }
        catch (NpgsqlException e) when (e.InnerException is TimeoutException)
        {
            throw new DatasourceException(DatasourceErrorKind.Timeout, $"The query ran longer than its {timeout.TotalSeconds:0.###} s timeout and was stopped.", inner: e);
        }
        catch (PostgresException e)
        {
            throw new DatasourceException(DatasourceErrorKind.Failed, $"PostgreSQL: {e.MessageText}", inner: e);
        }
    }

    private static object? Read(NpgsqlDataReader reader, int i)
    {
        if (reader.IsDBNull(i)) return null;
        try { return reader.GetValue(i); }
        catch (InvalidCastException e)
        {
            throw new DatasourceException(DatasourceErrorKind.Failed,
                $"Column '{reader.GetName(i)}' has PostgreSQL type {reader.GetDataTypeName(i)}, which the gateway cannot return; cast it to text in the query.", inner: e);
        }
    }

    private static PostgresPlaceholders.Rewritten Rewrite(string sql)
    {
        var rewritten = PostgresPlaceholders.Rewrite(sql);
        if (rewritten.PositionalUsed)
            throw new DatasourceException(DatasourceErrorKind.Parameters, "Positional placeholders ($1) are not supported; write parameters as @name.");
        return rewritten;
    }

    private sealed class ReadOnlyConnection(NpgsqlConnection connection, NpgsqlTransaction transaction) : IAsyncDisposable
    {
        public NpgsqlConnection Connection { get; } = connection;
        public NpgsqlTransaction Transaction { get; } = transaction;

        public async ValueTask DisposeAsync()
        {
            // Nothing a gateway query does is ever kept.
            try { await Transaction.RollbackAsync(); } catch (NpgsqlException) { } catch (InvalidOperationException) { }
            await Connection.DisposeAsync();
        }
    }

    public async Task<IReadOnlyList<SchemaColumn>> ListColumnsAsync(CancellationToken ct = default)
    {
        await using var ro = await OpenReadOnlyAsync(TimeSpan.FromSeconds(10), ct);
        await using var cmd = new NpgsqlCommand(
            "SELECT lower(table_name), lower(column_name) FROM information_schema.columns WHERE table_schema NOT IN ('pg_catalog', 'information_schema') " +
            "ORDER BY table_schema, table_name, ordinal_position LIMIT " + SchemaColumn.MaxListed.ToString(CultureInfo.InvariantCulture), ro.Connection, ro.Transaction);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        var result = new List<SchemaColumn>();
        while (await reader.ReadAsync(ct)) result.Add(new(reader.GetString(0), reader.GetString(1)));
        return result;
    }

    private async Task<ReadOnlyConnection> OpenReadOnlyAsync(TimeSpan timeout, CancellationToken ct)
    {
        var conn = new NpgsqlConnection(connectionString);
        try
        {
            await conn.OpenAsync(ct);
            var tx = await conn.BeginTransactionAsync(IsolationLevel.RepeatableRead, ct);
            var ms = Math.Max(1, (long)timeout.TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
            await using var cmd = new NpgsqlCommand($"SET TRANSACTION READ ONLY; SET LOCAL statement_timeout = {ms}; SET LOCAL plan_cache_mode = force_generic_plan", conn, tx);
            await cmd.ExecuteNonQueryAsync(ct);
            return new ReadOnlyConnection(conn, tx);
        }
        catch
        {
            await conn.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// A command that Npgsql sends verbatim. Npgsql splits parameterless SQL at semicolons on the client (legacy
    /// batching) and would run each piece; with at least one positional parameter it sends the text untouched, so the
    /// server alone decides and refuses a second command ("cannot insert multiple commands into a prepared statement").
    /// PostgreSQL accepts a declared parameter the statement never references, so a dummy one is added when needed.
    /// </summary>
    private static NpgsqlCommand Command(string sql, NpgsqlConnection conn, NpgsqlTransaction tx, IEnumerable<NpgsqlParameter> parameters)
    {
        var cmd = new NpgsqlCommand(sql, conn, tx);
        foreach (var p in parameters) cmd.Parameters.Add(p);
        if (cmd.Parameters.Count == 0) cmd.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Integer, Value = 0 });
        return cmd;
    }

    private static NpgsqlDbType DbType(ParameterType t) => t switch
    {
        ParameterType.String => NpgsqlDbType.Text,
        ParameterType.Int => NpgsqlDbType.Bigint,
        ParameterType.Decimal => NpgsqlDbType.Numeric,
        ParameterType.Date => NpgsqlDbType.Date,
        ParameterType.Bool => NpgsqlDbType.Boolean,
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    private static string SqlType(ParameterType t) => t switch
    {
        ParameterType.String => "text",
        ParameterType.Int => "bigint",
        ParameterType.Decimal => "numeric",
        ParameterType.Date => "date",
        ParameterType.Bool => "boolean",
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    /// <summary>
    /// PREPARE accepts only SELECT/VALUES/INSERT/UPDATE/DELETE/MERGE and one command, so DDL, utility statements and
    /// stacked statements fail in the server's parser. A generic plan (plan_cache_mode) keeps every relation the
    /// statement can touch in the plan whatever the parameter values, and a ModifyTable node anywhere (including a
    /// writable CTE) means the statement writes.
    /// </summary>
    private static async Task<StatementAnalysis> ExplainAsync(NpgsqlConnection conn, NpgsqlTransaction tx, string originalSql,
        PostgresPlaceholders.Rewritten rewritten, IReadOnlyList<ParameterType> types, CancellationToken ct)
    {
        var prefix = types.Count == 0 ? $"PREPARE {PreparedName} AS " : $"PREPARE {PreparedName}({string.Join(", ", types.Select(SqlType))}) AS ";
        try
        {
            await using (var prepare = Command(prefix + rewritten.Sql, conn, tx, [])) await prepare.ExecuteNonQueryAsync(ct);
        }
        catch (PostgresException e) when (e.SqlState is not PostgresErrorCodes.QueryCanceled)
        {
            throw Translate(e, prefix.Length, originalSql);
        }
        string json;
        var args = types.Count == 0 ? "" : "(" + string.Join(", ", types.Select(_ => "NULL")) + ")";
        await using (var explain = new NpgsqlCommand($"EXPLAIN (VERBOSE, FORMAT JSON) EXECUTE {PreparedName}{args}", conn, tx))
            json = (string)(await explain.ExecuteScalarAsync(ct))!;
        await using (var deallocate = new NpgsqlCommand($"DEALLOCATE {PreparedName}", conn, tx)) await deallocate.ExecuteNonQueryAsync(ct);

        var relations = new List<(string Schema, string Table, string Alias)>();
        var strings = new List<string>();
        var nodeTypes = new HashSet<string>(StringComparer.Ordinal);
        using (var doc = JsonDocument.Parse(json))
            foreach (var item in doc.RootElement.EnumerateArray()) Walk(item.GetProperty("Plan"), belowConsumer: false);

        if (nodeTypes.Contains("ModifyTable"))
            throw new DatasourceException(DatasourceErrorKind.Rejected, "Only read-only statements are accepted; PostgreSQL plans this statement as a write (INSERT/UPDATE/DELETE/MERGE, possibly inside a WITH clause).");
        if (nodeTypes.Contains("LockRows"))
            throw new DatasourceException(DatasourceErrorKind.Rejected, "Only read-only statements are accepted; this statement locks rows (FOR UPDATE/SHARE).");

        // EXPLAIN qualifies column names only when the query has more than one relation, so every column of each
        // scanned table is looked for both as alias.column and bare; a false match only masks more, never less.
        var columnsOf = await ColumnsOfAsync(conn, tx, relations.Select(r => (r.Schema, r.Table)).Distinct().ToList(), ct);
        var reads = new List<ColumnRead>();
        foreach (var (schema, table, alias) in relations)
        {
            var wholeRow = new Regex($@"(?<![\w""]){Regex.Escape(alias)}\.\*", RegexOptions.CultureInvariant);
            if (strings.Any(wholeRow.IsMatch)) reads.Add(new(table, "*"));
            foreach (var column in columnsOf.GetValueOrDefault((schema, table), []))
            {
                var name = Regex.Escape(column);
                var reference = new Regex($@"(?<![\w$""])(?:{Regex.Escape(alias)}\.)?(?:""{name}""|{name})(?![\w$""])", RegexOptions.CultureInvariant);
                if (strings.Any(reference.IsMatch)) reads.Add(new(table, column));
            }
        }
        return new StatementAnalysis(relations.Select(r => r.Table).Distinct().ToList(), reads.Distinct().ToList(),
            !nodeTypes.Overlaps(MultiSourceNodes), rewritten.Order);

        void Walk(JsonElement node, bool belowConsumer)
        {
            var nodeType = node.TryGetProperty("Node Type", out var type) ? type.GetString()! : "";
            nodeTypes.Add(nodeType);
            if (node.TryGetProperty("Relation Name", out var rel))
                relations.Add((node.TryGetProperty("Schema", out var sc) ? sc.GetString()! : "public", rel.GetString()!,
                    node.TryGetProperty("Alias", out var a) ? a.GetString()! : rel.GetString()!));
            foreach (var prop in node.EnumerateObject())
            {
                if (prop.Name == "Plans")
                {
                    foreach (var child in prop.Value.EnumerateArray())
                    {
                        var inputOfThisQuery = child.TryGetProperty("Parent Relationship", out var relationship) && relationship.GetString() is "Outer" or "Inner";
                        Walk(child, inputOfThisQuery && (Consumers.Contains(nodeType) || (PassThrough.Contains(nodeType) && belowConsumer)));
                    }
                    continue;
                }
                // Below a join or aggregate a scan may return whole rows (a "physical target list"); the consumer's own
                // expressions name the columns it actually uses, so the input's Output would over-report.
                if (prop.Name == "Output" && belowConsumer) continue;
                if (prop.Value.ValueKind == JsonValueKind.String) strings.Add(prop.Value.GetString()!);
                else if (prop.Value.ValueKind == JsonValueKind.Array)
                    strings.AddRange(prop.Value.EnumerateArray().Where(v => v.ValueKind == JsonValueKind.String).Select(v => v.GetString()!));
            }
        }
    }

    private static async Task<Dictionary<(string Schema, string Table), List<string>>> ColumnsOfAsync(
        NpgsqlConnection conn, NpgsqlTransaction tx, IReadOnlyList<(string Schema, string Table)> relations, CancellationToken ct)
    {
        var result = new Dictionary<(string, string), List<string>>();
        if (relations.Count == 0) return result;
        await using var cmd = Command(
            "SELECT n.nspname::text, c.relname::text, a.attname::text FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid " +
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relname = ANY($1) ORDER BY a.attnum",
            conn, tx, [new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text, Value = relations.Select(r => r.Table).Distinct().ToArray() }]);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            var key = (reader.GetString(0), reader.GetString(1));
            if (!relations.Contains(key)) continue;
            if (!result.TryGetValue(key, out var list)) result[key] = list = [];
            list.Add(reader.GetString(2));
        }
        return result;
    }

    /// <summary>
    /// Asks the server to describe the result (Parse/Describe, nothing runs) and resolves each column's origin from
    /// the table OID and attribute number it reports. Only ordinary and partitioned tables count as origins: for a
    /// view column PostgreSQL names the view, which no mask rule covers, so such columns count as computed.
    /// </summary>
    private static async Task<List<ResultColumn>> DescribeAsync(NpgsqlConnection conn, NpgsqlTransaction tx, string sql, IReadOnlyList<ParameterType> types, CancellationToken ct)
    {
        var described = new List<(string Name, uint Oid, short? Attnum)>();
        await using (var cmd = Command(sql, conn, tx, types.Select(t => new NpgsqlParameter { NpgsqlDbType = DbType(t), Value = DBNull.Value })))
        {
            await using var reader = await cmd.ExecuteReaderAsync(CommandBehavior.SchemaOnly, ct);
            if (reader.FieldCount == 0)
                throw new DatasourceException(DatasourceErrorKind.Rejected, "Only queries that return rows are accepted.");
            foreach (var c in reader.GetColumnSchema())
                described.Add((c.ColumnName, c.TableOID, c.ColumnAttributeNumber));
        }
        var oids = described.Where(d => d.Oid != 0).Select(d => (long)d.Oid).Distinct().ToArray();
        var origins = new Dictionary<(long, short), (string Table, string Column)>();
        if (oids.Length > 0)
        {
            await using var lookup = new NpgsqlCommand(
                "SELECT c.oid::bigint, c.relname::text, a.attnum, a.attname::text FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid " +
                "WHERE c.oid::bigint = ANY($1) AND a.attnum > 0 AND c.relkind IN ('r', 'p', 'f')", conn, tx);
            lookup.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint, Value = oids });
            await using var r = await lookup.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) origins[(r.GetInt64(0), r.GetInt16(2))] = (r.GetString(1), r.GetString(3));
        }
        return described.Select(d => d.Attnum is { } n && origins.TryGetValue((d.Oid, n), out var o)
            ? new ResultColumn(d.Name, o.Table, o.Column)
            : new ResultColumn(d.Name, null, null)).ToList();
    }

    private static DatasourceException Translate(PostgresException e, int prefixLength, string originalSql)
    {
        if (e.Message.Contains("multiple commands", StringComparison.OrdinalIgnoreCase))
            return new(DatasourceErrorKind.Rejected, "Only a single statement is accepted; the SQL contains more than one.", inner: e);
        int? position = e.Position > prefixLength ? e.Position - prefixLength : null;
        if (e.SqlState == PostgresErrorCodes.SyntaxError && position == FirstTokenPosition(originalSql))
            return new(DatasourceErrorKind.Rejected, $"Only read-only SELECT queries are accepted; PostgreSQL cannot prepare this statement as a query ({e.MessageText}).", position, e);
        return new(DatasourceErrorKind.Syntax, $"PostgreSQL: {e.MessageText}" + (position is { } p ? $" (at character {p})" : ""), position, e);
    }

    private static int FirstTokenPosition(string sql) => LeadingSpace().Match(sql).Length + 1;

    [GeneratedRegex(@"^(\s|--[^\n]*\n|/\*.*?\*/)*", RegexOptions.Singleline)]
    private static partial Regex LeadingSpace();
}
