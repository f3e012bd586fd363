using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata;
using Portal.Domain.Persistence;
using Portal.Domain.Suite;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Persistence;

/// <summary>The EF model and the SQL scripts in Database/ describe the same schema, on both providers.</summary>
public class SchemaAgreementTests
{
    private sealed record DbColumn(string Table, string Column, bool Nullable, string Type);

    private static async Task<List<DbColumn>> ReadColumnsAsync(TestDatabase db)
    {
        await using var conn = new MigrationRunner(db.Provider, db.ConnectionString).Open();
        var tables = new List<string>();
        await using (var cmd = conn.CreateCommand())
        {
            cmd.CommandText = db.Provider == DatabaseProvider.Sqlite
                ? "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                // Partitions (audit_events_2026_11, audit_events_default) are storage of their parent, which is compared;
                // PostgreSQL gives them the parent's columns by definition.
                : "SELECT table_name FROM information_schema.tables t WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' " +
                  "AND NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = t.table_schema AND c.relname = t.table_name AND c.relispartition)";
            await using var r = await cmd.ExecuteReaderAsync();
            while (await r.ReadAsync()) tables.Add(r.GetString(0));
        }
        var columns = new List<DbColumn>();
        foreach (var table in tables.Where(t => t != "schema_migrations" && !t.StartsWith("qrtz_", StringComparison.OrdinalIgnoreCase)))
        {
            await using var cmd = conn.CreateCommand();
            if (db.Provider == DatabaseProvider.Sqlite)
            {
                cmd.CommandText = $"SELECT name, \"notnull\", pk, type FROM pragma_table_info('{table}')";
                await using var r = await cmd.ExecuteReaderAsync();
                // A SQLite primary key column is NOT NULL in effect even when not declared so.
                while (await r.ReadAsync()) columns.Add(new DbColumn(table, r.GetString(0), r.GetInt64(1) == 0 && r.GetInt64(2) == 0, r.GetString(3).ToUpperInvariant()));
            }
            else
            {
                cmd.CommandText = "SELECT column_name, is_nullable, data_type, character_maximum_length FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = @t";
                var p = cmd.CreateParameter(); p.ParameterName = "@t"; p.Value = table; cmd.Parameters.Add(p);
                await using var r = await cmd.ExecuteReaderAsync();
                while (await r.ReadAsync())
                    columns.Add(new DbColumn(table, r.GetString(0), r.GetString(1) == "YES", r.IsDBNull(3) ? r.GetString(2) : $"{r.GetString(2)}({r.GetInt32(3)})"));
            }
        }
        return columns;
    }

    private static List<DbColumn> ModelColumns(PortalDbContext ctx)
    {
        var columns = new List<DbColumn>();
        foreach (var entity in ctx.Model.GetEntityTypes())
        {
            var table = entity.GetTableName();
            Assert.False(table is null, $"{entity.DisplayName()} is not mapped to a table");
            var store = StoreObjectIdentifier.Table(table!, entity.GetSchema());
            foreach (var p in entity.GetProperties())
                columns.Add(new DbColumn(table!, p.GetColumnName(store)!, p.IsColumnNullable(store), p.GetColumnType(store).ToUpperInvariant() switch
                {
                    // information_schema spells types out; the model may use the short aliases.
                    var t when t.StartsWith("VARCHAR(") => "CHARACTER VARYING" + t[7..],
                    "TIMESTAMPTZ" => "TIMESTAMP WITH TIME ZONE",
                    "INT" or "INT4" => "INTEGER",
                    "INT8" => "BIGINT",
                    "BOOL" => "BOOLEAN",
                    var t => t,
                }));
        }
        return columns;
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Model_and_scripts_have_the_same_tables_columns_and_nullability(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var ctx = db.NewContext();
        var model = ModelColumns(ctx);
        var actual = await ReadColumnsAsync(db);

        var unmappedTables = actual.Select(c => c.Table).Distinct().Except(model.Select(c => c.Table)).ToList();
        Assert.True(unmappedTables.Count == 0, $"Tables without an entity: {string.Join(", ", unmappedTables)}");

        static string Key(DbColumn c) => $"{c.Table}.{c.Column}";
        var missing = model.Select(Key).Except(actual.Select(Key)).ToList();
        var extra = actual.Select(Key).Except(model.Select(Key)).ToList();
        Assert.True(missing.Count == 0, $"Columns in the EF model but not in the database: {string.Join(", ", missing)}");
        Assert.True(extra.Count == 0, $"Columns in the database but not in the EF model: {string.Join(", ", extra)}");

        var byKey = actual.ToDictionary(Key);
        var nullability = model.Where(m => byKey[Key(m)].Nullable != m.Nullable)
            .Select(m => $"{Key(m)} (model {(m.Nullable ? "NULL" : "NOT NULL")}, database {(byKey[Key(m)].Nullable ? "NULL" : "NOT NULL")})").ToList();
        Assert.True(nullability.Count == 0, $"Nullability differs: {string.Join(", ", nullability)}");

        var types = model.Where(m => !string.Equals(byKey[Key(m)].Type, m.Type, StringComparison.OrdinalIgnoreCase))
            .Select(m => $"{Key(m)} (model {m.Type}, database {byKey[Key(m)].Type})").ToList();
        Assert.True(types.Count == 0, $"Column types differ: {string.Join(", ", types)}");
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Every_entity_inserts_fully_populated_and_reads_back_equal(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        var instances = new Dictionary<IEntityType, object>();
        await using (var ctx = db.NewContext())
        {
            var entities = ctx.Model.GetEntityTypes().ToList();
            foreach (var entity in entities)
            {
                var instance = Activator.CreateInstance(entity.ClrType)!;
                var n = 0;
                foreach (var p in entity.GetProperties())
                {
                    n++;
                    // Database-generated keys (identity_user_claims.id) are left to the database.
                    if (p.ValueGenerated == ValueGenerated.OnAdd && p.ClrType == typeof(int)) continue;
                    p.PropertyInfo!.SetValue(instance, SampleValue(p, n));
                }
                instances[entity] = instance;
            }
            // Point every foreign key at the one instance of its principal so constraints hold.
            foreach (var entity in entities)
                foreach (var fk in entity.GetForeignKeys())
                    for (var i = 0; i < fk.Properties.Count; i++)
                        fk.Properties[i].PropertyInfo!.SetValue(instances[entity], fk.PrincipalKey.Properties[i].PropertyInfo!.GetValue(instances[fk.PrincipalEntityType]));
            foreach (var instance in instances.Values) ctx.Add(instance);
            await ctx.SaveChangesAsync();
        }

        await using (var ctx = db.NewContext())
        {
            foreach (var (entity, written) in instances)
            {
                var keyValues = entity.FindPrimaryKey()!.Properties.Select(p => p.PropertyInfo!.GetValue(written)).ToArray();
                var read = await ctx.FindAsync(entity.ClrType, keyValues);
                Assert.True(read is not null, $"{entity.DisplayName()} was not read back");
                foreach (var p in entity.GetProperties())
                {
                    var expected = p.PropertyInfo!.GetValue(written);
                    var actual = p.PropertyInfo.GetValue(read);
                    Assert.True(System.Collections.StructuralComparisons.StructuralEqualityComparer.Equals(expected, actual), $"{entity.DisplayName()}.{p.Name}: wrote {expected}, read {actual}");
                }
            }
        }
    }

    private static object SampleValue(IProperty p, int n)
    {
        var type = Nullable.GetUnderlyingType(p.ClrType) ?? p.ClrType;
        if (type == typeof(string))
        {
            var s = $"v{n}-{p.Name}-äß";
            return p.GetMaxLength() is { } max && s.Length > max ? s[..max] : s;
        }
        if (type == typeof(Guid)) return Guid.CreateVersion7();
        // Microsecond precision: PostgreSQL timestamptz keeps no more.
        if (type == typeof(DateTimeOffset)) return new DateTimeOffset(2026, 3, 4, 5, 6, 7, TimeSpan.Zero).AddTicks(1_234_560 + n * 10);
        if (type == typeof(bool)) return true;
        if (type == typeof(int)) return 40 + n;
        if (type == typeof(long)) return 4_000_000_000L + n;
        if (type == typeof(Tier)) return Tier.Enterprise;
        if (type == typeof(byte[])) return Enumerable.Range(0, 32).Select(i => (byte)(i * 7 + n)).ToArray();
        if (type.IsEnum) return Enum.GetValues(type).GetValue(Enum.GetValues(type).Length - 1)!;
        throw new InvalidOperationException($"Add a sample value for {type.Name} ({p.DeclaringType.DisplayName()}.{p.Name}).");
    }
}
