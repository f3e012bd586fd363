using System.Data.Common;
using System.Diagnostics;
using System.Globalization;
using System.Threading.Channels;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using NpgsqlTypes;
using Portal.Domain;
using Portal.Domain.Audit;
using Portal.Domain.Compliance.Retention;
using Portal.Domain.Persistence;

namespace Portal.Bench;

/// <summary>
/// Benchmark 3: the Audit Log page's searches (<see cref="AuditSearch"/>) over a very large trail — the first page of
/// each filter and a keyset page deep in the trail. Also the bulk seeder used to build such a trail quickly with a
/// correct hash chain (the same encoding and hash as <see cref="AuditWriter"/>; the verifier accepts it).
/// </summary>
internal static class SearchBench
{
    /// <summary>Seeds one project with <paramref name="events"/> events, then measures; the database is dropped unless kept.</summary>
    public static async Task RunAsync(DatabaseProvider provider, long events, int runs, bool keep)
    {
        Console.WriteLine($"== audit-search {provider}: {events:N0} events in one project, {runs} runs per search");
        var db = await BenchDatabase.CreateAsync(provider);
        try
        {
            var sw = Stopwatch.StartNew();
            var project = await BulkSeedAsync(db.Database, events);
            Console.WriteLine($"   seeded {events:N0} events in {sw.Elapsed.TotalSeconds:F1} s ({events / sw.Elapsed.TotalSeconds:N0} events/s, bulk load + index build)");
            await MeasureAsync(db.Database, project, runs);
        }
        finally
        {
            if (keep) Console.WriteLine($"   kept: {(provider == DatabaseProvider.Sqlite ? "sqlite" : "postgres")} \"{db.Database.ConnectionString}\"");
            else await db.DisposeAsync();
        }
    }

    // ------------------------------------------------------------------ seeding

    private static readonly string[] Types = ["gateway.query_executed", "gateway.query_denied", "auth.sign_in", "access.mask_changed", "security.key_created"];

    /// <summary>A realistic event; about 2% warnings, 0.1% alerts, 97 actors, 1,013 sessions, one every 3 seconds.</summary>
    public static AuditEvent Event(Guid project, long i, DateTimeOffset at) => new()
    {
        ProjectId = project,
        Id = Guid.CreateVersion7(at),
        OccurredAt = at,
        EventType = Types[i % Types.Length],
        ResourceType = "approved_query",
        ResourceId = $"q-{i % 500}",
        Action = "execute",
        ActorType = "user",
        ActorId = $"user-{i % 97}",
        ActorEmail = $"analyst{i % 97}@example.com",
        ActorRole = "analyst",
        SessionId = $"sess-{i % 1013}",
        Details = "{\"params\":{\"region\":\"EU\",\"limit\":100},\"response\":{\"rows\":" + (i % 1000) + ",\"truncated\":false}}",
        Prompt = "Show revenue by region for last quarter",
        SqlText = "SELECT region, sum(amount) FROM sales WHERE quarter = @q GROUP BY region",
        TablesAccessed = "[\"sales\"]",
        Success = i % 50 != 0,
        ErrorMessage = i % 50 == 0 ? "permission denied for column ssn" : null,
        DurationMs = i % 250,
        RowsReturned = i % 1000,
        SecurityLevel = i % 1000 == 7 ? "alert" : i % 50 == 0 ? "warning" : "normal",
        DataClassifications = "[\"internal\"]",
        ClientIp = "10.1.2.3",
        UserAgent = "Mozilla/5.0 (X11; Linux x86_64) portal-bench",
        RequestId = $"req-{i}",
    };

    /// <summary>
    /// Bulk load for benchmarks: events are built and chained on one thread while another inserts them (SQLite: one
    /// prepared INSERT re-bound per row in 100k-row transactions, synchronous=OFF while loading; PostgreSQL: binary
    /// COPY). The secondary indexes are dropped first and rebuilt at the end (a sort instead of random inserts).
    /// </summary>
    /// <summary>
    /// A live portal creates each month's audit partition ahead of time (AuditPartitions.EnsureAsync); a backfill of a
    /// year at once would otherwise put every month before the window into the default partition, which no real trail
    /// looks like. So the seed creates the months it is about to fill, as the running portal would have.
    /// </summary>
    private static async Task CreateMonthPartitionsAsync(NpgsqlConnection conn, DateTimeOffset from, DateTimeOffset to)
    {
        await using (var kind = new NpgsqlCommand("SELECT relkind::text FROM pg_class WHERE relname = 'audit_events' AND relkind IN ('p', 'r')", conn))
            if ((string?)await kind.ExecuteScalarAsync() != "p") return;
        for (var m = new DateTimeOffset(from.Year, from.Month, 1, 0, 0, 0, TimeSpan.Zero); m <= to; m = m.AddMonths(1))
        {
            var bound = (DateTimeOffset d) => d.ToString("yyyy-MM-dd' 00:00:00+00'", CultureInfo.InvariantCulture);
            await using var cmd = new NpgsqlCommand(
                $"CREATE TABLE IF NOT EXISTS {AuditPartitions.NameOf(m)} PARTITION OF audit_events FOR VALUES FROM ('{bound(m)}') TO ('{bound(m.AddMonths(1))}')", conn);
            await cmd.ExecuteNonQueryAsync();
        }
    }

    public static async Task<Guid> BulkSeedAsync(PortalDatabase database, long events)
    {
        var project = Guid.CreateVersion7();
        var start = DateTimeOffset.UtcNow.AddSeconds(-3 * events);
        start = new DateTimeOffset(start.UtcTicks - start.UtcTicks % TimeSpan.TicksPerSecond, TimeSpan.Zero);
        var channel = Channel.CreateBounded<AuditEvent[]>(8);
        const int Chunk = 10_000;
        var producer = Task.Run(async () =>
        {
            var prev = AuditHash.Genesis();
            var scratch = new byte[4096];
            for (long i = 0; i < events; i += Chunk)
            {
                var n = (int)Math.Min(Chunk, events - i);
                var chunk = new AuditEvent[n];
                for (var k = 0; k < n; k++)
                {
                    var seq = i + k + 1;
                    var e = Event(project, seq, start.AddSeconds(3 * seq));
                    e.Seq = seq;
                    e.PrevHash = prev;
                    var hash = new byte[AuditHash.Size];
                    AuditHash.Compute(e, ref scratch, hash);
                    e.Hash = hash;
                    prev = hash;
                    chunk[k] = e;
                }
                await channel.Writer.WriteAsync(chunk);
            }
            channel.Writer.Complete();
            return prev;
        });

        await using var conn = AuditReaderOpen(database);
        if (database.Provider == DatabaseProvider.Postgres) await CreateMonthPartitionsAsync((NpgsqlConnection)conn, start, DateTimeOffset.UtcNow);
        var indexes = await DropIndexesAsync(conn, database.Provider);
        long last = 0;
        byte[] lastHash = AuditHash.Genesis();
        if (database.Provider == DatabaseProvider.Sqlite)
        {
            var c = (SqliteConnection)conn;
            await Exec(c, "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; PRAGMA cache_size=-262144;");
            using var insert = c.CreateCommand();
            var names = AuditColumns.Split(", ");
            insert.CommandText = $"INSERT INTO audit_events ({AuditColumns}) VALUES ({string.Join(", ", names.Select(n => "@" + n))})";
            foreach (var n in names) insert.Parameters.Add(new SqliteParameter { ParameterName = "@" + n });
            var pid = project.ToString().ToUpperInvariant();
            SqliteTransaction? tx = null;
            long inTx = 0;
            await foreach (var chunk in channel.Reader.ReadAllAsync())
            {
                tx ??= c.BeginTransaction();
                insert.Transaction = tx;
                if (inTx == 0) insert.Prepare();
                var ps = insert.Parameters;
                foreach (var e in chunk)
                {
                    ps[0].Value = pid; ps[1].Value = e.Seq; ps[2].Value = e.Id.ToString().ToUpperInvariant(); ps[3].Value = e.PrevHash; ps[4].Value = e.Hash;
                    ps[5].Value = e.OccurredAt.UtcTicks; ps[6].Value = e.EventType; ps[7].Value = N(e.ResourceType); ps[8].Value = N(e.ResourceId);
                    ps[9].Value = N(e.Action); ps[10].Value = e.ActorType; ps[11].Value = N(e.ActorId); ps[12].Value = N(e.ActorEmail);
                    ps[13].Value = N(e.ActorRole); ps[14].Value = N(e.SessionId); ps[15].Value = N(e.Details); ps[16].Value = N(e.BeforeState);
                    ps[17].Value = N(e.AfterState); ps[18].Value = N(e.Prompt); ps[19].Value = N(e.SqlText); ps[20].Value = N(e.TablesAccessed);
                    ps[21].Value = e.Success ? 1L : 0L; ps[22].Value = N(e.ErrorMessage);
                    ps[23].Value = e.DurationMs is { } d ? d : DBNull.Value; ps[24].Value = e.RowsReturned is { } r ? r : DBNull.Value;
                    ps[25].Value = e.SecurityLevel; ps[26].Value = N(e.DataClassifications); ps[27].Value = N(e.ClientIp);
                    ps[28].Value = N(e.UserAgent); ps[29].Value = N(e.RequestId);
                    insert.ExecuteNonQuery();
                }
                last = chunk[^1].Seq; lastHash = chunk[^1].Hash;
                inTx += chunk.Length;
                if (inTx >= 100_000) { tx.Commit(); tx.Dispose(); tx = null; inTx = 0; }
            }
            if (tx is not null) { tx.Commit(); tx.Dispose(); }
        }
        else
        {
            var c = (NpgsqlConnection)conn;
            await foreach (var chunk in channel.Reader.ReadAllAsync())
            {
                await using var copy = await c.BeginBinaryImportAsync($"COPY audit_events ({AuditColumns}) FROM STDIN (FORMAT BINARY)");
                foreach (var e in chunk)
                {
                    await copy.StartRowAsync();
                    copy.Write(e.ProjectId, NpgsqlDbType.Uuid); copy.Write(e.Seq, NpgsqlDbType.Bigint); copy.Write(e.Id, NpgsqlDbType.Uuid);
                    copy.Write(e.PrevHash, NpgsqlDbType.Bytea); copy.Write(e.Hash, NpgsqlDbType.Bytea); copy.Write(e.OccurredAt, NpgsqlDbType.TimestampTz);
                    copy.Write(e.EventType, NpgsqlDbType.Varchar); T(copy, e.ResourceType); T(copy, e.ResourceId); T(copy, e.Action);
                    copy.Write(e.ActorType, NpgsqlDbType.Varchar); T(copy, e.ActorId); T(copy, e.ActorEmail); T(copy, e.ActorRole); T(copy, e.SessionId);
                    T(copy, e.Details); T(copy, e.BeforeState); T(copy, e.AfterState); T(copy, e.Prompt); T(copy, e.SqlText); T(copy, e.TablesAccessed);
                    copy.Write(e.Success, NpgsqlDbType.Boolean); T(copy, e.ErrorMessage);
                    if (e.DurationMs is { } d) copy.Write(d, NpgsqlDbType.Bigint); else copy.WriteNull();
                    if (e.RowsReturned is { } r) copy.Write(r, NpgsqlDbType.Bigint); else copy.WriteNull();
                    copy.Write(e.SecurityLevel, NpgsqlDbType.Varchar); T(copy, e.DataClassifications); T(copy, e.ClientIp); T(copy, e.UserAgent); T(copy, e.RequestId);
                }
                await copy.CompleteAsync();
                last = chunk[^1].Seq; lastHash = chunk[^1].Hash;
            }
        }
        await producer;
        await using (var head = conn.CreateCommand())
        {
            head.CommandText = "INSERT INTO audit_chain_heads (project_id, seq, hash, updated_at) VALUES (@p, @s, @h, @u)";
            Add(head, "@p", database.Provider == DatabaseProvider.Sqlite ? project.ToString().ToUpperInvariant() : project);
            Add(head, "@s", last);
            Add(head, "@h", lastHash);
            Add(head, "@u", database.Provider == DatabaseProvider.Sqlite ? DateTimeOffset.UtcNow.UtcTicks : DateTimeOffset.UtcNow);
            await head.ExecuteNonQueryAsync();
        }
        var sw = Stopwatch.StartNew();
        if (database.Provider == DatabaseProvider.Postgres) await Exec(conn, "SET maintenance_work_mem = '512MB'");
        foreach (var ddl in indexes) await Exec(conn, ddl);
        await Exec(conn, database.Provider == DatabaseProvider.Sqlite ? "ANALYZE" : "VACUUM ANALYZE audit_events");
        Console.WriteLine($"   (index build + analyze {sw.Elapsed.TotalSeconds:F1} s)");
        return project;
    }

    private const string AuditColumns =
        "project_id, seq, id, prev_hash, hash, occurred_at, event_type, resource_type, resource_id, action, actor_type, actor_id, " +
        "actor_email, actor_role, session_id, details, before_state, after_state, prompt, sql_text, tables_accessed, success, " +
        "error_message, duration_ms, rows_returned, security_level, data_classifications, client_ip, user_agent, request_id";

    private static object N(string? s) => s is null ? DBNull.Value : s;

    private static void T(NpgsqlBinaryImporter copy, string? s)
    {
        if (s is null) copy.WriteNull(); else copy.Write(s, NpgsqlDbType.Text);
    }

    private static DbConnection AuditReaderOpen(PortalDatabase db)
    {
        DbConnection c = db.Provider == DatabaseProvider.Sqlite ? new SqliteConnection(db.ConnectionString) : new NpgsqlConnection(db.ConnectionString);
        c.Open();
        return c;
    }

    private static async Task<List<string>> DropIndexesAsync(DbConnection c, DatabaseProvider provider)
    {
        var ddl = new List<(string Name, string Sql)>();
        await using (var cmd = c.CreateCommand())
        {
            cmd.CommandText = provider == DatabaseProvider.Sqlite
                ? "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_events' AND sql IS NOT NULL"
                : "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'audit_events' AND indexname <> 'pk_audit_events'";
            await using var r = await cmd.ExecuteReaderAsync();
            // A partitioned table's index definition reads "ON ONLY audit_events", which would rebuild an invalid parent
            // index with none on the partitions; without ONLY it cascades to every partition, as the migration's did.
            while (await r.ReadAsync()) ddl.Add((r.GetString(0), r.GetString(1).Replace(" ON ONLY ", " ON ", StringComparison.Ordinal)));
        }
        foreach (var (name, _) in ddl) await Exec(c, $"DROP INDEX \"{name}\"");
        return ddl.Select(d => d.Sql).ToList();
    }

    private static async Task Exec(DbConnection c, string sql)
    {
        await using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        cmd.CommandTimeout = 0;
        await cmd.ExecuteNonQueryAsync();
    }

    private static void Add(DbCommand cmd, string name, object value)
    {
        var p = cmd.CreateParameter();
        p.ParameterName = name;
        p.Value = value;
        cmd.Parameters.Add(p);
    }

    // ------------------------------------------------------------------ measuring

    private sealed class Factory(PortalDatabase database) : IDbContextFactory<PortalDbContext>
    {
        private readonly DbContextOptions<PortalDbContext> options = Build(database);

        private static DbContextOptions<PortalDbContext> Build(PortalDatabase database)
        {
            var b = new DbContextOptionsBuilder<PortalDbContext>();
            PortalDomainServices.Configure(b, database.Provider, database.ConnectionString);
            return b.Options;
        }

        public PortalDbContext CreateDbContext() => new(options);
    }

    /// <summary>Measures an existing trail: the project with the longest chain.</summary>
    public static async Task MeasureExistingAsync(PortalDatabase database, int runs)
    {
        Guid project;
        await using (var c = AuditReaderOpen(database))
        await using (var cmd = c.CreateCommand())
        {
            cmd.CommandText = "SELECT project_id FROM audit_chain_heads ORDER BY seq DESC LIMIT 1";
            var v = await cmd.ExecuteScalarAsync();
            project = v is Guid g ? g : Guid.Parse((string)v!);
        }
        await MeasureAsync(database, project, runs);
    }

    public static async Task MeasureAsync(PortalDatabase database, Guid project, int runs)
    {
        var search = new AuditSearch(new Factory(database));
        long total;
        DateTimeOffset first, lastAt;
        await using (var c = AuditReaderOpen(database))
        await using (var cmd = c.CreateCommand())
        {
            cmd.CommandText = "SELECT seq FROM audit_chain_heads WHERE project_id = @p";
            Add(cmd, "@p", database.Provider == DatabaseProvider.Sqlite ? project.ToString().ToUpperInvariant() : project);
            total = Convert.ToInt64(await cmd.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
        }
        var page = await search.SearchAsync(project, new AuditExportFilter(), null, 1);
        lastAt = page.Events[0].OccurredAt;
        first = lastAt.AddSeconds(-3 * (total - 1));
        // A cursor 90% of the way back: what "Load more" sends after paging that deep (keyset, so no OFFSET cost).
        var deepAt = first.AddSeconds(3 * (total / 10));
        var deep = new AuditCursor(deepAt, total / 10 + 1);
        var weekFrom = first.AddSeconds(3 * (total / 2));
        var searches = new (string Name, AuditExportFilter Filter, string? Session)[]
        {
            ("no filter (newest first)", new AuditExportFilter(), null),
            ("event type", new AuditExportFilter { EventTypes = ["gateway.query_denied"] }, null),
            ("two event types", new AuditExportFilter { EventTypes = ["gateway.query_denied", "auth.sign_in"] }, null),
            ("actor id (1 in 97)", new AuditExportFilter { Actor = "user-42" }, null),
            ("actor email (1 in 97)", new AuditExportFilter { Actor = "analyst42@example.com" }, null),
            ("security level warning (2%)", new AuditExportFilter { SecurityLevel = AuditSecurityLevel.Warning }, null),
            ("security level alert (0.1%)", new AuditExportFilter { SecurityLevel = AuditSecurityLevel.Alert }, null),
            ("session (1 in 1,013)", new AuditExportFilter(), "sess-17"),
            ("date range (one week)", new AuditExportFilter { From = weekFrom, To = weekFrom.AddDays(7) }, null),
            ("text 'column ssn' (2%)", new AuditExportFilter { Text = "column ssn" }, null),
            ("type + actor + week", new AuditExportFilter { EventTypes = ["gateway.query_denied"], Actor = "user-42", From = weekFrom, To = weekFrom.AddDays(7) }, null),
        };
        Console.WriteLine($"   {"search",-30} {"first page p50/p95 ms",24} {"deep page p50/p95 ms",24}  rows");
        foreach (var (name, filter, session) in searches)
        {
            var firstTimes = new double[runs];
            var deepTimes = new double[runs];
            int firstRows = 0, deepRows = 0;
            await search.SearchAsync(project, filter, null, 50, session); // warm-up (plan cache, pages)
            await search.SearchAsync(project, filter, deep, 50, session);
            for (var i = 0; i < runs; i++)
            {
                var t = Stopwatch.GetTimestamp();
                firstRows = (await search.SearchAsync(project, filter, null, 50, session)).Events.Count;
                firstTimes[i] = Stopwatch.GetElapsedTime(t).TotalMilliseconds;
                t = Stopwatch.GetTimestamp();
                // The date-range search pages inside its own window: its deep cursor is the middle of that week.
                var cursor = filter.From is { } f ? new AuditCursor(f.AddDays(3.5), 0) : deep;
                if (filter.From is { } f2) cursor = new AuditCursor(f2.AddDays(3.5), total / 2 + 100_800);
                deepRows = (await search.SearchAsync(project, filter, cursor, 50, session)).Events.Count;
                deepTimes[i] = Stopwatch.GetElapsedTime(t).TotalMilliseconds;
            }
            Array.Sort(firstTimes);
            Array.Sort(deepTimes);
            double P(double[] a, double q) => a[Math.Min(a.Length - 1, (int)Math.Ceiling(q * a.Length) - 1)];
            Console.WriteLine($"   {name,-30} {P(firstTimes, .5),10:F2} / {P(firstTimes, .95),-10:F2}   {P(deepTimes, .5),10:F2} / {P(deepTimes, .95),-10:F2}  {firstRows}/{deepRows}");
        }
    }
}
