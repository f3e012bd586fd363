using System.Buffers;
using System.Globalization;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Portal.Domain.Audit;
using Portal.Domain.Persistence;

namespace Portal.Domain.Compliance.Retention;

/// <summary>What a run archived; <paramref name="Writing"/> (read, JSON, gzip, fsync) and <paramref name="Deleting"/> (manifests and delete) say where its time went.</summary>
public sealed record ArchiveRunResult(int Projects, int Files, long EventsArchived, TimeSpan Writing = default, TimeSpan Deleting = default);

public sealed record ArchiveVerification(AuditVerification Chain, long ArchivedEvents, long DatabaseEvents, int Files);


/// <summary>
/// The nightly move of expired audit events into compressed JSONL files, one per project per UTC day and run, each with
/// a manifest row (count, first/last seq, the prev_hash of the first event and the hash of the last, SHA-256 of the file).
/// <para>
/// Order of work, so nothing is lost: the files are written and fsynced first; then one transaction inserts the
/// manifests and deletes exactly the archived events (if the delete count differs, it rolls back and the files are
/// removed). A crash before the commit leaves only orphan files, which the next run overwrites.
/// </para>
/// <para>
/// Every archived line holds every column of the event, so <see cref="VerifyAsync"/> recomputes the whole hash chain
/// across archive files and database rows merged by seq, from genesis to the recorded chain head.
/// </para>
/// </summary>
public sealed class AuditArchiver(IDbContextFactory<PortalDbContext> dbFactory, PortalDatabase database, DatabaseOptions dbOptions, IConfiguration configuration,
    RetentionService retention, TimeProvider clock, ILogger<AuditArchiver>? logger = null) : IAuditArchive
{
    private readonly ILogger log = (ILogger?)logger ?? NullLogger.Instance;

    /// <summary>Where archive files live ("Retention:ArchiveDirectory", default archive/ in the data directory). Workers on PostgreSQL must share it.</summary>
    public string ArchiveDirectory => Path.GetFullPath(configuration["Retention:ArchiveDirectory"] is { Length: > 0 } d ? d : Path.Combine(dbOptions.DataDirectory, "archive"));

    public async Task<ArchiveRunResult> ArchiveAsync(CancellationToken ct = default)
    {
        List<Guid> projects;
        await using (var db = await dbFactory.CreateDbContextAsync(ct))
            projects = await db.AuditChainHeads.AsNoTracking().Select(h => h.ProjectId).ToListAsync(ct);
        int files = 0, touched = 0;
        long events = 0;
        TimeSpan writing = default, deleting = default;
        foreach (var p in projects)
        {
            var (f, n, wr, del) = await ArchiveProjectTimedAsync(p, ct);
            if (n > 0) touched++;
            files += f;
            events += n;
            writing += wr;
            deleting += del;
        }
        return new ArchiveRunResult(touched, files, events, writing, deleting);
    }

    private sealed class DayFile(string path, FileStream file)
    {
        public readonly string Path = path;
        public readonly FileStream File = file;
        public readonly GZipStream Gzip = new(file, CompressionLevel.Fastest, leaveOpen: true);
        public long Count, FirstSeq, LastSeq;
        public byte[] FirstPrevHash = [], LastHash = [];
        // Lines collect in Pending; a full chunk is compressed on another thread while the next one fills.
        public ArrayBufferWriter<byte> Pending = new(ChunkBytes + 65536), Spare = new(ChunkBytes + 65536);
        public Task? Compressing;

        public void FlushChunk(bool wait)
        {
            Compressing?.GetAwaiter().GetResult();
            Compressing = null;
            if (Pending.WrittenCount > 0)
            {
                (Pending, Spare) = (Spare, Pending);
                Pending.ResetWrittenCount();
                var chunk = Spare;
                Compressing = Task.Run(() => Gzip.Write(chunk.WrittenSpan));
            }
            if (wait) { Compressing?.GetAwaiter().GetResult(); Compressing = null; }
        }

        /// <summary>Waits for a running compression without throwing: cleanup after a failure.</summary>
        public void Settle()
        {
            try { Compressing?.GetAwaiter().GetResult(); } catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException) { }
            Compressing = null;
        }
    }

    private const int ChunkBytes = 1 << 20;

    // A file, not a web page: keep quotes and non-ASCII as they are (the default encoder escapes " in every JSON detail).
    private static readonly JsonWriterOptions LineOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping, SkipValidation = true };

    public async Task<(int Files, long Events)> ArchiveProjectAsync(Guid projectId, CancellationToken ct = default)
    {
        var (files, events, _, _) = await ArchiveProjectTimedAsync(projectId, ct);
        return (files, events);
    }

    private async Task<(int Files, long Events, TimeSpan Writing, TimeSpan Deleting)> ArchiveProjectTimedAsync(Guid projectId, CancellationToken ct)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        IReadOnlyDictionary<string, int> days;
        await using (var db = await dbFactory.CreateDbContextAsync(ct)) days = await retention.DaysAsync(db, projectId, ct);
        var now = clock.GetUtcNow();
        var cutoffs = days.ToDictionary(kv => kv.Key, kv => (now - TimeSpan.FromDays(kv.Value)).UtcTicks);
        var latestCutoff = cutoffs.Values.Max();
        var dir = Path.Combine(ArchiveDirectory, projectId.ToString());
        var open = new Dictionary<long, DayFile>();
        var seqs = new List<long>();
        try
        {
            await Task.Run(() => Scan(projectId, cutoffs, latestCutoff, dir, open, seqs, ct), ct);
            if (seqs.Count == 0) return (0, 0, default, default);
            var manifests = new List<AuditArchive>();
            foreach (var (day, f) in open)
            {
                f.FlushChunk(wait: true);
                await f.Gzip.DisposeAsync();
                f.File.Flush(flushToDisk: true);
                var size = f.File.Length;
                f.File.Position = 0;
                var sha = Convert.ToHexStringLower(await SHA256.HashDataAsync(f.File, ct));
                await f.File.DisposeAsync();
                var final = Path.Combine(dir, $"{new DateTime(day * TimeSpan.TicksPerDay, DateTimeKind.Utc):yyyy-MM-dd}.{f.FirstSeq}-{f.LastSeq}.jsonl.gz");
                File.Move(f.Path, final, overwrite: true);
                manifests.Add(new AuditArchive
                {
                    ProjectId = projectId, Day = new DateTimeOffset(day * TimeSpan.TicksPerDay, TimeSpan.Zero), FileName = Path.GetRelativePath(ArchiveDirectory, final),
                    EventCount = f.Count, FirstSeq = f.FirstSeq, LastSeq = f.LastSeq, FirstPrevHash = f.FirstPrevHash, LastHash = f.LastHash, Sha256 = sha,
                    ByteSize = size, CreatedAt = now,
                });
            }
            open.Clear();
            var writing = System.Diagnostics.Stopwatch.GetElapsedTime(started);
            try
            {
                await CommitAsync(projectId, manifests, seqs, ct);
            }
            catch
            {
                foreach (var m in manifests) File.Delete(Path.Combine(ArchiveDirectory, m.FileName));
                throw;
            }
            var deleting = System.Diagnostics.Stopwatch.GetElapsedTime(started) - writing;
            log.LogInformation("Archived {Count} audit events of project {Project} into {Files} file(s): {Writing:F1} s writing, {Deleting:F1} s deleting",
                seqs.Count, projectId, manifests.Count, writing.TotalSeconds, deleting.TotalSeconds);
            return (manifests.Count, seqs.Count, writing, deleting);
        }
        finally
        {
            foreach (var f in open.Values)
            {
                f.Settle();
                f.Gzip.Dispose();
                f.File.Dispose();
                File.Delete(f.Path);
            }
        }
    }

    private void Scan(Guid projectId, Dictionary<string, long> cutoffs, long latestCutoff, string dir, Dictionary<long, DayFile> open, List<long> seqs, CancellationToken ct)
    {
        using var rows = AuditRows.Open(database, "WHERE project_id = @p AND occurred_at < @c ORDER BY seq",
            [("@p", AuditReader.Id(database, projectId)), ("@c", AuditReader.Time(database, new DateTimeOffset(latestCutoff, TimeSpan.Zero)))]);
        using var w = new Utf8JsonWriter(Stream.Null, LineOptions);
        var cSec = cutoffs[EventClasses.SecurityConfig];
        var cQuery = cutoffs[EventClasses.Query];
        var cAct = cutoffs[EventClasses.Activity];
        while (rows.Read())
        {
            if ((seqs.Count & 0xFFFF) == 0) ct.ThrowIfCancellationRequested();
            var ticks = rows.UtcTicks(AuditRows.OccurredAt);
            var cls = EventClasses.Of(rows.Utf8(6));
            var cutoff = cls == EventClasses.Activity ? cAct : cls == EventClasses.Query ? cQuery : cSec;
            if (ticks >= cutoff) continue;
            var day = ticks / TimeSpan.TicksPerDay;
            if (!open.TryGetValue(day, out var f))
            {
                Directory.CreateDirectory(dir);
                var path = Path.Combine(dir, $".{Guid.NewGuid():N}.partial");
                f = new DayFile(path, new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16));
                open[day] = f;
            }
            var seq = rows.Int64(AuditRows.Seq);
            if (f.Count == 0) { f.FirstSeq = seq; f.FirstPrevHash = rows.Blob(AuditRows.PrevHash).ToArray(); }
            f.LastSeq = seq;
            f.Count++;
            seqs.Add(seq);
            w.Reset(f.Pending);
            WriteLine(w, rows, projectId, seq, ticks);
            w.Flush();
            f.Pending.Write("\n"u8);
            if (f.Pending.WrittenCount >= ChunkBytes) f.FlushChunk(wait: false);
            var hash = rows.Blob(AuditRows.Hash);
            if (f.LastHash.Length != hash.Length) f.LastHash = new byte[hash.Length];
            hash.CopyTo(f.LastHash);
        }
    }

    private static readonly JsonEncodedText?[] TextColumns = Names(
    [
        "", "", "", "", "", "", "event_type", "resource_type", "resource_id", "action", "actor_type", "actor_id", "actor_email", "actor_role", "session_id",
        "details", "before_state", "after_state", "prompt", "sql_text", "tables_accessed", "", "error_message", "", "", "security_level",
        "data_classifications", "client_ip", "user_agent", "request_id",
    ]);

    private static JsonEncodedText?[] Names(string[] names) => names.Select(n => n.Length == 0 ? (JsonEncodedText?)null : JsonEncodedText.Encode(n)).ToArray();

    private static void WriteLine(Utf8JsonWriter w, AuditRows rows, Guid projectId, long seq, long ticks)
    {
        w.WriteStartObject();
        w.WriteString("project_id"u8, projectId);
        w.WriteNumber("seq"u8, seq);
        w.WriteString("id"u8, rows.Guid(AuditRows.Id));
        w.WriteHex("prev_hash"u8, rows.Blob(AuditRows.PrevHash));
        w.WriteHex("hash"u8, rows.Blob(AuditRows.Hash));
        w.WriteNumber("occurred_at_ticks"u8, ticks);
        w.WriteString("occurred_at"u8, new DateTime(ticks, DateTimeKind.Utc));
        for (var c = 6; c < TextColumns.Length; c++)
        {
            if (TextColumns[c] is not { } name || rows.IsNull(c)) continue;
            w.WriteString(name, rows.Utf8(c));
        }
        w.WriteBoolean("success"u8, rows.Bool(AuditRows.Success));
        if (!rows.IsNull(AuditRows.DurationMs)) w.WriteNumber("duration_ms"u8, rows.Int64(AuditRows.DurationMs));
        if (!rows.IsNull(AuditRows.RowsReturned)) w.WriteNumber("rows_returned"u8, rows.Int64(AuditRows.RowsReturned));
        w.WriteEndObject();
    }

    private async Task CommitAsync(Guid projectId, List<AuditArchive> manifests, List<long> seqs, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        db.Database.SetCommandTimeout(TimeSpan.FromMinutes(10));
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        db.AddRange(manifests);
        await db.SaveChangesAsync(ct);
        long deleted = await AuditPartitions.TruncateArchivedMonthsAsync(db, projectId, manifests, seqs, log, ct); // PostgreSQL: months archived whole, emptied at once
        var conn = db.Database.GetDbConnection();
        await using (var cmd = conn.CreateCommand())
        {
            cmd.Transaction = db.Database.CurrentTransaction!.GetDbTransaction();
            var sqlite = db.IsSqlite;
            var project = sqlite ? (object)projectId.ToString().ToUpperInvariant() : projectId;
            // Archived seqs are mostly long contiguous runs (everything before a cutoff): delete range by range.
            foreach (var chunk in Runs(seqs).Chunk(500))
            {
                cmd.Parameters.Clear();
                var p = cmd.CreateParameter();
                p.ParameterName = "@p";
                p.Value = project;
                cmd.Parameters.Add(p);
                // Integers we produced, inlined.
                cmd.CommandText = "DELETE FROM audit_events WHERE project_id = @p AND (" +
                    string.Join(" OR ", chunk.Select(r => r.First == r.Last ? $"seq = {r.First}" : $"seq BETWEEN {r.First} AND {r.Last}")) + ")";
                deleted += await cmd.ExecuteNonQueryAsync(ct);
            }
        }
        if (deleted != seqs.Count)
            throw new InvalidOperationException($"Archive of project {projectId}: expected to delete {seqs.Count} events but deleted {deleted}; another archiver ran at the same time. Nothing was changed.");
        await tx.CommitAsync(ct);
    }

    private static IEnumerable<(long First, long Last)> Runs(List<long> sorted)
    {
        long first = sorted[0], last = sorted[0];
        for (var i = 1; i < sorted.Count; i++)
        {
            if (sorted[i] == last + 1) { last = sorted[i]; continue; }
            yield return (first, last);
            first = last = sorted[i];
        }
        yield return (first, last);
    }

    public async Task<IReadOnlyList<AuditArchive>> ManifestsAsync(Guid projectId, int skip = 0, int take = 50, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        return await db.Set<AuditArchive>().AsNoTracking().Where(a => a.ProjectId == projectId).OrderByDescending(a => a.Day).ThenByDescending(a => a.FirstSeq)
            .Skip(Math.Max(0, skip)).Take(Math.Clamp(take, 1, 200)).ToListAsync(ct);
    }

    public async Task<int> ManifestCountAsync(Guid projectId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        return await db.Set<AuditArchive>().CountAsync(a => a.ProjectId == projectId, ct);
    }

    /// <summary>Reads one archive line back into an event (every column, exactly as stored).</summary>
    public static AuditEvent ParseLine(ReadOnlySpan<byte> line)
    {
        var r = new Utf8JsonReader(line);
        var e = new AuditEvent();
        r.Read();
        while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
        {
            var name = r.GetString()!;
            r.Read();
            switch (name)
            {
                case "project_id": e.ProjectId = r.GetGuid(); break;
                case "seq": e.Seq = r.GetInt64(); break;
                case "id": e.Id = r.GetGuid(); break;
                case "prev_hash": e.PrevHash = Convert.FromHexString(r.GetString()!); break;
                case "hash": e.Hash = Convert.FromHexString(r.GetString()!); break;
                case "occurred_at_ticks": e.OccurredAt = new DateTimeOffset(r.GetInt64(), TimeSpan.Zero); break;
                case "event_type": e.EventType = r.GetString()!; break;
                case "resource_type": e.ResourceType = r.GetString(); break;
                case "resource_id": e.ResourceId = r.GetString(); break;
                case "action": e.Action = r.GetString(); break;
                case "actor_type": e.ActorType = r.GetString()!; break;
                case "actor_id": e.ActorId = r.GetString(); break;
                case "actor_email": e.ActorEmail = r.GetString(); break;
                case "actor_role": e.ActorRole = r.GetString(); break;
                case "session_id": e.SessionId = r.GetString(); break;
                case "details": e.Details = r.GetString(); break;
                case "before_state": e.BeforeState = r.GetString(); break;
                case "after_state": e.AfterState = r.GetString(); break;
                case "prompt": e.Prompt = r.GetString(); break;
                case "sql_text": e.SqlText = r.GetString(); break;
                case "tables_accessed": e.TablesAccessed = r.GetString(); break;
                case "success": e.Success = r.GetBoolean(); break;
                case "error_message": e.ErrorMessage = r.GetString(); break;
                case "duration_ms": e.DurationMs = r.GetInt64(); break;
                case "rows_returned": e.RowsReturned = r.GetInt64(); break;
                case "security_level": e.SecurityLevel = r.GetString()!; break;
                case "data_classifications": e.DataClassifications = r.GetString(); break;
                case "client_ip": e.ClientIp = r.GetString(); break;
                case "user_agent": e.UserAgent = r.GetString(); break;
                case "request_id": e.RequestId = r.GetString(); break;
                default: r.Skip(); break;
            }
        }
        return e;
    }

    /// <summary>
    /// The file of a manifest, which must lie in its project's folder of the archive directory: a manifest row edited to
    /// point elsewhere (another project's folder, "../") is refused rather than read.
    /// </summary>
    private string PathOf(AuditArchive manifest)
    {
        var folder = Path.Combine(ArchiveDirectory, manifest.ProjectId.ToString()) + Path.DirectorySeparatorChar;
        var path = Path.GetFullPath(Path.Combine(ArchiveDirectory, manifest.FileName));
        if (!path.StartsWith(folder, StringComparison.Ordinal))
            throw new InvalidDataException($"Archive file {manifest.FileName} is outside its project's archive folder.");
        return path;
    }

    /// <summary>Every event of one archive file, after checking its SHA-256 against the manifest.</summary>
    public IEnumerable<AuditEvent> ReadFile(AuditArchive manifest)
    {
        var path = PathOf(manifest);
        if (!File.Exists(path)) throw new FileNotFoundException($"Archive file {manifest.FileName} is missing.", path);
        using (var check = File.OpenRead(path))
        {
            var sha = Convert.ToHexStringLower(SHA256.HashData(check));
            if (sha != manifest.Sha256) throw new InvalidDataException($"Archive file {manifest.FileName} does not match its manifest's SHA-256 (altered or damaged).");
        }
        using var file = File.OpenRead(path);
        using var gz = new GZipStream(file, CompressionMode.Decompress);
        using var reader = new StreamReader(gz, Encoding.UTF8);
        long count = 0;
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0) continue;
            count++;
            var e = ParseLine(Encoding.UTF8.GetBytes(line));
            // Tenant isolation holds even if a file was copied into another project's folder.
            if (e.ProjectId != manifest.ProjectId) throw new InvalidDataException($"Archive file {manifest.FileName} holds an event of another project.");
            yield return e;
        }
        if (count != manifest.EventCount) throw new InvalidDataException($"Archive file {manifest.FileName} holds {count} events; its manifest says {manifest.EventCount}.");
    }

    /// <summary>Verifies the project's whole chain across archive files and the database, merged by seq, up to the chain head.</summary>
    public async Task<ArchiveVerification> VerifyAsync(Guid projectId, CancellationToken ct = default)
    {
        List<AuditArchive> manifests;
        AuditChainHead? head;
        await using (var db = await dbFactory.CreateDbContextAsync(ct))
        {
            manifests = await db.Set<AuditArchive>().AsNoTracking().Where(a => a.ProjectId == projectId).OrderBy(a => a.FirstSeq).ToListAsync(ct);
            head = await db.AuditChainHeads.AsNoTracking().FirstOrDefaultAsync(h => h.ProjectId == projectId, ct);
        }
        return await Task.Run(() => Verify(projectId, manifests, head, ct), ct);
    }

    private ArchiveVerification Verify(Guid projectId, List<AuditArchive> manifests, AuditChainHead? head, CancellationToken ct)
    {
        long archived = 0, inDb = 0;
        using var db = dbFactory.CreateDbContext();
        var sources = new List<IEnumerator<AuditEvent>>();
        var queue = new PriorityQueue<int, long>();
        AuditVerification Broken(long seq, string problem, long count) => new(projectId, false, count, seq, problem);
        try
        {
            try
            {
                foreach (var m in manifests) sources.Add(ReadFile(m).GetEnumerator());
            }
            catch (Exception e) when (e is IOException or InvalidDataException) { return new(Broken(0, e.Message, 0), 0, 0, manifests.Count); }
            var dbIndex = sources.Count;
            sources.Add(db.AuditEvents.AsNoTracking().Where(e => e.ProjectId == projectId).OrderBy(e => e.Seq).AsEnumerable().GetEnumerator());
            for (var i = 0; i < sources.Count; i++)
                if (Advance(i)) queue.Enqueue(i, sources[i].Current.Seq);

            var previous = AuditHash.Genesis();
            var buffer = new byte[1024];
            var computed = new byte[AuditHash.Size];
            long expected = 1, checkedCount = 0;
            while (queue.TryDequeue(out var i, out _))
            {
                var e = sources[i].Current;
                if ((checkedCount & 0xFFFF) == 0) ct.ThrowIfCancellationRequested();
                if (e.Seq != expected)
                    return Result(e.Seq > expected ? Broken(expected, $"events {expected}..{e.Seq - 1} are neither in the database nor in an archive", checkedCount)
                        : Broken(e.Seq, $"seq {e.Seq} appears more than once (database and archive)", checkedCount));
                if (!e.PrevHash.AsSpan().SequenceEqual(previous)) return Result(Broken(e.Seq, "prev_hash is not the hash of the previous event", checkedCount));
                var n = AuditHash.EncodeBody(e, ref buffer);
                AuditHash.Compute(e.ProjectId, e.Seq, e.PrevHash, buffer.AsSpan(0, n), computed);
                if (!computed.AsSpan().SequenceEqual(e.Hash)) return Result(Broken(e.Seq, "the event's content does not match its hash", checkedCount));
                e.Hash.CopyTo(previous, 0);
                if (i == dbIndex) inDb++; else archived++;
                expected++;
                checkedCount++;
                if (Advance(i)) queue.Enqueue(i, sources[i].Current.Seq);
            }
            var last = expected - 1;
            var headSeq = head?.Seq ?? 0;
            if (headSeq != last) return Result(Broken(Math.Min(headSeq, last) + 1, $"the chain ends at {last} but its head records {headSeq}", checkedCount));
            if (head is not null && !head.Hash.AsSpan().SequenceEqual(previous)) return Result(Broken(last, "the last event's hash differs from the chain head", checkedCount));
            return Result(new AuditVerification(projectId, true, checkedCount));
        }
        catch (Exception e) when (e is IOException or InvalidDataException or JsonException or FormatException)
        {
            return Result(Broken(0, e.Message, archived + inDb));
        }
        finally
        {
            foreach (var s in sources) s.Dispose();
        }

        bool Advance(int i) => sources[i].MoveNext();
        ArchiveVerification Result(AuditVerification v) => new(v, archived, inDb, manifests.Count);
    }

    /// <summary>The Retention page's archive search: a date range, one event type and free text.</summary>
    public Task<ArchivedSearchResult> SearchAsync(Guid projectId, DateTimeOffset? from, DateTimeOffset? to, string? eventType, string? text,
        int skip = 0, int take = 50, long maxScanned = 2_000_000, CancellationToken ct = default) =>
        SearchAsync(projectId, new AuditExportFilter
        {
            From = from, To = to, EventTypes = string.IsNullOrWhiteSpace(eventType) ? null : [eventType.Trim()],
            Text = string.IsNullOrWhiteSpace(text) ? null : text,
        }, null, skip, take, maxScanned, ct);

    Task<ArchivedSearchResult> IAuditArchive.SearchAsync(Guid projectId, AuditExportFilter filter, string? sessionId, int skip, int take, CancellationToken ct) =>
        SearchAsync(projectId, filter, sessionId, skip, take, ct: ct);

    /// <summary>
    /// The slower search over archived events, with the Audit Log's filters (<see cref="AuditEventMatch"/>): reads the
    /// archive files whose day falls in the range, newest day first, and filters line by line. Newest first, at most
    /// <paramref name="take"/> results after <paramref name="skip"/>; stops scanning after <paramref name="maxScanned"/>
    /// events and says so.
    /// </summary>
    public async Task<ArchivedSearchResult> SearchAsync(Guid projectId, AuditExportFilter filter, string? sessionId, int skip = 0, int take = 50,
        long maxScanned = 2_000_000, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        if (filter.Text is { Length: > 200 }) throw DomainException.Invalid("text", "Search text can be at most 200 characters.");
        if (filter.From is { } f && filter.To is { } t && t <= f) throw DomainException.Invalid("to", "The end of the date range must be after its start.");
        take = Math.Clamp(take, 1, 200);
        skip = Math.Max(0, skip);
        var manifests = await ManifestsInAsync(projectId, filter.From, filter.To, newestFirst: true, ct);
        return await Task.Run(() =>
        {
            var matches = new List<AuditEvent>();
            long scanned = 0;
            var files = 0;
            var needed = skip + take + 1; // one more tells whether another page exists
            for (var i = 0; i < manifests.Count; i++)
            {
                var m = manifests[i];
                files++;
                foreach (var e in ReadFile(m))
                {
                    if ((++scanned & 0xFFFF) == 0) ct.ThrowIfCancellationRequested();
                    if (AuditEventMatch.Matches(e, filter, sessionId)) matches.Add(e);
                }
                // Files of one day (several runs) may interleave in time: stop only at a day boundary.
                var dayDone = i + 1 == manifests.Count || manifests[i + 1].Day != m.Day;
                if (dayDone && (matches.Count >= needed || scanned >= maxScanned)) break;
            }
            var ordered = matches.OrderByDescending(e => e.OccurredAt).ThenByDescending(e => e.Seq).Skip(skip).ToList();
            var hasMore = ordered.Count > take;
            return new ArchivedSearchResult(ordered.Take(take).ToList(), scanned, files, scanned >= maxScanned, hasMore);
        }, ct);
    }

    private async Task<List<AuditArchive>> ManifestsInAsync(Guid projectId, DateTimeOffset? from, DateTimeOffset? to, bool newestFirst, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var q = db.Set<AuditArchive>().AsNoTracking().Where(a => a.ProjectId == projectId);
        if (from is { } fr) { var day = new DateTimeOffset(fr.UtcDateTime.Date, TimeSpan.Zero); q = q.Where(a => a.Day >= day); }
        if (to is { } tt) q = q.Where(a => a.Day < tt);
        var list = await q.ToListAsync(ct);
        return newestFirst
            ? list.OrderByDescending(a => a.Day).ThenByDescending(a => a.FirstSeq).ToList()
            : list.OrderBy(a => a.FirstSeq).ToList();
    }

    public async Task<IReadOnlyList<AuditArchiveRange>> RangesAsync(Guid projectId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var rows = await db.Set<AuditArchive>().AsNoTracking().Where(a => a.ProjectId == projectId).ToListAsync(ct);
        return rows.OrderBy(a => a.FirstSeq).Select(a => new AuditArchiveRange(a.FirstSeq, a.LastSeq, a.EventCount, a.FirstPrevHash, a.LastHash)).ToList();
    }

    /// <summary>Archived events matching the filter in seq order: files are merged by seq (several runs may cover one seq range).</summary>
    public async Task<IEnumerable<AuditEvent>> EventsAsync(Guid projectId, AuditExportFilter filter, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        var manifests = await ManifestsInAsync(projectId, filter.From, filter.To, newestFirst: false, ct);
        return Merge(manifests, filter, ct);
    }

    private IEnumerable<AuditEvent> Merge(List<AuditArchive> manifests, AuditExportFilter filter, CancellationToken ct)
    {
        var sources = new List<IEnumerator<AuditEvent>>();
        var queue = new PriorityQueue<int, long>();
        try
        {
            foreach (var m in manifests)
            {
                var s = ReadFile(m).Where(e => AuditEventMatch.Matches(e, filter)).GetEnumerator();
                sources.Add(s);
                if (s.MoveNext()) queue.Enqueue(sources.Count - 1, s.Current.Seq);
            }
            long n = 0;
            while (queue.TryDequeue(out var i, out _))
            {
                if ((++n & 0x3FFF) == 0) ct.ThrowIfCancellationRequested();
                yield return sources[i].Current;
                if (sources[i].MoveNext()) queue.Enqueue(i, sources[i].Current.Seq);
            }
        }
        finally
        {
            foreach (var s in sources) s.Dispose();
        }
    }

    public async Task<string?> CheckFilesAsync(Guid projectId, CancellationToken ct = default)
    {
        List<AuditArchive> manifests;
        await using (var db = await dbFactory.CreateDbContextAsync(ct))
            manifests = await db.Set<AuditArchive>().AsNoTracking().Where(a => a.ProjectId == projectId).ToListAsync(ct);
        foreach (var m in manifests.OrderBy(m => m.FirstSeq))
        {
            try
            {
                var path = PathOf(m);
                if (!File.Exists(path)) return $"archive file {m.FileName} (seq {m.FirstSeq}..{m.LastSeq}) is missing";
                await using var file = File.OpenRead(path);
                if (Convert.ToHexStringLower(await SHA256.HashDataAsync(file, ct)) != m.Sha256)
                    return $"archive file {m.FileName} (seq {m.FirstSeq}..{m.LastSeq}) does not match its manifest's SHA-256 (altered or damaged)";
            }
            catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException) { return e.Message; }
        }
        return null;
    }

    public async Task<AuditVerification> VerifyAcrossAsync(Guid projectId, CancellationToken ct = default)
    {
        var v = await VerifyAsync(projectId, ct);
        return v.Chain with { ArchivedEvents = v.ArchivedEvents };
    }

    private static readonly ReadOnlyMemory<byte> Newline = "\n"u8.ToArray();

    /// <summary>Writes the archived events of a date range as JSONL (the archive's own line format, decompressed).</summary>
    public async Task<long> ExportAsync(Guid projectId, DateTimeOffset from, DateTimeOffset to, Stream output, CancellationToken ct = default)
    {
        List<AuditArchive> manifests;
        await using (var db = await dbFactory.CreateDbContextAsync(ct))
        {
            var day = new DateTimeOffset(from.UtcDateTime.Date, TimeSpan.Zero);
            manifests = await db.Set<AuditArchive>().AsNoTracking().Where(a => a.ProjectId == projectId && a.Day >= day && a.Day < to)
                .OrderBy(a => a.Day).ThenBy(a => a.FirstSeq).ToListAsync(ct);
        }
        long n = 0;
        foreach (var m in manifests)
        {
            foreach (var e in ReadFile(m))
            {
                if (e.OccurredAt < from || e.OccurredAt >= to) continue;
                await output.WriteAsync(JsonSerializer.SerializeToUtf8Bytes(e), ct);
                await output.WriteAsync(Newline, ct);
                n++;
            }
        }
        return n;
    }
}
