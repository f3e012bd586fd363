namespace Portal.Bench;

/// <summary>
/// Samples /proc/self/status every 10 ms while a measured block runs and keeps the peaks of resident memory split into
/// anonymous (heap, stacks, native allocations: what the work itself holds) and file-backed (code, mapped files).
/// Process.PeakWorkingSet64 is a lifetime maximum, so it cannot tell one measured block from an earlier one in the same
/// process; this can. Linux only (the bench machines).
/// </summary>
internal sealed class MemorySampler : IDisposable
{
    private readonly CancellationTokenSource stop = new();
    private readonly Task loop;
    public long PeakRssKb { get; private set; }
    public long PeakAnonKb { get; private set; }
    public long PeakFileKb { get; private set; }

    public MemorySampler()
    {
        Sample();
        loop = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                Sample();
                try { await Task.Delay(10, stop.Token); } catch (OperationCanceledException) { }
            }
        });
    }

    private void Sample()
    {
        long rss = 0, anon = 0, file = 0;
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal)) rss = Kb(line);
            else if (line.StartsWith("RssAnon:", StringComparison.Ordinal)) anon = Kb(line);
            else if (line.StartsWith("RssFile:", StringComparison.Ordinal)) file = Kb(line);
        }
        PeakRssKb = Math.Max(PeakRssKb, rss);
        PeakAnonKb = Math.Max(PeakAnonKb, anon);
        PeakFileKb = Math.Max(PeakFileKb, file);
    }

    private static long Kb(string line) => long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture);

    public string Describe() => $"peak resident {PeakRssKb / 1024.0:F0} MB during the run (anonymous {PeakAnonKb / 1024.0:F0} MB, file-backed {PeakFileKb / 1024.0:F0} MB)";

    public void Dispose()
    {
        stop.Cancel();
        loop.GetAwaiter().GetResult();
        Sample();
        stop.Dispose();
    }
}
