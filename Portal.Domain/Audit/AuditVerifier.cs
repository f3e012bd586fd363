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
        await using (var c = AuditReader.Open(database))
        await using (var h = c.CreateCommand())
        {
            h.CommandText = "SELECT seq, hash FROM audit_chain_heads WHERE project_id = @p";
            AuditReader.Add(h, "@p", AuditReader.Id(database, projectId));
            await using var hr = await h.ExecuteReaderAsync(ct);
            if (await hr.ReadAsync(ct)) { headSeq = hr.GetInt64(0); headHash = (byte[])hr.GetValue(1); }
        }
        // The scan is CPU-bound and synchronous (both cursors read ahead); keep it off the caller's context.
        return await Task.Run(() => Scan(projectId, headSeq, headHash, ranges, ct), ct);
    }

    private AuditVerification Scan(Guid projectId, long headSeq, byte[]? headHash, IReadOnlyList<AuditArchiveRange> ranges, CancellationToken ct)
    {
        var archivedFrom = ranges.ToDictionary(r => r.FirstSeq);
        long archived = 0;
        using var rows = AuditRows.Open(database, "WHERE project_id = @p ORDER BY seq", [("@p", AuditReader.Id(database, projectId))]);
        var scratch = new byte[8192];
        var computed = new byte[AuditHash.Size];
        var previous = AuditHash.Genesis();
        long expectedSeq = 1, checkedCount = 0;
        while (rows.Read())
        {
            if ((checkedCount & 0xFFFF) == 0) ct.ThrowIfCancellationRequested();
            var seq = rows.Int64(AuditRows.Seq);
            if (seq > expectedSeq && archivedFrom.Count > 0 && Bridge(seq) is { } gap) return gap;
            if (seq != expectedSeq)
            {
                return seq > expectedSeq
                    ? Broken(expectedSeq, $"events {expectedSeq}..{seq - 1} are missing (deleted)", checkedCount)
                    : Broken(seq, $"seq {seq} appears more than once", checkedCount);
            }
            var prev = rows.Blob(AuditRows.PrevHash);
            if (!prev.SequenceEqual(previous))
                return Broken(seq, "prev_hash is not the hash of the previous event (an earlier event was altered or events were reordered)",
                    checkedCount, previous, prev.ToArray());
            AuditHash.Compute(rows, ref scratch, computed);
            var stored = rows.Blob(AuditRows.Hash);
            if (!stored.SequenceEqual(computed))
                return Broken(seq, "the event's content does not match its hash (the row was altered)", checkedCount, computed, stored.ToArray());
            stored.CopyTo(previous);
            expectedSeq++;
            checkedCount++;
        }
        if (headSeq >= expectedSeq && archivedFrom.Count > 0 && Bridge(headSeq + 1) is { } tail) return tail;
        if (archivedFrom.Count > 0)
        {
            var unused = archivedFrom.Values.MinBy(r => r.FirstSeq)!;
            return Broken(unused.FirstSeq, $"archived events {unused.FirstSeq}..{unused.LastSeq} are also in the database or beyond the chain head", checkedCount);
        }
        var last = expectedSeq - 1;
        if (headSeq > last)
            return Broken(last + 1, $"events {last + 1}..{headSeq} are missing (the chain head records {headSeq} events)", checkedCount);
        if (headHash is not null && headSeq == last && !headHash.AsSpan().SequenceEqual(previous))
            return Broken(last, "the last event's hash differs from the recorded chain head", checkedCount, headHash, previous);
        if (last > headSeq)
            return Broken(headSeq + 1, $"events {headSeq + 1}..{last} are beyond the recorded chain head (inserted outside the writer)", checkedCount);
        return new AuditVerification(projectId, true, checkedCount) { ArchivedEvents = archived };

        // Walks archive manifests from expectedSeq up to (not including) `until`: null when they bridge the gap exactly.
        AuditVerification? Bridge(long until)
        {
            while (expectedSeq < until)
            {
                if (!archivedFrom.Remove(expectedSeq, out var r))
                    return Broken(expectedSeq, $"events {expectedSeq}..{until - 1} are missing (neither in the database nor in an archive file)", checkedCount);
                if (r.LastSeq >= until)
                    return Broken(until, $"seq {until} is both in the database and in the archive file of seq {r.FirstSeq}..{r.LastSeq}", checkedCount);
                if (!r.FirstPrevHash.AsSpan().SequenceEqual(previous))
                    return Broken(r.FirstSeq, "the archived events' first prev_hash is not the hash of the event before them", checkedCount, previous, r.FirstPrevHash);
                r.LastHash.CopyTo(previous, 0);
                archived += r.Count;
                checkedCount += r.Count;
                expectedSeq = r.LastSeq + 1;
            }
            return null;
        }

        AuditVerification Broken(long seq, string problem, long count, byte[]? expected = null, byte[]? actual = null) =>
            new(projectId, false, count, seq, problem,
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
