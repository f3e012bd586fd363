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
    public override string ToString() => Ok
        ? $"Audit chain of project {ProjectId} is intact ({EventsChecked} events)."
        : $"Audit chain of project {ProjectId} is broken at seq {FirstBrokenSeq}: {Problem}";
}

/// <summary>
/// Re-derives every hash of a project's chain in seq order and reports the first broken link: a row whose content no
/// longer matches its hash (edited), whose prev_hash is not the previous row's hash (edited and re-hashed, or rows
/// swapped), a missing or repeated seq (deleted or inserted rows), or a chain shorter or longer than its recorded head
/// (deleted tail). Streams with a forward-only cursor, so memory stays constant whatever the size.
/// </summary>
public sealed class AuditVerifier(PortalDatabase database)
{
    public async Task<AuditVerification> VerifyAsync(Guid projectId, CancellationToken ct = default)
    {
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
        return await Task.Run(() => Scan(projectId, headSeq, headHash, ct), ct);
    }

    private AuditVerification Scan(Guid projectId, long headSeq, byte[]? headHash, CancellationToken ct)
    {
        using var rows = AuditRows.Open(database, "WHERE project_id = @p ORDER BY seq", [("@p", AuditReader.Id(database, projectId))]);
        var scratch = new byte[8192];
        var computed = new byte[AuditHash.Size];
        var previous = AuditHash.Genesis();
        long expectedSeq = 1, checkedCount = 0;
        while (rows.Read())
        {
            if ((checkedCount & 0xFFFF) == 0) ct.ThrowIfCancellationRequested();
            var seq = rows.Int64(AuditRows.Seq);
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
        var last = expectedSeq - 1;
        if (headSeq > last)
            return Broken(last + 1, $"events {last + 1}..{headSeq} are missing (the chain head records {headSeq} events)", checkedCount);
        if (headHash is not null && headSeq == last && !headHash.AsSpan().SequenceEqual(previous))
            return Broken(last, "the last event's hash differs from the recorded chain head", checkedCount, headHash, previous);
        if (last > headSeq)
            return Broken(headSeq + 1, $"events {headSeq + 1}..{last} are beyond the recorded chain head (inserted outside the writer)", checkedCount);
        return new AuditVerification(projectId, true, checkedCount);

        AuditVerification Broken(long seq, string problem, long count, byte[]? expected = null, byte[]? actual = null) =>
            new(projectId, false, count, seq, problem,
                expected is null ? null : Convert.ToHexStringLower(expected),
                actual is null ? null : Convert.ToHexStringLower(actual));
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
