using System.Diagnostics;
using Microsoft.EntityFrameworkCore;
using Portal.Tests.Infrastructure;
using static Portal.Tests.Audit.AuditTestData;

namespace Portal.Tests.Audit;

public class AuditKillTests
{
    /// <summary>
    /// A child process appends events and writes each acknowledged one to a file; SIGKILL lands mid-stream. Every
    /// acknowledged event must be in the database afterwards, and every chain must still verify.
    /// </summary>
    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Kill_9_during_ingestion_loses_no_acknowledged_event(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        var ackFile = Path.Combine(db.DataDirectory, "acks.txt");
        var bench = BenchDll();
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { bench, "ingest-until-killed", provider, db.ConnectionString, ackFile }) psi.ArgumentList.Add(a);
        using var child = Process.Start(psi)!;
        var stderr = child.StandardError.ReadToEndAsync();
        try
        {
            var deadline = Stopwatch.StartNew();
            while (AckCount(ackFile) < 1500)
            {
                if (child.HasExited) Assert.Fail($"the ingesting child exited early ({child.ExitCode}): {await stderr}");
                if (deadline.Elapsed > TimeSpan.FromSeconds(90)) Assert.Fail("the child acknowledged too few events in 90 s");
                await Task.Delay(20);
            }
        }
        finally
        {
            child.Kill(); // SIGKILL on Linux: no shutdown code runs in the child
            await child.WaitForExitAsync();
        }
        Assert.NotEqual(0, child.ExitCode);

        var acked = File.ReadAllLines(ackFile).Where(l => l.Length > 0).ToList();
        // The kill can cut the last line short; a full line has three parts and a 36-character id.
        var complete = acked.Select(l => l.Split(' ')).Where(p => p.Length == 3 && p[2].Length == 36).ToList();
        Assert.True(complete.Count >= 1500);

        await using var ctx = db.NewContext();
        var stored = (await ctx.AuditEvents.AsNoTracking().Select(e => e.Id).ToListAsync()).ToHashSet();
        var missing = complete.Where(p => !stored.Contains(Guid.Parse(p[2]))).ToList();
        Assert.True(missing.Count == 0, $"{missing.Count} acknowledged events were lost, e.g. {string.Join(" ", missing.FirstOrDefault() ?? [])}");

        foreach (var project in complete.Select(p => Guid.Parse(p[0])).Distinct())
        {
            var v = await VerifyAsync(db, project);
            Assert.True(v.Ok, v.ToString());
        }
    }

    private static int AckCount(string file)
    {
        if (!File.Exists(file)) return 0;
        using var s = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var r = new StreamReader(s);
        var n = 0;
        while (r.ReadLine() is not null) n++;
        return n;
    }

    private static string BenchDll()
    {
        // The test project references Portal.Bench, which builds it next to the tests' own output.
        var local = Path.Combine(AppContext.BaseDirectory, "Portal.Bench.dll");
        Assert.True(File.Exists(local), $"Portal.Bench.dll is not in {AppContext.BaseDirectory}");
        Assert.True(File.Exists(Path.Combine(AppContext.BaseDirectory, "Portal.Bench.runtimeconfig.json")), "Portal.Bench.runtimeconfig.json is missing");
        return local;
    }
}
