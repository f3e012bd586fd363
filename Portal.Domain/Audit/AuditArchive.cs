namespace Portal.Domain.Audit;

/// <summary>One page of archived events, newest first, and how much of the archive was read to find it.</summary>
public sealed record ArchivedSearchResult(IReadOnlyList<AuditEvent> Events, long Scanned, int FilesRead, bool Truncated, bool HasMore = false);

/// <summary>
/// What one archive file's manifest says about the chain: the seqs it holds (<see cref="Count"/> of them between
/// <see cref="FirstSeq"/> and <see cref="LastSeq"/>), the prev_hash of its first event and the hash of its last.
/// </summary>
public sealed record AuditArchiveRange(long FirstSeq, long LastSeq, long Count, byte[] FirstPrevHash, byte[] LastHash)
{
    /// <summary>The file holds every seq of its range (nothing of the range stayed in the database).</summary>
    public bool Contiguous => Count == LastSeq - FirstSeq + 1;
}

/// <summary>
/// The part of a project's audit trail that retention moved out of the database into archive files (implemented by
/// the retention feature's archiver). The audit services use it so search, export and chain verification cover the
/// whole trail. Every method reads only the given project's manifests and files.
/// </summary>
public interface IAuditArchive
{
    /// <summary>The manifests' chain anchors, ordered by first seq; empty when nothing was archived.</summary>
    Task<IReadOnlyList<AuditArchiveRange>> RangesAsync(Guid projectId, CancellationToken ct = default);

    /// <summary>Archived events matching the Audit Log's filters, newest first (the slower path: files are read).</summary>
    Task<ArchivedSearchResult> SearchAsync(Guid projectId, AuditExportFilter filter, string? sessionId = null, int skip = 0, int take = 50,
        CancellationToken ct = default);

    /// <summary>Archived events matching the filter, in seq order, read lazily file by file (for exports).</summary>
    Task<IEnumerable<AuditEvent>> EventsAsync(Guid projectId, AuditExportFilter filter, CancellationToken ct = default);

    /// <summary>Null when every archive file exists and matches its manifest's SHA-256; otherwise the problem.</summary>
    Task<string?> CheckFilesAsync(Guid projectId, CancellationToken ct = default);

    /// <summary>The whole chain re-hashed from archive files and database rows merged by seq.</summary>
    Task<AuditVerification> VerifyAcrossAsync(Guid projectId, CancellationToken ct = default);
}

/// <summary>The Audit Log's filters applied to one event in memory (archived events have no index to query).</summary>
public static class AuditEventMatch
{
    public static bool Matches(AuditEvent e, AuditExportFilter f, string? sessionId = null)
    {
        if (f.From is { } from && e.OccurredAt < from) return false;
        if (f.To is { } to && e.OccurredAt >= to) return false;
        if (f.EventTypes is { Count: > 0 } types && !types.Contains(e.EventType)) return false;
        if (!string.IsNullOrWhiteSpace(f.Actor))
        {
            var actor = f.Actor.Trim();
            if (e.ActorId != actor && e.ActorEmail != actor) return false;
        }
        if (f.SecurityLevel is { } level && e.SecurityLevel != AuditNormalizer.Level(level)) return false;
        if (!string.IsNullOrWhiteSpace(sessionId) && e.SessionId != sessionId.Trim()) return false;
        if (!string.IsNullOrWhiteSpace(f.Text))
        {
            // The same columns as the database search (AuditSearch), case-insensitive.
            var text = f.Text.Trim();
            string?[] searchable = [e.EventType, e.ResourceType, e.ResourceId, e.Action, e.ActorId, e.ActorEmail, e.Prompt, e.SqlText,
                e.Details, e.BeforeState, e.AfterState, e.ErrorMessage];
            if (!searchable.Any(v => v is not null && v.Contains(text, StringComparison.OrdinalIgnoreCase))) return false;
        }
        return true;
    }
}
