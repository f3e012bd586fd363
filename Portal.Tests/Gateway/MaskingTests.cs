using System.Globalization;
using Portal.Domain.Gateway;
using Portal.Domain.Gateway.Demo;
using Portal.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Portal.Tests.Gateway;

public class MaskingTests(GatewayEngines engines, ITestOutputHelper output) : IClassFixture<GatewayEngines>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private static readonly byte[] Key = "test-masking-key-0123456789abcdef"u8.ToArray();

    private static readonly MaskRule[] Rules =
    [
        new("customers", "ssn", MaskType.Partial, ["compliance"], ShowLast: 4),
        new("customers", "card_number", MaskType.Partial, ["compliance"], ShowFirst: 1, ShowLast: 4),
        new("customers", "email", MaskType.EmailDomain, ["compliance"]),
        new("customers", "phone", MaskType.Hash, ["compliance"]),
        new("salaries", "amount", MaskType.Null, ["hr"]),
    ];

    private static readonly MaskingEngine Masking = new(Rules, Key);

    /// <summary>Every raw protected value in the sample data, plus obvious transformations of it.</summary>
    private static readonly string[] Secrets = SampleDatasource.Customers
        .SelectMany(c => new[] { c.Ssn, c.Ssn.Replace("-", ""), c.CardNumber, c.Email, c.Email.ToUpperInvariant(), c.Phone, c.Phone.Replace("-", "") })
        .ToArray();

    private static readonly HashSet<decimal> SalaryAmounts = SampleDatasource.Salaries.Select(s => s.Amount).ToHashSet();

    public static TheoryData<string, string> BypassAttempts()
    {
        var data = new TheoryData<string, string>();
        string[] common =
        [
            "SELECT ssn FROM customers",
            "SELECT ssn AS harmless FROM customers",
            "SELECT c.ssn AS id FROM customers c",
            "SELECT upper(ssn) FROM customers",
            "SELECT lower(email) AS e FROM customers",
            "SELECT ssn || '' AS s FROM customers",
            "SELECT '' || card_number AS s FROM customers",
            "SELECT substr(ssn, 1, 11) AS s FROM customers",
            "SELECT replace(ssn, '-', '') AS s FROM customers",
            "SELECT CAST(card_number AS text) AS s FROM customers",
            "SELECT coalesce(ssn, name) AS s FROM customers",
            "SELECT CASE WHEN id > 0 THEN ssn ELSE name END AS s FROM customers",
            "SELECT max(ssn) AS m, min(card_number) AS n FROM customers",
            "SELECT (SELECT ssn FROM customers c2 WHERE c2.id = c.id) AS s FROM customers c",
            "SELECT x FROM (SELECT ssn AS x FROM customers) sub",
            "SELECT x FROM (SELECT upper(ssn) AS x FROM customers) sub",
            "WITH t AS (SELECT ssn AS x, phone AS y FROM customers) SELECT x, y FROM t",
            "WITH t AS (SELECT ssn || '' AS x FROM customers) SELECT x FROM t",
            "SELECT name FROM customers UNION SELECT ssn FROM customers",
            "SELECT name FROM customers UNION ALL SELECT card_number FROM customers",
            "SELECT city, name FROM customers UNION ALL SELECT email, phone FROM customers",
            "WITH u AS (SELECT name AS v FROM customers UNION ALL SELECT ssn FROM customers) SELECT v FROM u",
            "SELECT name FROM customers EXCEPT SELECT ssn FROM customers WHERE id < 0 UNION ALL SELECT ssn FROM customers",
            "SELECT name FROM customers WHERE 1 = 0 UNION ALL SELECT ssn FROM customers",
            "SELECT name FROM customers WHERE id < 0 UNION SELECT card_number FROM customers",
            "WITH u AS (SELECT name AS v FROM customers WHERE 1 = 0 UNION ALL SELECT email FROM customers) SELECT v FROM u",
            "SELECT name FROM (SELECT name FROM customers WHERE 1 = 0 UNION ALL SELECT phone FROM customers) x",
            "WITH RECURSIVE r(x, n) AS (SELECT ssn, 1 FROM customers UNION ALL SELECT x, n + 1 FROM r WHERE n < 2) SELECT x FROM r",
            $"SELECT * FROM {SampleDatasource.ContactsView}",
            $"SELECT ssn, email, phone FROM {SampleDatasource.ContactsView}",
            $"SELECT upper(ssn) AS s FROM {SampleDatasource.ContactsView}",
            "SELECT * FROM customers",
            "SELECT c.*, o.* FROM customers c JOIN orders o ON o.customer_id = c.id",
            "SELECT o.id, c.card_number AS product_code FROM orders o JOIN customers c ON c.id = o.customer_id",
            "SELECT o.product_code FROM orders o JOIN customers c ON c.id = o.customer_id UNION ALL SELECT ssn FROM customers",
            "SELECT amount FROM salaries",
            "SELECT amount + 0 AS a FROM salaries",
            "SELECT employee_name, (SELECT max(s2.amount) FROM salaries s2 WHERE s2.id = s.id) AS a FROM salaries s",
            "SELECT name, ssn, card_number, email, phone FROM customers",
        ];
        foreach (var p in new[] { "sqlite", "postgres" })
            foreach (var sql in common) data.Add(p, sql);
        data.Add("sqlite", "SELECT json_object('s', ssn) AS j FROM customers");
        data.Add("sqlite", "SELECT group_concat(ssn) AS g FROM customers");
        data.Add("sqlite", "SELECT printf('%s', card_number) AS p FROM customers");
        data.Add("postgres", "SELECT row_to_json(c) AS j FROM customers c");
        data.Add("postgres", "SELECT c AS whole_row FROM customers c");
        data.Add("postgres", "SELECT string_agg(ssn, ',') AS g FROM customers");
        data.Add("postgres", "SELECT format('%s', card_number) AS p FROM customers");
        data.Add("postgres", "SELECT v.* FROM customer_contacts v");
        data.Add("postgres", "SELECT (array_agg(ssn))[1] AS a FROM customers");
        return data;
    }

    [Theory]
    [MemberData(nameof(BypassAttempts))]
    public async Task Bypass_attempts_never_reveal_a_raw_masked_value(string provider, string sql)
    {
        var engine = await engines.GetAsync(provider);
        await engine.AnalyzeAsync(sql, []);
        QueryResult result;
        try { result = await engine.ExecuteAsync(sql, [], 1000, Timeout); }
        catch (DatasourceException e) when (e.Kind == DatasourceErrorKind.Failed)
        {
            // Refusing to return a column (a composite row type PostgreSQL cannot hand over) reveals nothing either.
            output.WriteLine($"{provider}: {sql} -> {e.Message}");
            return;
        }
        Assert.NotEmpty(result.Rows);
        var masked = Masking.Apply(result, "analyst");
        output.WriteLine($"{provider}: {sql}");
        foreach (var m in masked.Masking) output.WriteLine($"  {m.Column} <- {m.Origin ?? "(computed)"}: {m.Mask?.ToString() ?? "raw"} {m.Reason}");

        foreach (var row in masked.Rows)
            foreach (var cell in row)
            {
                if (cell is null) continue;
                var text = Convert.ToString(cell, CultureInfo.InvariantCulture)!;
                foreach (var secret in Secrets)
                    Assert.False(text.Contains(secret, StringComparison.OrdinalIgnoreCase), $"raw value {secret} leaked in '{text}'");
                if (decimal.TryParse(text, NumberStyles.Number, CultureInfo.InvariantCulture, out var d))
                    Assert.DoesNotContain(d, SalaryAmounts);
            }
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Unmasked_columns_stay_readable_next_to_masked_ones(string provider)
    {
        var engine = await engines.GetAsync(provider);
        var result = await engine.ExecuteAsync("SELECT id, name, ssn, card_number, email, phone FROM customers ORDER BY id", [], 100, Timeout);
        var masked = Masking.Apply(result, "analyst");
        var first = SampleDatasource.Customers[0];
        var row = masked.Rows[0];
        Assert.Equal(first.Id, Convert.ToInt32(row[0]));
        Assert.Equal(first.Name, row[1]);
        Assert.Equal(new string('*', first.Ssn.Length - 4) + first.Ssn[^4..], row[2]);
        Assert.Equal(first.CardNumber[..1] + new string('*', first.CardNumber.Length - 5) + first.CardNumber[^4..], row[3]);
        Assert.Equal("***" + first.Email[first.Email.IndexOf('@')..], row[4]);
        Assert.StartsWith("hmac:", (string)row[5]!);
        Assert.Equal([null, null, MaskType.Partial, MaskType.Partial, MaskType.EmailDomain, MaskType.Hash], masked.Masking.Select(m => m.Mask));
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Computed_columns_are_redacted_only_when_a_hidden_column_was_read(string provider)
    {
        var engine = await engines.GetAsync(provider);
        var clean = Masking.Apply(await engine.ExecuteAsync("SELECT count(*) AS n, upper(city) AS c FROM customers GROUP BY city ORDER BY c", [], 100, Timeout), "analyst");
        Assert.All(clean.Masking, m => Assert.Null(m.Mask));
        Assert.DoesNotContain(clean.Rows, r => r.Contains(MaskingEngine.Redacted));

        var count = Masking.Apply(await engine.ExecuteAsync("SELECT count(*) AS n FROM customers", [], 1, Timeout), "analyst");
        Assert.Equal(SampleDatasource.Customers.Count, Convert.ToInt32(count.Rows[0][0]));

        var wholeRow = await engine.AnalyzeAsync(provider == "sqlite" ? "SELECT json_object('r', c.ssn) AS j FROM customers c" : "SELECT row_to_json(c) AS j FROM customers c", []);
        Assert.Contains(wholeRow.ColumnsRead, r => r.Table == "customers" && r.Column is "ssn" or "*");

        var tainted = Masking.Apply(await engine.ExecuteAsync("SELECT count(*) AS n FROM customers WHERE ssn LIKE '1%'", [], 100, Timeout), "analyst");
        Assert.Equal(MaskingEngine.Redacted, tainted.Rows[0][0]);
        Assert.Contains("customers.ssn", tainted.Masking[0].Reason);

        var hr = Masking.Apply(await engine.ExecuteAsync("SELECT sum(amount) AS total FROM salaries", [], 10, Timeout), "hr");
        Assert.Equal(SampleDatasource.Salaries.Sum(s => s.Amount), Convert.ToDecimal(hr.Rows[0][0], CultureInfo.InvariantCulture));
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Privileged_role_sees_raw_values(string provider)
    {
        var engine = await engines.GetAsync(provider);
        var result = await engine.ExecuteAsync("SELECT ssn, upper(email) AS e, card_number FROM customers ORDER BY id", [], 100, Timeout);
        var masked = Masking.Apply(result, "compliance");
        Assert.Equal(SampleDatasource.Customers.Select(c => c.Ssn), masked.Rows.Select(r => (string)r[0]!));
        Assert.Equal(SampleDatasource.Customers.Select(c => c.Email.ToUpperInvariant()), masked.Rows.Select(r => (string)r[1]!));
        Assert.All(masked.Masking, m => Assert.Null(m.Mask));
        // compliance may see customers but not salaries
        var salaries = Masking.Apply(await engine.ExecuteAsync("SELECT employee_name, amount FROM salaries", [], 100, Timeout), "compliance");
        Assert.All(salaries.Rows, r => Assert.Null(r[1]));
    }

    [Fact]
    public async Task Hash_mask_is_stable_across_queries_and_engines()
    {
        var results = new List<IReadOnlyList<object?[]>>();
        foreach (var provider in new[] { "sqlite", "postgres" })
        {
            var engine = await engines.GetAsync(provider);
            results.Add(Masking.Apply(await engine.ExecuteAsync("SELECT id, phone FROM customers ORDER BY id", [], 100, Timeout), "analyst").Rows);
            results.Add(new MaskingEngine(Rules, Key).Apply(await engine.ExecuteAsync(
                "SELECT c.id, c.phone FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY c.id, c.phone ORDER BY c.id", [], 100, Timeout), "analyst").Rows);
        }
        var byId = results[0].ToDictionary(r => Convert.ToInt64(r[0]), r => (string)r[1]!);
        Assert.Equal(SampleDatasource.Customers.Count, byId.Values.Distinct().Count());
        foreach (var rows in results)
            foreach (var r in rows) Assert.Equal(byId[Convert.ToInt64(r[0])], r[1]);
        var otherKey = new MaskingEngine(Rules, "another-key-0123456789abcdefghij"u8.ToArray())
            .Apply(await (await engines.GetAsync("sqlite")).ExecuteAsync("SELECT id, phone FROM customers ORDER BY id", [], 1, Timeout), "analyst");
        Assert.NotEqual(byId[1], otherKey.Rows[0][1]);
    }
}
