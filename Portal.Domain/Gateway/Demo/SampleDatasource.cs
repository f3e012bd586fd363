using System.Data.Common;
using System.Globalization;
using Microsoft.Data.Sqlite;

namespace Portal.Domain.Gateway.Demo;

public sealed record SampleCustomer(int Id, string Name, string Email, string Phone, string Ssn, string CardNumber, string City);
public sealed record SampleOrder(int Id, int CustomerId, string ProductCode, decimal Amount, DateOnly OrderedOn, string Status);
public sealed record SampleSalary(int Id, string EmployeeName, string Department, decimal Amount);

/// <summary>
/// A small governed datasource with personal data worth masking: customers (email, phone, SSN, card number),
/// orders, salaries and a view over customers. Data is generated from a fixed seed so demos and tests see the same
/// rows every time; hand-rolled because a few lists and a seeded Random are all it needs.
/// </summary>
public static class SampleDatasource
{
    public const string ContactsView = "customer_contacts";

    private static readonly string[] First = ["Ana", "Liam", "Sofia", "Noah", "Mia", "Lucas", "Emma", "Mateo", "Olivia", "Ethan", "Chloe", "Aiden", "Grace", "Kenji", "Priya", "Omar", "Ingrid", "Tomas", "Aisha", "Sean"];
    private static readonly string[] Last = ["O'Brien", "Garcia", "D'Angelo", "Smith", "Nguyen", "Kowalski", "Müller", "Okafor", "Johansson", "Tanaka", "Rossi", "Patel", "Dubois", "Murphy", "Silva"];
    private static readonly string[] Cities = ["Lisbon", "Dublin", "Austin", "Osaka", "Lyon", "Gdansk", "Toronto", "Porto"];
    private static readonly string[] Products = ["SKU-1001", "SKU-2040", "HW-77-B", "SRV-PLAT-12", "ACC-0042", "LIC-ENT-01"];
    private static readonly string[] Statuses = ["new", "paid", "shipped", "cancelled"];
    private static readonly string[] Departments = ["Engineering", "Sales", "Finance", "Support"];

    public static IReadOnlyList<SampleCustomer> Customers { get; }
    public static IReadOnlyList<SampleOrder> Orders { get; }
    public static IReadOnlyList<SampleSalary> Salaries { get; }

    static SampleDatasource()
    {
        var rnd = new Random(20240611);
        Customers = Enumerable.Range(1, 50).Select(i =>
        {
            var first = First[rnd.Next(First.Length)];
            var last = Last[rnd.Next(Last.Length)];
            var local = $"{first}.{last.Replace("'", "")}{i}".ToLowerInvariant().Replace("ü", "u");
            return new SampleCustomer(i, $"{first} {last}", $"{local}@{(i % 3 == 0 ? "example.org" : "mail.example.com")}",
                $"+1-555-{rnd.Next(200, 999)}-{rnd.Next(1000, 9999)}",
                $"{100 + i * 7:000}-{rnd.Next(10, 99)}-{rnd.Next(1000, 9999)}",
                $"4{rnd.NextInt64(100_000_000_000_000, 999_999_999_999_999)}", Cities[rnd.Next(Cities.Length)]);
        }).ToList();
        Orders = Enumerable.Range(1, 200).Select(i => new SampleOrder(i, rnd.Next(1, 51), Products[rnd.Next(Products.Length)],
            Math.Round((decimal)rnd.NextDouble() * 900 + 10, 2), new DateOnly(2024, 1, 1).AddDays(rnd.Next(0, 365)), Statuses[rnd.Next(Statuses.Length)])).ToList();
        Salaries = Enumerable.Range(1, 30).Select(i => new SampleSalary(i, $"{First[rnd.Next(First.Length)]} {Last[rnd.Next(Last.Length)]}",
            Departments[rnd.Next(Departments.Length)], 40_000m + rnd.Next(0, 90_000) + rnd.Next(1, 99) / 100m)).ToList();
    }

    /// <summary>Creates (or replaces) a SQLite file holding the sample data.</summary>
    public static async Task CreateSqliteAsync(string path, CancellationToken ct = default)
    {
        if (File.Exists(path)) File.Delete(path);
        var cs = new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWriteCreate, Pooling = false }.ToString();
        await using var conn = new SqliteConnection(cs);
        await conn.OpenAsync(ct);
        await PopulateAsync(conn, postgres: false, ct);
    }

    /// <summary>Creates the sample tables and view in an empty database (SQLite or PostgreSQL) and fills them.</summary>
    public static async Task PopulateAsync(DbConnection conn, bool postgres, CancellationToken ct = default)
    {
        var money = postgres ? "numeric(12,2)" : "NUMERIC";
        var date = postgres ? "date" : "TEXT";
        await using var tx = await conn.BeginTransactionAsync(ct);
        foreach (var ddl in new[]
        {
            "CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL, email text NOT NULL, phone text NOT NULL, ssn text NOT NULL, card_number text NOT NULL, city text NOT NULL)",
            $"CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer NOT NULL REFERENCES customers(id), product_code text NOT NULL, amount {money} NOT NULL, ordered_on {date} NOT NULL, status text NOT NULL)",
            $"CREATE TABLE salaries (id integer PRIMARY KEY, employee_name text NOT NULL, department text NOT NULL, amount {money} NOT NULL)",
            $"CREATE VIEW {ContactsView} AS SELECT id, name, email, phone, ssn FROM customers",
        })
            await Exec(ddl);

        foreach (var c in Customers)
            await Exec("INSERT INTO customers VALUES (@id, @name, @email, @phone, @ssn, @card, @city)",
                ("id", c.Id), ("name", c.Name), ("email", c.Email), ("phone", c.Phone), ("ssn", c.Ssn), ("card", c.CardNumber), ("city", c.City));
        foreach (var o in Orders)
            await Exec("INSERT INTO orders VALUES (@id, @cid, @code, @amount, @on, @status)",
                ("id", o.Id), ("cid", o.CustomerId), ("code", o.ProductCode), ("amount", o.Amount),
                ("on", postgres ? o.OrderedOn : o.OrderedOn.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)), ("status", o.Status));
        foreach (var s in Salaries)
            await Exec("INSERT INTO salaries VALUES (@id, @name, @dept, @amount)", ("id", s.Id), ("name", s.EmployeeName), ("dept", s.Department), ("amount", s.Amount));
        await tx.CommitAsync(ct);

        async Task Exec(string sql, params (string Name, object Value)[] args)
        {
            await using var cmd = conn.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = sql;
            foreach (var (name, value) in args)
            {
                var p = cmd.CreateParameter();
                p.ParameterName = name;
                p.Value = value;
                cmd.Parameters.Add(p);
            }
            await cmd.ExecuteNonQueryAsync(ct);
        }
    }
}
