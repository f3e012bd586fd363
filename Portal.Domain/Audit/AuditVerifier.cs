using System.Runtime.CompilerServices;
using Portal.Domain.Persistence;

namespace Portal.Domain.Audit;

/// <summary>The outcome of checking one project's chain. <see cref="FirstBrokenSeq"/> is null when the chain is intact.</summary>
public sealed record AuditVerification(
    Guid ProjectId,
    bool Ok,
    long EventsChecked,
    long? FirstBrokenSeq = null,
    string? Problem = null,
    string? ExpectedHash = null,
    string? ActualHash = null)
{
    /// <summary>How many of <see cref="EventsChecked"/> are in archive files rather than the database.</summary>
    public long ArchivedEvents { get; init; }

    public override string ToString() => Ok
        ? $"Audit chain of project {ProjectId} is intact ({EventsChecked} events{(ArchivedEvents > 0 ? $", {ArchivedEvents} of them archived" : "")})."
        : $"Audit chain of project {ProjectId} is broken at seq {FirstBrokenSeq}: {Problem}";
}

/// <summary>
/// Re-derives every hash of a project's chain in seq order and reports the first broken link: a row whose content no
/// longer matches its hash (edited), whose prev_hash is not the previous row's hash (edited and re-hashed, or rows
/// swapped), a missing or repeated seq (deleted or inserted rows), or a chain shorter or longer than its recorded head
/// (deleted tail). Streams with a forward-only cursor, so memory stays constant whatever the size.
/// <para>
/// Once retention has archived events, the database holds gaps. Each gap must be bridged by archive manifests: the
/// first archived event's prev_hash links to the event before the gap, and the last archived hash is what the event
/// after the gap names as its prev_hash. When every archive file holds a whole seq range, the manifests are enough (and
/// each file is checked against its manifest's SHA-256); when retention kept some events of a file's range in the
/// database (different horizons per event class), the archived events are read back and the whole chain is re-hashed
/// across archive and database (<see cref="IAuditArchive.VerifyAcrossAsync"/>).
/// </para>
/// </summary>
public sealed class AuditVerifier(PortalDatabase database, IAuditArchive? archive = null)
{
    /// <summary>How many seq ranges of one chain are checked at the same time, each on its own connection and thread.</summary>
    public int ParallelRanges { get; init; } = Math.Clamp(Environment.ProcessorCount, 1, 8);

    /// <summary>A chain is split only into ranges of at least this many events (below that a thread costs more than it saves).</summary>
    public long MinEventsPerRange { get; init; } = 50_000;

    /// <summary>
    /// SQLite only: read the database file through a memory map (one page fault instead of one read call per page, which
    /// was most of a full scan's time). The mapped pages are page cache, but they count in the process's resident memory
    /// (about the size of the scanned part of the file), so work with a memory budget turns it off (<see cref="WithoutFileMap"/>).
    /// </summary>
    public bool MapDatabaseFile { get; init; } = true;

    /// <summary>
    /// SQLite only: read every value through SQLite's column functions instead of straight from the statement's row
    /// (see <see cref="ReadsSqliteRowsDirectly"/>). Slower; the answer is the same, which the tests check.
    /// </summary>
    public bool SqliteColumnApiOnly { get; init; }

    /// <summary>
    /// Whether SQLite rows are read straight from the statement's row values in this process: the loaded SQLite
    /// library passed the layout check at startup and <c>PORTAL_SQLITE_COLUMN_API=1</c> is not set. When false, every
    /// value goes through SQLite's column functions (about a fifth slower), with the same results.
    /// </summary>
    public static bool ReadsSqliteRowsDirectly => NativeSqlite.ResultRow.Known;

    /// <summary>The same verifier reading the file with plain reads: resident memory stays flat whatever the chain's size.</summary>
    public AuditVerifier WithoutFileMap() => new(database, archive)
        { ParallelRanges = ParallelRanges, MinEventsPerRange = MinEventsPerRange, MapDatabaseFile = false, SqliteColumnApiOnly = SqliteColumnApiOnly };

    public async Task<AuditVerification> VerifyAsync(Guid projectId, CancellationToken ct = default)
    {
        IReadOnlyList<AuditArchiveRange> ranges = archive is null ? [] : await archive.RangesAsync(projectId, ct);
        if (ranges.Count > 0)
        {
            if (!ranges.All(r => r.Contiguous)) return await archive!.VerifyAcrossAsync(projectId, ct);
            if (await archive!.CheckFilesAsync(projectId, ct) is { } problem)
                return new AuditVerification(projectId, false, 0, ranges[0].FirstSeq, problem);
        }

        long headSeq = 0;
        byte[]? headHash = null;
        long? minSeq = null, maxSeq = null;
        await using (var c = AuditReader.Open(database))
        await using (var h = c.CreateCommand())
        {
            // One statement, so the head and the extent of the rows come from the same snapshot: events appended while
            // the scan runs are beyond maxSeq and not read, instead of looking like rows written past the head.
            h.CommandText = """
                SELECT (SELECT seq FROM audit_chain_heads WHERE project_id = @p), (SELECT hash FROM audit_chain_heads WHERE project_id = @p),
                       (SELECT min(seq) FROM audit_events WHERE project_id = @p), (SELECT max(seq) FROM audit_events WHERE project_id = @p)
                """;
            AuditReader.Add(h, "@p", AuditReader.Id(database, projectId));
            await using var hr = await h.ExecuteReaderAsync(ct);
            if (await hr.ReadAsync(ct))
            {
                if (!hr.IsDBNull(0)) { headSeq = hr.GetInt64(0); headHash = (byte[])hr.GetValue(1); }
                if (!hr.IsDBNull(2)) { minSeq = hr.GetInt64(2); maxSeq = hr.GetInt64(3); }
            }
        }
        var walk = new ChainWalk(projectId, ranges);
        if (minSeq is null) return walk.Finish(headSeq, headHash);

        // Each range re-hashes its rows and checks the links inside it on its own thread and connection; the links
        // between ranges (and to the archive) are then checked in seq order by replaying each range's summary through
        // the same rules as a row-by-row scan, so the first broken link and its message are the same as one scan's.
        var min = minSeq.Value;
        var max = maxSeq!.Value;
        var count = (int)Math.Clamp((max - min + 1) / Math.Max(1, MinEventsPerRange), 1, Math.Max(1, ParallelRanges));
        var bounds = new long[count + 1];
        for (var k = 0; k <= count; k++) bounds[k] = min + (max - min + 1) * k / count;
        var firstDirty = new StrongBox<int>(int.MaxValue);
        var scans = new Task<RangeSummary>[count];
        for (var k = 0; k < count; k++)
        {
            var index = k;
            var (where, parameters) = Range(projectId, index == 0 ? null : bounds[index], index < count - 1 ? bounds[index + 1] - 1 : max);
            scans[k] = Task.Factory.StartNew(() => ScanRange(index, where, parameters, firstDirty, ct), ct, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }
        var summaries = await Task.WhenAll(scans);

        for (var k = 0; k < count; k++)
        {
            var summary = summaries[k];
            if (summary.Dirty)
            {
                // Something in this range is wrong: re-check it row by row from its first seq, with the chain state the
                // earlier ranges left, to name exactly what and where.
                var (where, parameters) = Range(projectId, k == 0 ? null : bounds[k], max);
                return await Task.Run(() => ScanRows(walk, where, parameters, ct) ?? walk.Finish(headSeq, headHash), ct);
            }
            foreach (var segment in summary.Segments)
            {
                if (walk.Enter(segment.FirstSeq, segment.FirstPrevHash) is { } broken) return broken;
                walk.Advance(segment.LastSeq, segment.LastHash, segment.Count);
            }
        }
        return walk.Finish(headSeq, headHash);
    }

    /// <summary>
    /// The rows of one seq range, up to <paramref name="last"/> inclusive. The first range has no lower bound, so rows
    /// below the lowest expected seq (seq 0, negative) are still read and reported as out of place.
    /// </summary>
    private (string Where, (string, object)[] Parameters) Range(Guid projectId, long? first, long last) => first is { } lo
        ? ("WHERE project_id = @p AND seq >= @lo AND seq <= @hi ORDER BY seq", [("@p", AuditReader.Id(database, projectId)), ("@lo", lo), ("@hi", last)])
        : ("WHERE project_id = @p AND seq <= @hi ORDER BY seq", [("@p", AuditReader.Id(database, projectId)), ("@hi", last)]);

    /// <summary>A run of consecutive seqs whose hashes all match and whose inner links all hold.</summary>
    private sealed record Segment(long FirstSeq, byte[] FirstPrevHash, long LastSeq, byte[] LastHash, long Count);

    /// <summary>What one range's scan found: its sound segments in order, and whether a bad row ended it.</summary>
    private sealed record RangeSummary(List<Segment> Segments, bool Dirty);

    private RangeSummary ScanRange(int index, string where, (string, object)[] parameters, StrongBox<int> firstDirty, CancellationToken ct)
    {
        var segments = new List<Segment>();
        using var rows = AuditRows.OpenStream(database, where, parameters, mapFile: MapDatabaseFile, columnApiOnly: SqliteColumnApiOnly);
        var scratch = new byte[8192];
        var computed = new byte[AuditHash.Size];
        var last = new byte[AuditHash.Size];
        long firstSeq = 0, lastSeq = 0, count = 0, read = 0;
        byte[] firstPrev = [];
        while (rows.Read())
        {
            if ((++read & 0x3FFF) == 0)
            {
                ct.ThrowIfCancellationRequested();
                // An earlier range already holds the first broken link; nothing here can be reported.
                if (Volatile.Read(ref firstDirty.Value) < index) return new RangeSummary(segments, true);
            }
            var seq = rows.Int64(AuditRows.Seq);
            var prev = rows.Blob(AuditRows.PrevHash);
            var continues = count > 0 && seq == lastSeq + 1;
            if (continues ? !prev.SequenceEqual(last) : count > 0 && seq <= lastSeq) return Dirty();
            AuditHash.Compute(rows, ref scratch, computed);
            var stored = rows.Blob(AuditRows.Hash);
            if (!stored.SequenceEqual(computed) || rows.ValueOfAnotherType) return Dirty();
            if (!continues)
            {
                // A gap: the seqs before it are archived or missing, which the replay in seq order decides.
                Close();
                firstSeq = seq;
                firstPrev = prev.ToArray();
            }
            stored.CopyTo(last);
            lastSeq = seq;
            count++;
        }
        Close();
        return new RangeSummary(segments, false);

        void Close()
        {
            if (count > 0) segments.Add(new Segment(firstSeq, firstPrev, lastSeq, last.ToArray(), count));
            count = 0;
        }

        RangeSummary Dirty()
        {
            Close();
            var seen = Volatile.Read(ref firstDirty.Value);
            while (index < seen && Interlocked.CompareExchange(ref firstDirty.Value, index, seen) != seen) seen = Volatile.Read(ref firstDirty.Value);
            return new RangeSummary(segments, true);
        }
    }

    /// <summary>The row-by-row check from the walk's position on; null when every row read is sound.</summary>
    private AuditVerification? ScanRows(ChainWalk walk, string where, (string, object)[] parameters, CancellationToken ct)
    {
        using var rows = AuditRows.OpenStream(database, where, parameters, mapFile: MapDatabaseFile, columnApiOnly: SqliteColumnApiOnly);
        var scratch = new byte[8192];
        var computed = new byte[AuditHash.Size];
        long read = 0;
        while (rows.Read())
        {
            if ((++read & 0xFFFF) == 0) ct.ThrowIfCancellationRequested();
            var seq = rows.Int64(AuditRows.Seq);
            if (walk.Enter(seq, rows.Blob(AuditRows.PrevHash)) is { } broken) return broken;
            AuditHash.Compute(rows, ref scratch, computed);
            var stored = rows.Blob(AuditRows.Hash);
            if (!stored.SequenceEqual(computed))
                return walk.Broken(seq, "the event's content does not match its hash (the row was altered)", computed, stored.ToArray());
            if (rows.ValueOfAnotherType)
                return walk.Broken(seq, "the event's content does not match its hash (the row was altered: a value is stored with another type than the audit writer writes)", computed, stored.ToArray());
            walk.Advance(seq, stored, 1);
        }
        return null;
    }

    /// <summary>
    /// The chain checked in seq order: each row (or sound segment) enters at the expected seq with the previous hash
    /// as its prev_hash, gaps must be bridged by archive manifests, and the end must meet the recorded head.
    /// </summary>
    private sealed class ChainWalk(Guid projectId, IReadOnlyList<AuditArchiveRange> ranges)
    {
        private readonly Dictionary<long, AuditArchiveRange> archivedFrom = ranges.ToDictionary(r => r.FirstSeq);
        private readonly byte[] previous = AuditHash.Genesis();
        private long expectedSeq = 1, checkedCount, archived;

        /// <summary>Checks that a row with this seq and prev_hash may come next; null when it may.</summary>
        public AuditVerification? Enter(long seq, ReadOnlySpan<byte> prev)
        {
            if (seq > expectedSeq && archivedFrom.Count > 0 && Bridge(seq) is { } gap) return gap;
            if (seq != expectedSeq)
            {
                return seq > expectedSeq
                    ? Broken(expectedSeq, $"events {expectedSeq}..{seq - 1} are missing (deleted)")
                    : Broken(seq, $"seq {seq} appears more than once");
            }
            if (!prev.SequenceEqual(previous))
                return Broken(seq, "prev_hash is not the hash of the previous event (an earlier event was altered or events were reordered)",
                    previous, prev.ToArray());
            return null;
        }

        /// <summary>Moves past sound rows up to <paramref name="lastSeq"/>, whose hash is <paramref name="lastHash"/>.</summary>
        public void Advance(long lastSeq, ReadOnlySpan<byte> lastHash, long count)
        {
            lastHash.CopyTo(previous);
            expectedSeq = lastSeq + 1;
            checkedCount += count;
        }

        public AuditVerification Finish(long headSeq, byte[]? headHash)
        {
            if (headSeq >= expectedSeq && archivedFrom.Count > 0 && Bridge(headSeq + 1) is { } tail) return tail;
            if (archivedFrom.Count > 0)
            {
                var unused = archivedFrom.Values.MinBy(r => r.FirstSeq)!;
                return Broken(unused.FirstSeq, $"archived events {unused.FirstSeq}..{unused.LastSeq} are also in the database or beyond the chain head");
            }
            var last = expectedSeq - 1;
            if (headSeq > last)
                return Broken(last + 1, $"events {last + 1}..{headSeq} are missing (the chain head records {headSeq} events)");
            if (headHash is not null && headSeq == last && !headHash.AsSpan().SequenceEqual(previous))
                return Broken(last, "the last event's hash differs from the recorded chain head", headHash, previous);
            if (last > headSeq)
                return Broken(headSeq + 1, $"events {headSeq + 1}..{last} are beyond the recorded chain head (inserted outside the writer)");
            return new AuditVerification(projectId, true, checkedCount) { ArchivedEvents = archived };
        }

        // Walks archive manifests from expectedSeq up to (not including) `until`: null when they bridge the gap exactly.
        private AuditVerification? Bridge(long until)
        {
            while (expectedSeq < until)
            {
                if (!archivedFrom.Remove(expectedSeq, out var r))
                    return Broken(expectedSeq, $"events {expectedSeq}..{until - 1} are missing (neither in the database nor in an archive file)");
                if (r.LastSeq >= until)
                    return Broken(until, $"seq {until} is both in the database and in the archive file of seq {r.FirstSeq}..{r.LastSeq}");
                if (!r.FirstPrevHash.AsSpan().SequenceEqual(previous))
                    return Broken(r.FirstSeq, "the archived events' first prev_hash is not the hash of the event before them", previous, r.FirstPrevHash);
                r.LastHash.CopyTo(previous, 0);
                archived += r.Count;
                checkedCount += r.Count;
                expectedSeq = r.LastSeq + 1;
            }
            return null;
        }

        public AuditVerification Broken(long seq, string problem, byte[]? expected = null, byte[]? actual = null) =>
            new(projectId, false, checkedCount, seq, problem,
                expected is null ? null : Convert.ToHexStringLower(expected),
                actual is null ? null : Convert.ToHexStringLower(actual)) { ArchivedEvents = archived };
    }

    /// <summary>Every project that has an audit trail.</summary>
    public async Task<IReadOnlyList<Guid>> ProjectsAsync(CancellationToken ct = default)
    {
        await using var c = AuditReader.Open(database);
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT project_id FROM audit_chain_heads ORDER BY project_id";
        await using var r = await cmd.ExecuteReaderAsync(ct);
        var list = new List<Guid>();
        while (await r.ReadAsync(ct)) list.Add(database.Provider == DatabaseProvider.Sqlite ? Guid.Parse(r.GetString(0)) : r.GetGuid(0));
        return list;
    }
}
