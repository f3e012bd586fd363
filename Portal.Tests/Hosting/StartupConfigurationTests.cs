using System.Diagnostics;

namespace Portal.Tests.Hosting;

/// <summary>A wrong setting stops the real portal process with one line naming it and exit code 2.</summary>
public class StartupConfigurationTests
{
    public static TheoryData<string, string, string, string> BadSettings => new()
    {
        { "unsupported provider", "Oracle", "", "Database:Provider" },
        { "PostgreSQL without a connection string", "Postgres", "", "Database:ConnectionString" },
        { "malformed PostgreSQL connection string", "Postgres", "Host=127.0.0.1;Bogus Setting=1", "Database:ConnectionString" },
        { "unreachable PostgreSQL", "Postgres", "Host=127.0.0.1;Port=1;Username=postgres;Timeout=3", "Database:ConnectionString" },
        { "malformed SQLite connection string", "Sqlite", "Data Source=x.db;Bogus Setting=1", "Database:ConnectionString" },
    };

    [Theory]
    [MemberData(nameof(BadSettings))]
    public async Task A_bad_database_setting_stops_startup_with_one_clear_line(string why, string provider, string connectionString, string setting)
    {
        var dir = Directory.CreateTempSubdirectory("portal-startup-");
        try
        {
            await AssertStopsAsync(why, setting, new()
            {
                ["Database__Provider"] = provider,
                ["Database__ConnectionString"] = connectionString,
                ["Database__DataDirectory"] = Path.Combine(dir.FullName, "data"),
            }, dir.FullName);
        }
        finally
        {
            try { dir.Delete(recursive: true); } catch (IOException) { }
        }
    }

    [Fact]
    public async Task A_node_whose_encryption_keys_cannot_open_the_shared_key_ring_stops_with_one_clear_line()
    {
        // The database's key ring was written under one key; this node was given another.
        await using var db = await Infrastructure.TestDatabase.CreateAsync("sqlite");
        var written = $"k1:{Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32))}";
        await using (var app = new Infrastructure.PortalApp(db, new() { ["Security:EncryptionKeys"] = written }))
            await app.Client().GetAsync("/Account/Login"); // creates the ring
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        var dir = Directory.CreateTempSubdirectory("portal-startup-");
        try
        {
            await AssertStopsAsync("other encryption keys", "Security:EncryptionKeys", new()
            {
                ["Database__Provider"] = "Sqlite",
                ["Database__ConnectionString"] = db.ConnectionString,
                ["Database__DataDirectory"] = Path.Combine(dir.FullName, "data"),
                ["Security__EncryptionKeys"] = $"k1:{Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32))}",
            }, dir.FullName);
        }
        finally
        {
            try { dir.Delete(recursive: true); } catch (IOException) { }
        }
    }

    private static async Task AssertStopsAsync(string why, string setting, Dictionary<string, string> environment, string workingDirectory)
    {
        var start = new ProcessStartInfo("dotnet", [PortalDll()])
        {
            RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false, WorkingDirectory = workingDirectory,
        };
        foreach (var (k, v) in environment) start.Environment[k] = v;
        start.Environment["Urls"] = "http://127.0.0.1:0";
        start.Environment["DOTNET_ENVIRONMENT"] = "Production";
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try { await process.WaitForExitAsync(timeout.Token); }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{why}: the portal kept running instead of stopping.\n{await stdout}\n{await stderr}");
        }
        var err = await stderr;
        var output = await stdout;
        var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.True(process.ExitCode == 2, $"{why}: exit code {process.ExitCode}\nstderr: {err}\nstdout: {output}");
        Assert.True(lines.Length == 1, $"{why}: expected one line on stderr, got:\n{err}");
        Assert.Contains(setting, lines[0]);
        Assert.StartsWith("Portal cannot start:", lines[0]);
        Assert.DoesNotContain("   at ", err + output);
        Assert.DoesNotContain("Exception", lines[0]);
    }

    /// <summary>The Portal build next to this test build (same configuration).</summary>
    private static string PortalDll()
    {
        var testDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var tfm = testDir.Name;
        var configuration = testDir.Parent!.Name;
        var root = testDir;
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "Portal.sln"))) root = root.Parent;
        Assert.True(root is not null, "cannot find the repository root from " + AppContext.BaseDirectory);
        var dll = Path.Combine(root!.FullName, "Portal", "bin", configuration, tfm, "Portal.dll");
        Assert.True(File.Exists(dll), $"Portal is not built at {dll}");
        return dll;
    }
}
