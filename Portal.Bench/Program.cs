using System.Diagnostics;
using System.Globalization;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using Portal.Domain;
using Portal.Domain.Audit;
using Portal.Domain.Persistence;

namespace Portal.Bench;

/// <summary>
/// Throughput runs for the audit trail (see BENCHMARKS.md). Plain Stopwatch timing: these are multi-second runs where
/// BenchmarkDotNet's per-invocation statistics add nothing. Also hosts the "ingest-until-killed" child used by the
/// kill -9 durability test.
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args.Length == 0)
        {
            Console.Error.WriteLine("""
                usage:
                  audit-ingest  [sqlite|postgres|both] [events=200000] [naive-events=3000] [producers=64] [in-flight=16]
                  audit-verify  [sqlite|postgres|both] [events=1000000]
                  audit-export  [sqlite|postgres|both] [events=1000000]
                  audit-seed    <sqlite|postgres> <connection-string> <events> [projects=1]
                  audit-search  [sqlite|postgres|both] [events=10000000] [runs=20] [keep=0]
                  audit-search-at <sqlite|postgres> <connection-string> [runs=20]
                  audit-export-at <sqlite|postgres> <connection-string> [folder]   (two exports of the longest chain of an existing database)
                  audit-verify-at <sqlite|postgres> <connection-string> [runs=1]   (the longest chain of an existing database)
                  gateway-overhead [sqlite|postgres|both] [calls=3000] [wrk-seconds=10] [connections=32]
                  ingest-until-killed <sqlite|postgres> <connection-string> <ack-file>
                  security-scan    [sqlite|postgres|both] [events=1000000]
                  security-quality [sqlite|postgres|both] [seed=20261122] [calls-per-day=40]
                  siem-export       [sqlite|postgres] [events=300000]
                  webhook-dispatch  [sqlite|postgres] [deliveries=5000]
                  archive           [sqlite|postgres] [events=1000000]
                  report-soc2   [sqlite|postgres|both] [events=1000000] [keep=0]
                  report-soc2-at <sqlite|postgres> <connection-string> <project-id> <folder> [runs=1]   (a database kept by report-soc2 ... 1)
                PostgreSQL runs need PORTAL_BENCH_PG (an admin connection string); each run creates and drops its own database.
                """);
            return 2;
        }
        var rest = args.Skip(1).ToArray();
        switch (args[0])
        {
            case "audit-ingest":
                foreach (var p in Providers(rest)) await Ingest(p, Arg(rest, 1, 200_000), Arg(rest, 2, 3_000), (int)Arg(rest, 3, 64), (int)Arg(rest, 4, 16));
                return 0;
            case "audit-verify":
                foreach (var p in Providers(rest)) await Verify(p, Arg(rest, 1, 1_000_000));
                return 0;
            case "audit-export":
                foreach (var p in Providers(rest)) await Export(p, Arg(rest, 1, 1_000_000));
                return 0;
            case "audit-seed":
                await Seed(new PortalDatabase(ParseProvider(rest[0]), rest[1]), long.Parse(rest[2], CultureInfo.InvariantCulture), (int)Arg(rest, 3, 1));
                return 0;
            case "audit-search":
                foreach (var p in Providers(rest)) await SearchBench.RunAsync(p, Arg(rest, 1, 10_000_000), (int)Arg(rest, 2, 20), Arg(rest, 3, 0) == 1);
                return 0;
            case "audit-export-at":
                await ExportExisting(new PortalDatabase(ParseProvider(rest[0]), rest[1]), rest.Length > 2 ? rest[2] : Path.Combine(Path.GetTempPath(), "portal-bench", "export-at"));
                return 0;
            case "audit-verify-at":
                await VerifyExisting(new PortalDatabase(ParseProvider(rest[0]), rest[1]), (int)Arg(rest, 2, 1));
                return 0;
            case "audit-search-at":
                await SearchBench.MeasureExistingAsync(new PortalDatabase(ParseProvider(rest[0]), rest[1]), (int)Arg(rest, 2, 20));
                return 0;
            case "gateway-overhead":
                foreach (var p in Providers(rest)) await GatewayBench.RunAsync(p, (int)Arg(rest, 1, 3_000), (int)Arg(rest, 2, 10), (int)Arg(rest, 3, 32));
                return 0;
            case "security-scan":
                foreach (var p in Providers(rest)) await SecurityBench.ScanAsync(p, Arg(rest, 1, 1_000_000));
                return 0;
            case "security-quality":
                foreach (var p in Providers(rest)) await SecurityBench.QualityAsync(p, (int)Arg(rest, 1, 20261122), (int)Arg(rest, 2, 40));
                return 0;
            case "siem-export" or "webhook-dispatch" or "archive":
                return await IntegrationsBench.RunAsync(args[0], rest);
            case "report-soc2":
                foreach (var p in Providers(rest)) await ReportBench.RunAsync(p, Arg(rest, 1, 1_000_000), Arg(rest, 2, 0) == 1);
                return 0;
            case "report-soc2-at":
                await ReportBench.RunExistingAsync(ParseProvider(rest[0]), rest[1], Guid.Parse(rest[2]), rest[3], (int)Arg(rest, 4, 1));
                return 0;
            case "report-seed":
                await ReportBench.SeedAsync(new PortalDatabase(ParseProvider(rest[0]), rest[1]), long.Parse(rest[2], CultureInfo.InvariantCulture), Guid.Parse(rest[3]));
                return 0;
            case "ingest-until-killed":
                await IngestUntilKilled(new PortalDatabase(ParseProvider(rest[0]), rest[1]), rest[2]);
                return 0;
            default:
                Console.Error.WriteLine($"unknown command {args[0]}");
                return 2;
        }
    }

    private static long Arg(string[] a, int i, long fallback) => a.Length > i ? long.Parse(a[i], CultureInfo.InvariantCulture) : fallback;

    private static DatabaseProvider ParseProvider(string s) => s == "postgres" ? DatabaseProvider.Postgres : DatabaseProvider.Sqlite;

    private static IEnumerable<DatabaseProvider> Providers(string[] a) => (a.Length > 0 ? a[0] : "both") switch
    {
        "sqlite" => [DatabaseProvider.Sqlite],
        "postgres" => [DatabaseProvider.Postgres],
        _ => [DatabaseProvider.Sqlite, DatabaseProvider.Postgres],
    };

    // ---------------------------------------------------------------- ingest

    /// <summary>
    /// Runs the group-commit writer twice — each producer with one append outstanding, then with
    /// <paramref name="inFlight"/> outstanding (a producer standing for a gateway connection serving several requests)
    /// — and the naive writer once, each on a fresh database.
    /// </summary>
    private static async Task Ingest(DatabaseProvider provider, long events, long naiveEvents, int producers, int inFlight)
    {
        Console.WriteLine($"== audit-ingest {provider}: {producers} producers, {events:N0} events per group-commit run, {naiveEvents:N0} events naive");
        var projects = Enumerable.Range(0, 8).Select(_ => Guid.CreateVersion7()).ToArray();
        var rates = new List<double>();
        foreach (var depth in new[] { 1, inFlight })
        {
            await using var db = await BenchDatabase.CreateAsync(provider);
            // Warm-up (JIT, connection, pages) outside the measurement.
            await using (var warm = new AuditWriter(db.Database, TimeProvider.System))
                await RunProducers(producers * depth, 5_000, projects, d => warm.AppendAsync(d));
            await using var writer = new AuditWriter(db.Database, TimeProvider.System);
            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            var (elapsed, waits) = await RunProducers(producers * depth, events, projects, d => writer.AppendAsync(d));
            var cpuUsed = Process.GetCurrentProcess().TotalProcessorTime - cpu;
            rates.Add(events / elapsed.TotalSeconds);
            Report($"group commit, {depth} in flight/producer", events, elapsed, waits);
            Console.WriteLine($"      {writer.BatchesWritten:N0} batches, {writer.EventsWritten / (double)writer.BatchesWritten:F1} events/batch, " +
                $"writer busy {writer.WriteTime.TotalSeconds:F2} s ({writer.WriteTime.TotalMilliseconds / writer.BatchesWritten:F2} ms/batch), process CPU {cpuUsed.TotalSeconds:F2} s");
            foreach (var p in projects)
            {
                var v = await new AuditVerifier(db.Database).VerifyAsync(p);
                if (!v.Ok) throw new InvalidOperationException(v.ToString());
            }
        }
        double naiveRate;
        await using (var db = await BenchDatabase.CreateAsync(provider))
        {
            await using var naive = new NaiveWriter(db.Database);
            await RunProducers(producers, 200, projects, naive.AppendAsync);
            var (elapsed, waits) = await RunProducers(producers, naiveEvents, projects, naive.AppendAsync);
            naiveRate = naiveEvents / elapsed.TotalSeconds;
            Report("naive SaveChanges per event", naiveEvents, elapsed, waits);
        }
        Console.WriteLine($"   ratio group/naive: {rates[0] / naiveRate:F1}x (1 in flight), {rates[1] / naiveRate:F1}x ({inFlight} in flight)");
    }

    private static void Report(string name, long events, TimeSpan elapsed, double[] waits)
    {
        Array.Sort(waits);
        Console.WriteLine($"   {name,-36} {events / elapsed.TotalSeconds,12:N0} events/s  ({events:N0} in {elapsed.TotalSeconds:F2} s)  " +
            $"wait p50 {Pct(waits, 0.50):F2} ms  p99 {Pct(waits, 0.99):F2} ms  max {waits[^1]:F2} ms");
    }

    private static double Pct(double[] sorted, double q) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)];

    private static async Task<(TimeSpan Elapsed, double[] Waits)> RunProducers(int producers, long events, Guid[] projects, Func<AuditEventDraft, Task<AuditReceipt>> append)
    {
        long next = 0;
        var waits = new double[events];
        var sw = Stopwatch.StartNew();
        var tasks = Enumerable.Range(0, producers).Select(p => Task.Run(async () =>
        {
            while (true)
            {
                var i = Interlocked.Increment(ref next) - 1;
                if (i >= events) return;
                var draft = Sample.Draft(projects[i % projects.Length], i);
                var start = Stopwatch.GetTimestamp();
                await append(draft);
                waits[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }
        })).ToArray();
        await Task.WhenAll(tasks);
        return (sw.Elapsed, waits);
    }

    // ---------------------------------------------------------------- verify / export

    private static async Task Verify(DatabaseProvider provider, long events)
    {
        Console.WriteLine($"== audit-verify {provider}: {events:N0} events in one project");
        await using var db = await BenchDatabase.CreateAsync(provider);
        var project = await SeedInChild(db, events);
        var verifier = new AuditVerifier(db.Database);
        await verifier.VerifyAsync(project); // warm-up: JIT and page cache
        for (var run = 1; run <= 3; run++)
        {
            var sw = Stopwatch.StartNew();
            var result = await verifier.VerifyAsync(project);
            sw.Stop();
            if (!result.Ok || result.EventsChecked != events) throw new InvalidOperationException(result.ToString());
            Console.WriteLine($"   run {run}: {events:N0} events verified in {sw.Elapsed.TotalSeconds:F2} s = {events / sw.Elapsed.TotalSeconds:N0} events/s");
        }
    }

    private static async Task<(Guid Project, long Events)> LongestChain(PortalDatabase database)
    {
        await using var c = database.Provider == DatabaseProvider.Sqlite ? (System.Data.Common.DbConnection)new SqliteConnection(database.ConnectionString) : new NpgsqlConnection(database.ConnectionString);
        await c.OpenAsync();
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT project_id, seq FROM audit_chain_heads ORDER BY seq DESC LIMIT 1";
        await using var r = await cmd.ExecuteReaderAsync();
        await r.ReadAsync();
        return (r.GetValue(0) is Guid g ? g : Guid.Parse(r.GetString(0)), r.GetInt64(1));
    }

    private static async Task VerifyExisting(PortalDatabase database, int runs)
    {
        var (project, events) = await LongestChain(database);
        Console.WriteLine($"== audit-verify-at {database.Provider}: {events:N0} events in one project (no warm-up pass)");
        var verifier = new AuditVerifier(database);
        for (var run = 1; run <= runs; run++)
        {
            var sw = Stopwatch.StartNew();
            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            var result = await verifier.VerifyAsync(project);
            sw.Stop();
            var used = Process.GetCurrentProcess().TotalProcessorTime - cpu;
            if (!result.Ok || result.EventsChecked != events) throw new InvalidOperationException(result.ToString());
            Console.WriteLine($"   run {run}: {events:N0} events verified in {sw.Elapsed.TotalSeconds:F2} s = {events / sw.Elapsed.TotalSeconds:N0} events/s (process CPU {used.TotalSeconds:F1} s = {events / used.TotalSeconds:N0} events per CPU-second)");
        }
    }

    private static async Task Export(DatabaseProvider provider, long events)
    {
        Console.WriteLine($"== audit-export {provider}: {events:N0} events to CSV");
        await using var db = await BenchDatabase.CreateAsync(provider);
        var project = await SeedInChild(db, events);
        await ExportRuns(db.Database, project, db.Folder);
    }

    /// <summary>The export of an existing database's longest chain (a database kept from an earlier run).</summary>
    private static async Task ExportExisting(PortalDatabase database, string folder)
    {
        var (project, events) = await LongestChain(database);
        Console.WriteLine($"== audit-export-at {database.Provider}: {events:N0} events to CSV");
        Directory.CreateDirectory(folder);
        await ExportRuns(database, project, folder);
    }

    private static async Task ExportRuns(PortalDatabase database, Guid project, string folder)
    {
        await using var writer = new AuditWriter(database, TimeProvider.System);
        var exporter = new AuditExporter(database, writer);
        var file = Path.Combine(folder, "export.csv");
        // Run 1 is the first export of a fresh process (the JIT still compiling the export's code); run 2 is the same
        // export again, as it runs in a portal that has exported before. Each run's memory is sampled on its own.
        for (var run = 1; run <= 2; run++)
        {
            GC.Collect();
            var before = Process.GetCurrentProcess().WorkingSet64;
            var sampler = new MemorySampler();
            var sw = Stopwatch.StartNew();
            long rows;
            await using (var output = new FileStream(file, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
                rows = await exporter.ExportAsync(project, new AuditExportFilter(), AuditExportFormat.Csv, output, AuditActor.System);
            sw.Stop();
            sampler.Dispose();
            var proc = Process.GetCurrentProcess();
            var info = GC.GetGCMemoryInfo();
            Console.WriteLine($"   run {run} ({(run == 1 ? "fresh process" : "exported before")}): {rows:N0} rows, {new FileInfo(file).Length / 1048576.0:F0} MB CSV in {sw.Elapsed.TotalSeconds:F2} s ({rows / sw.Elapsed.TotalSeconds:N0} rows/s)");
            Console.WriteLine($"     peak working set of the process so far {proc.PeakWorkingSet64 / 1048576.0:F0} MB (before this export {before / 1048576.0:F0} MB), " +
                $"GC heap {info.HeapSizeBytes / 1048576.0:F0} MB, managed heap now {GC.GetTotalMemory(false) / 1048576.0:F0} MB");
            Console.WriteLine($"     {sampler.Describe()}");
        }
    }

    /// <summary>Fills the database in a child process so the seeding's memory does not count in this process's peak.</summary>
    private static async Task<Guid> SeedInChild(BenchDatabase db, long events)
    {
        var sw = Stopwatch.StartNew();
        var psi = new ProcessStartInfo(Environment.ProcessPath!) { UseShellExecute = false, RedirectStandardOutput = true };
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath!) == "dotnet") psi.ArgumentList.Add(typeof(Program).Assembly.Location);
        foreach (var a in new[] { "audit-seed", db.Database.Provider == DatabaseProvider.Sqlite ? "sqlite" : "postgres", db.Database.ConnectionString, events.ToString(CultureInfo.InvariantCulture) })
            psi.ArgumentList.Add(a);
        using var child = Process.Start(psi)!;
        var output = await child.StandardOutput.ReadToEndAsync();
        await child.WaitForExitAsync();
        if (child.ExitCode != 0) throw new InvalidOperationException("seeding failed: " + output);
        var project = Guid.Parse(output.Trim().Split('\n')[^1]);
        Console.WriteLine($"   seeded {events:N0} events in {sw.Elapsed.TotalSeconds:F1} s (child process)");
        if (db.Database.Provider == DatabaseProvider.Postgres && Environment.GetEnvironmentVariable("PORTAL_BENCH_COLD") != "1")
        {
            // A bulk load leaves every row without its commit hint bits, so the first read of the table also rewrites
            // every page. In service, autovacuum (insert-triggered since PostgreSQL 13) and earlier reads have done that
            // long before anyone exports; VACUUM here gives the benchmark that steady state. PORTAL_BENCH_COLD=1 skips it
            // to measure the first read straight after a bulk load.
            sw.Restart();
            await using var c = new NpgsqlConnection(db.Database.ConnectionString);
            await c.OpenAsync();
            await using var vacuum = new NpgsqlCommand("VACUUM (ANALYZE) audit_events", c) { CommandTimeout = 600 };
            await vacuum.ExecuteNonQueryAsync();
            Console.WriteLine($"   VACUUM (ANALYZE) audit_events after the bulk load: {sw.Elapsed.TotalSeconds:F1} s");
        }
        return project;
    }

    private static async Task Seed(PortalDatabase database, long events, int projectCount)
    {
        await database.CreateMigrationRunner().RunAsync(); // a new file or database gets the schema first
        var projects = Enumerable.Range(0, projectCount).Select(_ => Guid.CreateVersion7()).ToArray();
        await using var writer = new AuditWriter(database, TimeProvider.System, options: new AuditWriterOptions { MaxBatchSize = 20_000 });
        // Many events in flight per producer: seeding wants bulk speed, not per-request latency.
        await RunProducers(256, events, projects, d => writer.AppendAsync(d));
        Console.WriteLine(projects[0]);
    }

    // ---------------------------------------------------------------- kill -9 child

    private static async Task IngestUntilKilled(PortalDatabase database, string ackFile)
    {
        var projects = Enumerable.Range(0, 4).Select(_ => Guid.CreateVersion7()).ToArray();
        await using var writer = new AuditWriter(database, TimeProvider.System);
        await using var acks = new StreamWriter(new FileStream(ackFile, FileMode.Create, FileAccess.Write, FileShare.ReadWrite));
        var gate = new Lock();
        long next = 0;
        var tasks = Enumerable.Range(0, 16).Select(_ => Task.Run(async () =>
        {
            while (true)
            {
                var i = Interlocked.Increment(ref next);
                var receipt = await writer.AppendAsync(Sample.Draft(projects[i % projects.Length], i));
                lock (gate)
                {
                    // Written only after the append returned: every line names an acknowledged event.
                    acks.WriteLine($"{receipt.ProjectId} {receipt.Seq} {receipt.Id}");
                    acks.Flush();
                }
            }
        })).ToArray();
        await Task.WhenAll(tasks);
    }
}

internal static class Sample
{
    private static readonly string[] Types = ["query.executed", "query.denied", "auth.sign_in", "mask.changed", "key.created"];

    public static AuditEventDraft Draft(Guid project, long i) => new()
    {
        ProjectId = project,
        EventType = Types[i % Types.Length],
        Actor = new AuditActor("user", $"user-{i % 97}", $"analyst{i % 97}@example.com", "analyst", $"sess-{i % 1013}",
            "10.1.2.3", "Mozilla/5.0 (X11; Linux x86_64) portal-bench", $"req-{i}"),
        ResourceType = "query",
        ResourceId = $"q-{i % 500}",
        Action = "execute",
        Details = "{\"params\":{\"region\":\"EU\",\"limit\":100},\"response\":{\"rows\":" + (i % 1000) + ",\"truncated\":false}}",
        Prompt = "Show revenue by region for last quarter",
        SqlText = "SELECT region, sum(amount) FROM sales WHERE quarter = @q GROUP BY region",
        TablesAccessed = ["sales"],
        Success = i % 50 != 0,
        ErrorMessage = i % 50 == 0 ? "permission denied for column ssn" : null,
        DurationMs = i % 250,
        RowsReturned = i % 1000,
        SecurityLevel = i % 50 == 0 ? AuditSecurityLevel.Warning : AuditSecurityLevel.Normal,
        DataClassifications = ["internal"],
    };
}

/// <summary>A throwaway database for one run: a SQLite file in a temp folder or a new PostgreSQL database.</summary>
internal sealed class BenchDatabase : IAsyncDisposable
{
    public required PortalDatabase Database { get; init; }
    public required string Folder { get; init; }
    private string? pgName;
    private string? admin;

    public static async Task<BenchDatabase> CreateAsync(DatabaseProvider provider)
    {
        var folder = Path.Combine(Path.GetTempPath(), "portal-bench", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        BenchDatabase db;
        if (provider == DatabaseProvider.Sqlite)
        {
            var cs = new SqliteConnectionStringBuilder { DataSource = Path.Combine(folder, "portal.db"), Pooling = true, DefaultTimeout = 30 }.ToString();
            db = new BenchDatabase { Database = new PortalDatabase(provider, cs), Folder = folder };
        }
        else
        {
            var admin = Environment.GetEnvironmentVariable("PORTAL_BENCH_PG") is { Length: > 0 } a ? a
                : throw new InvalidOperationException("Set PORTAL_BENCH_PG to an admin connection string for the PostgreSQL runs.");
            var name = "bench_" + Guid.NewGuid().ToString("N")[..16];
            await using (var c = new NpgsqlConnection(admin))
            {
                await c.OpenAsync();
                await using var cmd = new NpgsqlCommand($"CREATE DATABASE {name}", c);
                await cmd.ExecuteNonQueryAsync();
            }
            var cs = new NpgsqlConnectionStringBuilder(admin) { Database = name }.ToString();
            db = new BenchDatabase { Database = new PortalDatabase(provider, cs), Folder = folder, pgName = name, admin = admin };
        }
        await db.Database.CreateMigrationRunner().RunAsync();
        return db;
    }

    public async ValueTask DisposeAsync()
    {
        SqliteConnection.ClearAllPools();
        NpgsqlConnection.ClearAllPools();
        if (pgName is not null)
        {
            await using var c = new NpgsqlConnection(admin);
            await c.OpenAsync();
            await using var cmd = new NpgsqlCommand($"DROP DATABASE IF EXISTS {pgName} WITH (FORCE)", c);
            await cmd.ExecuteNonQueryAsync();
        }
        try { Directory.Delete(Folder, true); } catch (IOException) { }
    }
}

/// <summary>
/// The baseline: what a straightforward implementation does — one EF Core SaveChanges (one durable transaction) per
/// event, with the chain head kept consistent by serializing appends.
/// </summary>
internal sealed class NaiveWriter : IAsyncDisposable
{
    private readonly PortalDatabase database;
    private readonly SemaphoreSlim gate = new(1, 1);
    private readonly SqliteConnection? sqlite;
    private readonly Dictionary<Guid, (long Seq, byte[] Hash)> heads = new();

    public NaiveWriter(PortalDatabase database)
    {
        this.database = database;
        if (database.Provider == DatabaseProvider.Sqlite)
        {
            sqlite = new SqliteConnection(database.ConnectionString);
            sqlite.Open();
            using var cmd = sqlite.CreateCommand();
            cmd.CommandText = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;";
            cmd.ExecuteNonQuery();
        }
    }

    public async Task<AuditReceipt> AppendAsync(AuditEventDraft d)
    {
        await gate.WaitAsync();
        try
        {
            var b = new DbContextOptionsBuilder<PortalDbContext>();
            if (sqlite is not null) b.UseSqlite(sqlite); else b.UseNpgsql(database.ConnectionString);
            await using var ctx = new PortalDbContext(b.Options);
            var at = DateTimeOffset.UtcNow;
            at = new DateTimeOffset(at.UtcTicks - at.UtcTicks % 10, TimeSpan.Zero);
            var head = heads.TryGetValue(d.ProjectId, out var h) ? h : (0, AuditHash.Genesis());
            var e = new AuditEvent
            {
                ProjectId = d.ProjectId, Seq = head.Seq + 1, Id = Guid.CreateVersion7(at), PrevHash = head.Hash, OccurredAt = at,
                EventType = d.EventType, ResourceType = d.ResourceType, ResourceId = d.ResourceId, Action = d.Action,
                ActorType = d.Actor.Type, ActorId = d.Actor.Id, ActorEmail = d.Actor.Email, ActorRole = d.Actor.Role,
                SessionId = d.Actor.SessionId, Details = d.Details, Prompt = d.Prompt, SqlText = d.SqlText,
                TablesAccessed = d.TablesAccessed is null ? null : System.Text.Json.JsonSerializer.Serialize(d.TablesAccessed),
                Success = d.Success, ErrorMessage = d.ErrorMessage, DurationMs = d.DurationMs, RowsReturned = d.RowsReturned,
                SecurityLevel = d.SecurityLevel.ToString().ToLowerInvariant(),
                DataClassifications = d.DataClassifications is null ? null : System.Text.Json.JsonSerializer.Serialize(d.DataClassifications),
                ClientIp = d.Actor.ClientIp, UserAgent = d.Actor.UserAgent, RequestId = d.Actor.RequestId,
            };
            e.Hash = AuditHash.Compute(e);
            ctx.AuditEvents.Add(e);
            if (head.Seq == 0) ctx.AuditChainHeads.Add(new AuditChainHead { ProjectId = d.ProjectId, Seq = e.Seq, Hash = e.Hash, UpdatedAt = at });
            else
            {
                var row = new AuditChainHead { ProjectId = d.ProjectId, Seq = head.Seq, Hash = head.Hash, UpdatedAt = at };
                ctx.AuditChainHeads.Attach(row);
                row.Seq = e.Seq; row.Hash = e.Hash;
            }
            await ctx.SaveChangesAsync();
            heads[d.ProjectId] = (e.Seq, e.Hash);
            return new AuditReceipt(e.Id, e.ProjectId, e.Seq, Convert.ToHexStringLower(e.Hash));
        }
        finally { gate.Release(); }
    }

    public async ValueTask DisposeAsync()
    {
        if (sqlite is not null) await sqlite.DisposeAsync();
    }
}
