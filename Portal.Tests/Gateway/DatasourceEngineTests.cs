using System.Diagnostics;
using Portal.Domain.Gateway;
using Portal.Domain.Gateway.Demo;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Gateway;

public class DatasourceEngineTests(GatewayEngines engines) : IClassFixture<GatewayEngines>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    public static TheoryData<string, string> Writes()
    {
        var data = new TheoryData<string, string>();
        foreach (var provider in new[] { "sqlite", "postgres" })
        {
            foreach (var sql in new[]
            {
                "INSERT INTO orders (id, customer_id, product_code, amount, ordered_on, status) VALUES (999, 1, 'X', 1, '2024-01-01', 'new')",
                "UPDATE orders SET status = 'hacked'",
                "DELETE FROM orders",
                "DROP TABLE orders",
                "CREATE TABLE loot (x int)",
                "CREATE TABLE loot AS SELECT * FROM customers",
                "SELECT 1; DELETE FROM orders",
                "SELECT 1; SELECT 2",
                "SELECT id FROM orders; DROP TABLE orders",
                "ALTER TABLE orders ADD COLUMN pwned int",
                "BEGIN",
                "  ",
                "-- only a comment",
            })
                data.Add(provider, sql);
        }
        foreach (var sql in new[] { "ATTACH DATABASE ':memory:' AS evil", "PRAGMA user_version = 7", "PRAGMA table_info(customers)", "VACUUM", "REINDEX", "ANALYZE" })
            data.Add("sqlite", sql);
        foreach (var sql in new[]
        {
            "WITH gone AS (DELETE FROM orders RETURNING id) SELECT count(*) FROM gone",
            "WITH moved AS (UPDATE orders SET status = 'x' RETURNING id) SELECT id FROM moved",
            "SELECT * INTO loot FROM customers",
            "SELECT id FROM orders FOR UPDATE",
            "SET statement_timeout = 0",
            "SHOW search_path",
            "COPY orders TO STDOUT",
            "TRUNCATE orders",
            "VACUUM orders",
            "DO $$ BEGIN DELETE FROM orders; END $$",
            "SELECT 1; COMMIT; DELETE FROM orders",
        })
            data.Add("postgres", sql);
        return data;
    }

    [Theory]
    [MemberData(nameof(Writes))]
    public async Task Anything_but_one_read_only_query_is_rejected_by_the_engine(string provider, string sql)
    {
        var engine = await engines.GetAsync(provider);
        var analyze = await Assert.ThrowsAsync<DatasourceException>(() => engine.AnalyzeAsync(sql, []));
        Assert.True(analyze.Kind is DatasourceErrorKind.Rejected or DatasourceErrorKind.Syntax, $"{analyze.Kind}: {analyze.Message}");
        var execute = await Assert.ThrowsAsync<DatasourceException>(() => engine.ExecuteAsync(sql, [], 10, Timeout));
        Assert.Equal(analyze.Kind, execute.Kind);
        Assert.False(string.IsNullOrWhiteSpace(execute.Message));

        var count = await engine.ExecuteAsync("SELECT count(*) AS n FROM orders WHERE status <> 'x' AND status <> 'hacked'", [], 1, Timeout);
        Assert.Equal(SampleDatasource.Orders.Count, Convert.ToInt32(count.Rows[0][0]));
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Rejections_name_the_reason(string provider)
    {
        var engine = await engines.GetAsync(provider);
        var multi = await Assert.ThrowsAsync<DatasourceException>(() => engine.AnalyzeAsync("SELECT 1; DELETE FROM orders", []));
        Assert.Equal(DatasourceErrorKind.Rejected, multi.Kind);
        Assert.Contains("single statement", multi.Message);
        var write = await Assert.ThrowsAsync<DatasourceException>(() => engine.AnalyzeAsync("DELETE FROM orders", []));
        Assert.Equal(DatasourceErrorKind.Rejected, write.Kind);
        Assert.Contains("read-only", write.Message);
        var syntax = await Assert.ThrowsAsync<DatasourceException>(() => engine.AnalyzeAsync("SELECT id FROM orders WHERE AND", []));
        Assert.Equal(DatasourceErrorKind.Syntax, syntax.Kind);
        Assert.Contains("syntax error", syntax.Message);
        var missing = await Assert.ThrowsAsync<DatasourceException>(() => engine.AnalyzeAsync("SELECT nope FROM orders", []));
        Assert.Equal(DatasourceErrorKind.Syntax, missing.Kind);
        Assert.Contains("nope", missing.Message);
        if (provider == "postgres") Assert.Equal(8, missing.Position);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Trailing_semicolon_and_comments_are_one_statement(string provider)
    {
        var engine = await engines.GetAsync(provider);
        foreach (var sql in new[] { "SELECT id FROM orders;", "SELECT id FROM orders; -- done", "/* lead */ SELECT id FROM orders /* trail */", "SELECT '@not_a_param; DELETE' AS s FROM orders" })
        {
            var analysis = await engine.AnalyzeAsync(sql, []);
            Assert.Empty(analysis.Placeholders);
            var result = await engine.ExecuteAsync(sql, [], 5, Timeout);
            Assert.Equal(5, result.Rows.Count);
        }
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Engine_reports_tables_and_columns_read(string provider)
    {
        var engine = await engines.GetAsync(provider);
        var join = await engine.AnalyzeAsync(
            "SELECT c.name, o.amount FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.status = @status",
            [new QueryParameter("status", ParameterType.String)]);
        Assert.Equal(["customers", "orders"], join.TablesRead.Order());
        Assert.Contains(new ColumnRead("customers", "name"), join.ColumnsRead);
        Assert.Contains(new ColumnRead("orders", "amount"), join.ColumnsRead);
        Assert.Contains(new ColumnRead("orders", "status"), join.ColumnsRead);
        Assert.DoesNotContain(join.ColumnsRead, c => c.Column == "ssn");
        Assert.True(join.OriginsTrusted);
        Assert.Equal(["status"], join.Placeholders);

        // A single-table plan prints columns unqualified on PostgreSQL; they still count.
        var single = await engine.AnalyzeAsync("SELECT substr(ssn, 1, 3) AS s FROM customers", []);
        Assert.Equal([new ColumnRead("customers", "ssn")], single.ColumnsRead);
        var count = await engine.AnalyzeAsync("SELECT count(*) AS n FROM customers", []);
        Assert.Equal(["customers"], count.TablesRead);
        Assert.Empty(count.ColumnsRead);

        var view = await engine.AnalyzeAsync($"SELECT name, ssn FROM {SampleDatasource.ContactsView}", []);
        Assert.Equal(["customers"], view.TablesRead);
        Assert.Contains(new ColumnRead("customers", "ssn"), view.ColumnsRead);

        var union = await engine.AnalyzeAsync("SELECT name FROM customers UNION SELECT employee_name FROM salaries", []);
        Assert.Equal(["customers", "salaries"], union.TablesRead.Order());
        Assert.False(union.OriginsTrusted);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Result_columns_carry_their_origin(string provider)
    {
        var engine = await engines.GetAsync(provider);
        var result = await engine.ExecuteAsync(
            "SELECT c.name AS who, upper(c.ssn) AS s, o.amount FROM customers c JOIN orders o ON o.customer_id = c.id ORDER BY o.id", [], 3, Timeout);
        Assert.Equal(["customers.name", null, "orders.amount"], result.Columns.Select(c => c.Origin));
        Assert.Equal(["who", "s", "amount"], result.Columns.Select(c => c.Name));
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Origins_follow_aliases_subqueries_and_ctes_but_not_expressions(string provider)
    {
        var engine = await engines.GetAsync(provider);
        async Task<string?> Origin(string sql) => (await engine.ExecuteAsync(sql, [], 1, Timeout)).Columns[0].Origin;
        Assert.Equal("customers.ssn", await Origin("SELECT ssn AS x FROM customers"));
        Assert.Equal("customers.ssn", await Origin("SELECT x FROM (SELECT ssn AS x FROM customers) s"));
        Assert.Equal("customers.ssn", await Origin("WITH t AS (SELECT ssn AS x FROM customers) SELECT x FROM t"));
        Assert.Null(await Origin("SELECT upper(ssn) FROM customers"));
        Assert.Null(await Origin("SELECT max(ssn) FROM customers"));
        Assert.Null(await Origin("SELECT CASE WHEN id > 0 THEN ssn END FROM customers"));
        // A scalar subquery carries one column's values: SQLite names it, PostgreSQL reports none (masked whole).
        Assert.Equal(provider == "sqlite" ? "customers.ssn" : null, await Origin("SELECT (SELECT ssn FROM customers LIMIT 1)"));
        // SQLite traces a view column to its base table; PostgreSQL names the view itself, which the engine does
        // not accept as an origin, so the column counts as computed and is masked whole when it matters.
        Assert.Equal(provider == "sqlite" ? "customers.ssn" : null, await Origin($"SELECT ssn FROM {SampleDatasource.ContactsView}"));
    }

    [Fact]
    public async Task Npgsql_reports_the_view_not_its_base_table_for_view_columns()
    {
        await engines.GetAsync("postgres");
        await using var conn = new Npgsql.NpgsqlConnection(engines.PostgresConnectionString);
        await conn.OpenAsync();
        await using var cmd = new Npgsql.NpgsqlCommand($"SELECT v.ssn, upper(v.ssn) AS u FROM {SampleDatasource.ContactsView} v", conn);
        var schema = new List<Npgsql.Schema.NpgsqlDbColumn>();
        await using (var reader = await cmd.ExecuteReaderAsync(System.Data.CommandBehavior.SchemaOnly))
            schema.AddRange(reader.GetColumnSchema());
        // What the engine builds on: the row description names the view's OID and attribute, Npgsql resolves no
        // base table for it, and an expression has no table at all.
        Assert.NotEqual(0u, schema[0].TableOID);
        Assert.True(string.IsNullOrEmpty(schema[0].BaseTableName));
        Assert.Equal(0u, schema[1].TableOID);
        await using var kind = new Npgsql.NpgsqlCommand($"SELECT relkind::text FROM pg_class WHERE oid = {schema[0].TableOID}", conn);
        Assert.Equal("v", await kind.ExecuteScalarAsync());
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Typed_parameters_are_bound(string provider)
    {
        var engine = await engines.GetAsync(provider);
        QueryParameter[] defs =
        [
            new("customer_id", ParameterType.Int), new("since", ParameterType.Date), new("min_amount", ParameterType.Decimal),
            new("status", ParameterType.String, Required: false), new("only_open", ParameterType.Bool),
        ];
        const string sql = "SELECT id, amount FROM orders WHERE customer_id = @customer_id AND ordered_on >= @since AND amount >= @min_amount " +
                           "AND (@status IS NULL OR status = @status) AND (status <> 'cancelled' OR NOT @only_open) ORDER BY id";
        var analysis = await engine.AnalyzeAsync(sql, defs);
        Assert.Equal(["customer_id", "min_amount", "only_open", "since", "status"], analysis.Placeholders.Order());

        var v = ParameterValidator.Validate(defs, new Dictionary<string, string?>
            { ["customer_id"] = "7", ["since"] = "2024-03-01", ["min_amount"] = "100.5", ["only_open"] = "true" });
        Assert.True(v.IsValid, string.Join("; ", v.Errors));
        var result = await engine.ExecuteAsync(sql, v.Values, 100, Timeout);
        var expected = SampleDatasource.Orders
            .Where(o => o.CustomerId == 7 && o.OrderedOn >= new DateOnly(2024, 3, 1) && o.Amount >= 100.5m && o.Status != "cancelled")
            .Select(o => (long)o.Id).ToList();
        Assert.Equal(expected, result.Rows.Select(r => Convert.ToInt64(r[0])));
        Assert.NotEmpty(expected);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Placeholders_must_match_declared_parameters(string provider)
    {
        var engine = await engines.GetAsync(provider);
        var undeclared = await Assert.ThrowsAsync<DatasourceException>(() => engine.AnalyzeAsync("SELECT id FROM orders WHERE id = @id", []));
        Assert.Equal(DatasourceErrorKind.Parameters, undeclared.Kind);
        Assert.Contains("@id", undeclared.Message);
        var unused = await Assert.ThrowsAsync<DatasourceException>(() => engine.AnalyzeAsync("SELECT id FROM orders", [new QueryParameter("id", ParameterType.Int)]));
        Assert.Equal(DatasourceErrorKind.Parameters, unused.Kind);
        var other = provider == "sqlite" ? "SELECT id FROM orders WHERE id = :id" : "SELECT id FROM orders WHERE id = $1";
        var wrongSyntax = await Assert.ThrowsAsync<DatasourceException>(() => engine.AnalyzeAsync(other, [new QueryParameter("id", ParameterType.Int)]));
        Assert.Equal(DatasourceErrorKind.Parameters, wrongSyntax.Kind);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Row_cap_reads_one_more_row_to_flag_truncation(string provider)
    {
        var engine = await engines.GetAsync(provider);
        var capped = await engine.ExecuteAsync("SELECT id FROM orders ORDER BY id", [], 10, Timeout);
        Assert.Equal(10, capped.Rows.Count);
        Assert.True(capped.Truncated);
        var exact = await engine.ExecuteAsync("SELECT id FROM orders ORDER BY id", [], SampleDatasource.Orders.Count, Timeout);
        Assert.Equal(SampleDatasource.Orders.Count, exact.Rows.Count);
        Assert.False(exact.Truncated);
        Assert.True(exact.Duration > TimeSpan.Zero);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Long_query_is_stopped_at_its_timeout(string provider)
    {
        var engine = await engines.GetAsync(provider);
        var watch = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<DatasourceException>(() => engine.ExecuteAsync(
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r", [], 10, TimeSpan.FromMilliseconds(300)));
        Assert.Equal(DatasourceErrorKind.Timeout, e.Kind);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"took {watch.Elapsed}");
        // The engine is usable right after.
        Assert.Single((await engine.ExecuteAsync("SELECT 1 AS one", [], 10, Timeout)).Rows);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Cancellation_stops_a_running_query(string provider)
    {
        var engine = await engines.GetAsync(provider);
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => engine.ExecuteAsync(
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r", [], 10, TimeSpan.FromSeconds(30), cts.Token));
    }
}
