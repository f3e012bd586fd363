using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using Portal.Domain;
using Portal.Domain.Access;
using Portal.Domain.Audit;
using Portal.Domain.Gateway;
using Portal.Domain.Gateway.Catalog;
using Portal.Domain.Persistence;
using Portal.Domain.Security.ApiKeys;
using Portal.Domain.Security.RateLimits;
using Portal.Domain.Suite;
using Portal.Domain.Tenancy;
using Portal.Hosting;

namespace Portal.Bench;

/// <summary>
/// Benchmark 2: what the governed pipeline adds to one parameterized query on the demo SQLite datasource.
/// Hosts the real portal (AddPortal/UsePortal, so the gateway endpoint, middleware and services are the product's)
/// plus ONE bench-only route, /bench/bare/{id}, that runs the same SQL with plain ADO.NET. That route exists only in
/// this process; the product never maps it.
/// </summary>
internal static class GatewayBench
{
    private const string LookupSql = "SELECT id, name, email, phone, ssn, card_number, city FROM customers WHERE id = @customer_id";

    public static async Task RunAsync(DatabaseProvider provider, int calls, int wrkSeconds, int connections)
    {
        Console.WriteLine($"== gateway-overhead, portal database {provider}: {calls:N0} in-process calls each, wrk {connections} connections x {wrkSeconds} s");
        var folder = Path.Combine(Path.GetTempPath(), "portal-bench", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        string connectionString;
        string? pgName = null, admin = null;
        if (provider == DatabaseProvider.Sqlite)
            connectionString = new SqliteConnectionStringBuilder { DataSource = Path.Combine(folder, "portal.db"), Pooling = true, DefaultTimeout = 30 }.ToString();
        else
        {
            admin = Environment.GetEnvironmentVariable("PORTAL_BENCH_PG") is { Length: > 0 } a ? a
                : throw new InvalidOperationException("Set PORTAL_BENCH_PG to an admin connection string for the PostgreSQL runs.");
            pgName = "bench_" + Guid.NewGuid().ToString("N")[..16];
            await using (var c = new NpgsqlConnection(admin)) { await c.OpenAsync(); await using var cmd = new NpgsqlCommand($"CREATE DATABASE {pgName}", c); await cmd.ExecuteNonQueryAsync(); }
            connectionString = new NpgsqlConnectionStringBuilder(admin) { Database = pgName, MaxPoolSize = 100 }.ToString();
        }
        try
        {
            await RunWithPortalAsync(provider, connectionString, folder, calls, wrkSeconds, connections);
        }
        finally
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
            try { Directory.Delete(folder, true); } catch (IOException) { }
        }
    }

    private static async Task RunWithPortalAsync(DatabaseProvider provider, string connectionString, string folder, int calls, int wrkSeconds, int connections)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { ApplicationName = "Portal", EnvironmentName = Environments.Production, Args = [] });
        builder.Configuration["Database:Provider"] = provider == DatabaseProvider.Sqlite ? "Sqlite" : "Postgres";
        builder.Configuration["Database:ConnectionString"] = connectionString;
        builder.Configuration["Database:DataDirectory"] = Path.Combine(folder, "data");
        // The scheduler would add unrelated background work to the measurement.
        builder.Configuration["Jobs:RunInPortal"] = "false";
        builder.Configuration["Urls"] = "http://127.0.0.1:0";
        builder.Configuration["Logging:LogLevel:Default"] = "Warning";
        // PORTAL_BENCH_WRITE_WHEN_IDLE=0: every audit event goes through the writer thread (the behaviour before callers
        // could commit their own event when the writer is idle), for A/B runs in one build.
        if (Environment.GetEnvironmentVariable("PORTAL_BENCH_WRITE_WHEN_IDLE") == "0")
            builder.Services.AddSingleton(new Portal.Domain.Audit.AuditWriterOptions { WriteWhenIdle = false });
        builder.AddPortal();
        var app = builder.Build();
        app.UsePortal();
        // The bench-only baseline: same SQL, same parameter, plain ADO.NET on a pooled connection, JSON rows back.
        app.MapPost("/bench/bare/{id}", BareAsync).AllowAnonymous().DisableAntiforgery();
        await app.PrepareAsync();

        var (projectId, queryId, key, datasourceFile) = await SeedAsync(app.Services);
        bareConnectionString = new SqliteConnectionStringBuilder { DataSource = datasourceFile, Mode = SqliteOpenMode.ReadOnly, Pooling = true }.ToString();
        await app.StartAsync();
        try
        {
            var url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            await InProcessAsync(app.Services, key, queryId, calls);
            await BreakdownAsync(app.Services, key, queryId, Math.Max(500, calls / 4));
            if (wrkSeconds > 0) await WrkAsync(url, key, queryId, wrkSeconds, connections, folder, app.Services.GetRequiredService<Portal.Domain.Audit.AuditWriter>());
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
        _ = projectId;
    }

    private static string bareConnectionString = "";

    private static async Task<IResult> BareAsync(string id, HttpContext ctx)
    {
        using var doc = await JsonDocument.ParseAsync(ctx.Request.Body, cancellationToken: ctx.RequestAborted);
        var customerId = doc.RootElement.GetProperty("parameters").GetProperty("customer_id").GetInt64();
        return Results.Ok(new { rows = await DirectAsync(customerId) });
    }

    private static async Task<List<object?[]>> DirectAsync(long customerId)
    {
        await using var conn = new SqliteConnection(bareConnectionString);
        await conn.OpenAsync();
        await using var cmd = conn.CreateCommand();
        cmd.CommandText = LookupSql;
        cmd.Parameters.AddWithValue("@customer_id", customerId);
        await using var r = await cmd.ExecuteReaderAsync();
        var rows = new List<object?[]>();
        while (await r.ReadAsync())
        {
            var row = new object?[r.FieldCount];
            r.GetValues(row!);
            rows.Add(row);
        }
        return rows;
    }

    private static async Task<(Guid Project, Guid Query, string Key, string DatasourceFile)> SeedAsync(IServiceProvider services)
    {
        await using var scope = services.CreateAsyncScope();
        var demo = await scope.ServiceProvider.GetRequiredService<SetupService>().SeedDemoAsync() ?? throw new InvalidOperationException("demo not seeded");
        var dbFactory = services.GetRequiredService<IDbContextFactory<PortalDbContext>>();
        await using var db = await dbFactory.CreateDbContextAsync();
        var adminId = await db.Users.Where(u => u.Email == "admin@demo.local").Select(u => u.Id).SingleAsync();
        var queryId = await db.Set<ApprovedQuery>().Where(q => q.ProjectId == demo.ProjectId && q.Name == DemoCatalog.CustomerLookup).Select(q => q.Id).SingleAsync();
        var ds = await db.Set<Datasource>().Where(d => d.ProjectId == demo.ProjectId).SingleAsync();
        var key = await services.GetRequiredService<ApiKeyService>().CreateAsync(demo.ProjectId, new CreateApiKeyRequest("bench agent", Roles.User), adminId);
        var file = Directory.GetFiles(Path.Combine(services.GetRequiredService<DatabaseOptions>().DataDirectory, DatasourceService.DatasourcesFolder), $"demo-{demo.ProjectId:N}.db").Single();
        _ = ds;
        return (demo.ProjectId, queryId, key.Secret, file);
    }

    private static JsonElement Parameters(long customerId) => JsonDocument.Parse($"{{\"customer_id\":{customerId}}}").RootElement.Clone();

    /// <summary>Governed and direct calls interleaved one for one, so both see the same machine load.</summary>
    private static async Task InProcessAsync(IServiceProvider services, string key, Guid queryId, int calls)
    {
        var gateway = services.GetRequiredService<GatewayService>();
        var request = new GatewayRequestContext("127.0.0.1", "portal-bench", "bench");
        var parameters = Enumerable.Range(1, 50).Select(i => Parameters(i)).ToArray();
        double authMs = 0;
        async Task Governed(int i)
        {
            var t0 = Stopwatch.GetTimestamp();
            var auth = await gateway.AuthenticateAsync(key, request);
            authMs += Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            var r = await gateway.ExecuteAsync(auth.Value ?? throw new InvalidOperationException(auth.Denial!.Title), queryId, parameters[i % 50], request);
            if (r.Denial is { } d) throw new InvalidOperationException(d.Title);
            if (r.Value!.Rows.Count != 1) throw new InvalidOperationException("expected one row");
        }
        async Task Direct(int i)
        {
            if ((await DirectAsync(i % 50 + 1)).Count != 1) throw new InvalidOperationException("expected one row");
        }
        for (var i = 0; i < 300; i++) { await Governed(i); await Direct(i); } // warm-up: JIT, pools, page cache

        authMs = 0;
        var governed = new double[calls];
        var direct = new double[calls];
        for (var i = 0; i < calls; i++)
        {
            var t = Stopwatch.GetTimestamp();
            await Governed(i);
            governed[i] = Stopwatch.GetElapsedTime(t).TotalMilliseconds;
            t = Stopwatch.GetTimestamp();
            await Direct(i);
            direct[i] = Stopwatch.GetElapsedTime(t).TotalMilliseconds;
        }
        Array.Sort(governed);
        Array.Sort(direct);
        double P(double[] a, double q) => a[Math.Min(a.Length - 1, (int)Math.Ceiling(q * a.Length) - 1)];
        Console.WriteLine($"   in-process, sequential ({calls:N0} calls each, interleaved):");
        Console.WriteLine($"      direct ADO.NET   p50 {P(direct, .5):F3} ms  p99 {P(direct, .99):F3} ms");
        Console.WriteLine($"      governed         p50 {P(governed, .5):F3} ms  p99 {P(governed, .99):F3} ms");
        Console.WriteLine($"      (governed: authenticate {authMs / calls:F3} ms mean, rest of pipeline {governed.Average() - authMs / calls:F3} ms mean)");
        Console.WriteLine($"      added latency    p50 {P(governed, .5) - P(direct, .5):F3} ms  p99 {P(governed, .99) - P(direct, .99):F3} ms");

        // Process CPU per call (all threads, including the audit writer's), which wall time under a shared machine hides.
        var cpuCalls = Math.Max(500, calls / 2);
        var process = Process.GetCurrentProcess();
        var c0 = process.TotalProcessorTime;
        var k0 = process.PrivilegedProcessorTime;
        for (var i = 0; i < cpuCalls; i++) await Governed(i);
        process.Refresh();
        var c1 = process.TotalProcessorTime;
        var k1 = process.PrivilegedProcessorTime;
        for (var i = 0; i < cpuCalls; i++) await Direct(i);
        process.Refresh();
        var c2 = process.TotalProcessorTime;
        Console.WriteLine($"      process CPU per call ({cpuCalls:N0} sequential each): governed {(c1 - c0).TotalMilliseconds / cpuCalls:F3} ms (of which kernel {(k1 - k0).TotalMilliseconds / cpuCalls:F3} ms), direct {(c2 - c1).TotalMilliseconds / cpuCalls:F3} ms");
    }

    /// <summary>The pipeline's steps timed one by one (the same service calls GatewayService makes, in its order).</summary>
    private static async Task BreakdownAsync(IServiceProvider services, string key, Guid queryId, int calls)
    {
        var keys = services.GetRequiredService<ApiKeyService>();
        var suite = services.GetRequiredService<SuiteService>();
        var queries = services.GetRequiredService<ApprovedQueryService>();
        var permissions = services.GetRequiredService<QueryPermissionService>();
        var limiter = services.GetRequiredService<RateLimiter>();
        var datasources = services.GetRequiredService<DatasourceService>();
        var masks = services.GetRequiredService<ColumnMaskService>();
        var audit = services.GetRequiredService<AuditWriter>();
        var options = services.GetRequiredService<GatewayOptions>();
        var steps = new[] { "authenticate key", "module gate", "load approved query", "permission", "rate limit", "validate + screen",
            "open engine", "execute (engine)", "mask rules + mask", "audit append (durable)", "record rows" };
        var times = steps.Select(_ => new double[calls]).ToArray();
        var parameters = Parameters(7);
        var process = Process.GetCurrentProcess();
        var cpuTotals = new TimeSpan[2];
        var cpuMark = TimeSpan.Zero;
        for (var i = -100; i < calls; i++)
        {
            if (i >= 0) { process.Refresh(); cpuMark = process.TotalProcessorTime; }
            var s = 0;
            var t = Stopwatch.GetTimestamp();
            void Lap() { if (i >= 0) times[s][i] = Stopwatch.GetElapsedTime(t).TotalMilliseconds; s++; t = Stopwatch.GetTimestamp(); }
            var auth = await keys.AuthenticateAsync(key, "127.0.0.1"); Lap();
            var projectId = auth.ProjectId!.Value;
            if (!await suite.IsModuleEnabledAsync(projectId, Modules.AccessControl)) throw new InvalidOperationException("module off"); Lap();
            var query = await queries.GetAsync(projectId, queryId); Lap();
            if (!await permissions.CanAsync(projectId, queryId, new QueryPrincipal(auth.Role!), QueryAction.Execute)) throw new InvalidOperationException("denied"); Lap();
            var limits = new RateLimitContext(projectId, auth.KeyId, null, auth.Role, queryId.ToString());
            await limiter.TryAcquireAsync(limits); Lap();
            var validation = ParameterValidator.Validate(query.Parameters, parameters);
            InjectionScreener.ScreenAll(validation.Values); Lap();
            var engine = await datasources.OpenEngineAsync(projectId, query.DatasourceId); Lap();
            var result = await engine.ExecuteAsync(query.Sql, validation.Values, query.RowCap, query.Timeout); Lap();
            var rules = await masks.RulesForAsync(projectId, query.DatasourceId);
            var masked = new MaskingEngine(rules, options.MaskingHashKey).Apply(result, auth.Role!); Lap();
            if (i >= 0) { process.Refresh(); cpuTotals[0] += process.TotalProcessorTime - cpuMark; cpuMark = process.TotalProcessorTime; }
            t = Stopwatch.GetTimestamp();
            await audit.AppendAsync(new AuditEventDraft
            {
                ProjectId = projectId, EventType = "bench.breakdown", Actor = new AuditActor("api_key", auth.KeyId.ToString(), Role: auth.Role),
                ResourceType = "approved_query", ResourceId = queryId.ToString(), Action = "execute", SqlText = query.Sql,
                TablesAccessed = result.Analysis.TablesRead, RowsReturned = masked.Rows.Count, Details = "{\"bench\":true}",
            }); Lap();
            if (i >= 0) { process.Refresh(); cpuTotals[1] += process.TotalProcessorTime - cpuMark; cpuMark = process.TotalProcessorTime; }
            t = Stopwatch.GetTimestamp();
            await limiter.RecordRowsAsync(limits, masked.Rows.Count); Lap();
        }
        Console.WriteLine($"   pipeline steps, sequential ({calls:N0} calls; p50 / p99 ms):");
        var cpu = cpuTotals.Select(t => t.TotalMilliseconds / calls).ToArray();
        Console.WriteLine($"      (process CPU per call: steps before the audit {cpu[0]:F3} ms, audit append {cpu[1]:F3} ms, all threads)");
        for (var s = 0; s < steps.Length; s++)
        {
            Array.Sort(times[s]);
            Console.WriteLine($"      {steps[s],-24} {times[s][calls / 2]:F3} / {times[s][(int)(calls * 0.99)]:F3}");
        }
    }

    private static async Task WrkAsync(string url, string key, Guid queryId, int seconds, int connections, string folder, Portal.Domain.Audit.AuditWriter writer)
    {
        const string body = "{\"parameters\":{\"customer_id\":7}}";
        string Script(bool governed)
        {
            var path = Path.Combine(folder, governed ? "governed.lua" : "bare.lua");
            File.WriteAllText(path, $"""
                wrk.method = "POST"
                wrk.body = '{body}'
                wrk.headers["Content-Type"] = "application/json"
                {(governed ? $"wrk.headers[\"Authorization\"] = \"Bearer {key}\"" : "")}
                """);
            return path;
        }
        var governedScript = Script(true);
        var bareScript = Script(false);
        var governedUrl = $"{url}/api/v1/queries/{queryId}/execute";
        var bareUrl = $"{url}/bench/bare/{queryId}";
        if (Environment.GetEnvironmentVariable("PORTAL_BENCH_WRK_ONLY") == "governed")
        {
            // For profiling the governed endpoint alone (perf record on this process): no bare runs, no ratio.
            Console.WriteLine($"   governed only: {await Wrk(governedUrl, governedScript, seconds, connections)}");
            return;
        }
        // Warm-up both, then alternate bare and governed twice so both see the same load.
        await Wrk(bareUrl, bareScript, 3, connections, check: false);
        await Wrk(governedUrl, governedScript, 3, connections, check: false);
        var bare = new List<WrkResult>();
        var governed = new List<WrkResult>();
        var writerStats = new List<string>();
        for (var round = 0; round < 2; round++)
        {
            bare.Add(await Wrk(bareUrl, bareScript, seconds, connections));
            var (batches, events, busy, caller) = (writer.BatchesWritten, writer.EventsWritten, writer.WriteTime, writer.CallerBatches);
            var started = Stopwatch.GetTimestamp();
            governed.Add(await Wrk(governedUrl, governedScript, seconds, connections));
            var wall = Stopwatch.GetElapsedTime(started);
            // Is the audit writer the bottleneck? Busy close to 100 % of the round means every request waits for it.
            writerStats.Add($"{(writer.EventsWritten - events) / (double)Math.Max(1, writer.BatchesWritten - batches):F1} events/batch, " +
                $"writer busy {(writer.WriteTime - busy) / wall:P0} of the round, {writer.CallerBatches - caller:N0} batches written by callers");
        }
        Console.WriteLine($"   HTTP over loopback, wrk -t2 -c{connections} -d{seconds}s, POST with JSON body (alternating, 2 rounds):");
        for (var i = 0; i < 2; i++)
        {
            Console.WriteLine($"      round {i + 1}: bare {bare[i]}");
            Console.WriteLine($"               governed {governed[i]}   ratio {governed[i].Rps / bare[i].Rps:P1}");
            Console.WriteLine($"               audit writer during the governed round: {writerStats[i]}");
        }
        Console.WriteLine($"      overall: governed/bare throughput {governed.Sum(g => g.Rps) / bare.Sum(b => b.Rps):P1}");
    }

    private sealed record WrkResult(double Rps, string P50, string P99)
    {
        public override string ToString() => $"{Rps,9:N0} req/s  latency p50 {P50,-8} p99 {P99}";
    }

    private static async Task<WrkResult> Wrk(string url, string script, int seconds, int connections, bool check = true)
    {
        var psi = new ProcessStartInfo("/usr/bin/wrk") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "-t2", $"-c{connections}", $"-d{seconds}s", "--timeout", "10s", "--latency", "-s", script, url }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var output = await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (!check) return new WrkResult(0, "", "");
        if (p.ExitCode != 0 || output.Contains("Non-2xx", StringComparison.Ordinal) || output.Contains("Socket errors", StringComparison.Ordinal))
            throw new InvalidOperationException("wrk reported errors:\n" + output);
        var rps = double.Parse(Regex.Match(output, @"Requests/sec:\s+([\d.]+)").Groups[1].Value, CultureInfo.InvariantCulture);
        var p50 = Regex.Match(output, @"\s50%\s+(\S+)").Groups[1].Value;
        var p99 = Regex.Match(output, @"\s99%\s+(\S+)").Groups[1].Value;
        return new WrkResult(rps, p50, p99);
    }
}
