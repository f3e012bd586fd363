using System.Globalization;
using System.Text;
using System.Text.Json;
using CsvHelper;
using Portal.Domain.Persistence;

namespace Portal.Domain.Audit;

public enum AuditExportFormat { Csv, JsonLines, JsonArray }

/// <summary>Which events to export. Every filter is optional; <see cref="To"/> is exclusive.</summary>
public sealed record AuditExportFilter
{
    public DateTimeOffset? From { get; init; }
    public DateTimeOffset? To { get; init; }
    public IReadOnlyList<string>? EventTypes { get; init; }
    /// <summary>Matches the actor's id (user id, key id) or email exactly.</summary>
    public string? Actor { get; init; }
    public AuditSecurityLevel? SecurityLevel { get; init; }
    /// <summary>Case-insensitive substring of the type, resource, action, actor, prompt, SQL, details, before/after or error.</summary>
    public string? Text { get; init; }
}

/// <summary>
/// Streams a project's audit events, in seq order, as CSV or JSON with each event's prev_hash and hash (hex), so an
/// auditor can re-check the chain outside the portal. Rows go from a forward-only reader straight to the output, so
/// memory does not grow with the export. The export is itself audited first: if that event cannot be written,
/// nothing is exported.
/// </summary>
/// <para>
/// With <c>includeArchived</c>, events that retention moved to archive files and that match the same filters are
/// merged in by seq (read from the files: slower), marked by a trailing "source" column / field.
/// </para>
public sealed class AuditExporter(PortalDatabase database, AuditWriter writer, IAuditArchive? archive = null)
{
    /// <summary>
    /// A CSV export of more seqs than this is formatted in blocks of this many seqs on several threads (each block its
    /// own cursor), written out in seq order, so the output is the same bytes as one pass.
    /// </summary>
    public long CsvBlockSize { get; init; } = 8192;

    /// <summary>CSV/JSON column names, in output order.</summary>
    public static readonly string[] Fields =
    [
        "project_id", "seq", "id", "occurred_at", "event_type", "resource_type", "resource_id", "action", "actor_type", "actor_id",
        "actor_email", "actor_role", "session_id", "success", "error_message", "duration_ms", "rows_returned", "security_level",
        "data_classifications", "tables_accessed", "client_ip", "user_agent", "request_id", "prompt", "sql_text", "details",
        "before_state", "after_state", "prev_hash", "hash",
    ];

    /// <summary>Exports and returns the number of events written.</summary>
    public async Task<long> ExportAsync(Guid projectId, AuditExportFilter filter, AuditExportFormat format, Stream output,
        AuditActor exportedBy, CancellationToken ct = default, bool includeArchived = false)
    {
        ArgumentNullException.ThrowIfNull(filter);
        ArgumentNullException.ThrowIfNull(output);
        if (filter.From is { } f && filter.To is { } t && t <= f)
            throw DomainException.Invalid(nameof(AuditExportFilter.To), "The end of the date range must be after its start.");
        if (filter.Text is { Length: > 200 })
            throw DomainException.Invalid(nameof(AuditExportFilter.Text), "Search text can be at most 200 characters.");

        await writer.AppendAsync(new AuditEventDraft
        {
            ProjectId = projectId,
            EventType = "audit.exported",
            Actor = exportedBy,
            ResourceType = "audit_trail",
            Action = "export",
            Details = JsonSerializer.Serialize(new
            {
                format = format.ToString(),
                from = filter.From,
                to = filter.To,
                event_types = filter.EventTypes,
                actor = filter.Actor,
                security_level = filter.SecurityLevel?.ToString(),
                text = filter.Text,
                include_archived = includeArchived ? true : (bool?)null,
            }),
        }, ct);

        // Only this project's manifests and files are read (the archive checks each event's project too).
        IEnumerator<AuditEvent>? archived = includeArchived && archive is not null
            ? (await archive.EventsAsync(projectId, filter, ct)).GetEnumerator() : null;
        try
        {
            if (format == AuditExportFormat.Csv && archived is null && await ExtentAsync(projectId, ct) is { } extent
                && extent.Last - extent.First + 1 > CsvBlockSize)
                return await WriteCsvBlocksAsync(projectId, filter, extent.First, extent.Last, output, ct);
            var (where, parameters) = BuildQuery(projectId, filter);
            // Synchronous cursor reads with asynchronous output writes: rows are read ahead by the drivers.
            using var rows = AuditRows.OpenStream(database, where, parameters);
            return format == AuditExportFormat.Csv
                ? await WriteCsvAsync(rows, output, ct, archived)
                : await WriteJsonAsync(rows, output, format == AuditExportFormat.JsonArray, ct, archived);
        }
        finally { archived?.Dispose(); }
    }

    private async Task<(long First, long Last)?> ExtentAsync(Guid projectId, CancellationToken ct)
    {
        await using var c = AuditReader.Open(database);
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT min(seq), max(seq) FROM audit_events WHERE project_id = @p";
        AuditReader.Add(cmd, "@p", AuditReader.Id(database, projectId));
        await using var r = await cmd.ExecuteReaderAsync(ct);
        return await r.ReadAsync(ct) && !r.IsDBNull(0) ? (r.GetInt64(0), r.GetInt64(1)) : null;
    }

    /// <summary>
    /// The CSV as consecutive seq blocks, each formatted by a worker into memory and written in order. Formatting is
    /// most of an export's CPU, so this spreads it over the cores; a few blocks in flight bound the memory.
    /// </summary>
    private async Task<long> WriteCsvBlocksAsync(Guid projectId, AuditExportFilter filter, long first, long last, Stream output, CancellationToken ct)
    {
        var blockSize = Math.Max(1, CsvBlockSize);
        var blocks = (last - first) / blockSize + 1;
        var window = Math.Max(2, Environment.ProcessorCount * 2);
        var spare = new System.Collections.Concurrent.ConcurrentBag<MemoryStream>();
        var pending = new Queue<Task<(MemoryStream Csv, long Rows)>>();
        long next = 0, total = 0;
        try
        {
            await using (var header = CsvWriter.Create(output, CsvWriterOptions.Default with { Injection = CsvInjection.Escape }, leaveOpen: true))
            {
                foreach (var name in Fields) header.WriteField(name);
                header.EndRecord();
                await header.FlushAsync(ct);
            }
            while (next < blocks && pending.Count < window) pending.Enqueue(Block(next++));
            while (pending.Count > 0)
            {
                var (csv, rows) = await pending.Dequeue();
                csv.Position = 0;
                await csv.CopyToAsync(output, ct);
                csv.SetLength(0);
                spare.Add(csv);
                total += rows;
                if (next < blocks) pending.Enqueue(Block(next++));
            }
            return total;
        }
        finally
        {
            // A failed or cancelled export: let the blocks still running finish before their connections go back.
            foreach (var t in pending) { try { await t; } catch (Exception) { } }
        }

        Task<(MemoryStream, long)> Block(long index) => Task.Run(async () =>
        {
            var lo = first + index * blockSize;
            var (where, parameters) = BuildQuery(projectId, filter, (lo, Math.Min(last, lo + blockSize - 1)));
            var csv = spare.TryTake(out var s) ? s : new MemoryStream();
            using var rows = AuditRows.OpenStream(database, where, parameters);
            var n = await WriteCsvAsync(rows, csv, ct, null, header: false);
            return (csv, n);
        }, ct);
    }

    private (string Where, List<(string, object)> Parameters) BuildQuery(Guid projectId, AuditExportFilter filter, (long First, long Last)? seqs = null)
    {
        var ps = new List<(string, object)> { ("@p", AuditReader.Id(database, projectId)) };
        var sql = new StringBuilder("WHERE project_id = @p");
        if (filter.From is { } from) { sql.Append(" AND occurred_at >= @from"); ps.Add(("@from", AuditReader.Time(database, from))); }
        if (filter.To is { } to) { sql.Append(" AND occurred_at < @to"); ps.Add(("@to", AuditReader.Time(database, to))); }
        if (filter.EventTypes is { Count: > 0 } types)
        {
            sql.Append(" AND event_type IN (");
            for (var i = 0; i < types.Count; i++)
            {
                sql.Append(i == 0 ? "" : ", ").Append("@t").Append(i);
                ps.Add(("@t" + i, types[i]));
            }
            sql.Append(')');
        }
        if (!string.IsNullOrWhiteSpace(filter.Actor))
        {
            sql.Append(" AND (actor_id = @actor OR actor_email = @actor)");
            ps.Add(("@actor", filter.Actor.Trim()));
        }
        if (filter.SecurityLevel is { } level)
        {
            sql.Append(" AND security_level = @level");
            ps.Add(("@level", AuditNormalizer.Level(level)));
        }
        if (!string.IsNullOrWhiteSpace(filter.Text))
        {
            // SQLite's LIKE ignores ASCII case; PostgreSQL needs ILIKE. The pattern is a parameter with % and _ escaped.
            var like = database.Provider == DatabaseProvider.Sqlite ? "LIKE" : "ILIKE";
            string[] searchable = ["event_type", "resource_type", "resource_id", "action", "actor_id", "actor_email", "prompt", "sql_text",
                "details", "before_state", "after_state", "error_message"];
            sql.Append(" AND (").Append(string.Join(" OR ", searchable.Select(col => $"{col} {like} @text ESCAPE '\\'"))).Append(')');
            var escaped = filter.Text.Trim().Replace("\\", "\\\\").Replace("%", "\\%").Replace("_", "\\_");
            ps.Add(("@text", "%" + escaped + "%"));
        }
        if (seqs is { } range)
        {
            sql.Append(" AND seq >= @lo AND seq <= @hi");
            ps.Add(("@lo", range.First));
            ps.Add(("@hi", range.Last));
        }
        sql.Append(" ORDER BY seq");
        return (sql.ToString(), ps);
    }


    /// <summary>Also used by compliance reports for their CSV of underlying events.</summary>
    internal static Task<long> WriteCsvAsync(AuditRows r, Stream output, CancellationToken ct, IEnumerator<AuditEvent>? archived = null) =>
        WriteCsvAsync(r, output, ct, archived, header: true);

    private static async Task<long> WriteCsvAsync(AuditRows r, Stream output, CancellationToken ct, IEnumerator<AuditEvent>? archived, bool header)
    {
        // CsvHelper neutralizes formula-like text cells (= + - @ tab CR) with a leading quote (CsvInjection.Escape).
        var options = CsvWriterOptions.Default with { Injection = CsvInjection.Escape };
        await using var csv = CsvWriter.Create(output, options, leaveOpen: true);
        if (header)
        {
            foreach (var name in Fields) csv.WriteField(name);
            if (archived is not null) csv.WriteField("source");
            csv.EndRecord();
        }
        var chars = new char[64];
        long n = 0;
        var merge = new SeqMerge(r, archived);
        while (merge.Next(out var e))
        {
            if ((n & 0x3FFF) == 0) ct.ThrowIfCancellationRequested();
            if (e is not null)
            {
                WriteCsvEvent(csv, e, chars);
                await csv.EndRecordAsync(ct);
                n++;
                continue;
            }
            WriteGuid(csv, r.Guid(AuditRows.ProjectId), chars);
            csv.WriteField(r.Int64(AuditRows.Seq));
            WriteGuid(csv, r.Guid(AuditRows.Id), chars);
            new DateTimeOffset(r.UtcTicks(AuditRows.OccurredAt), TimeSpan.Zero).TryFormat(chars, out var written, "O", CultureInfo.InvariantCulture);
            csv.WriteField(chars.AsSpan(0, written));
            for (var i = 4; i < Fields.Length - 2; i++)
            {
                var c = Column[i];
                if (r.IsNull(c)) { csv.WriteField(ReadOnlySpan<byte>.Empty); continue; }
                switch (c)
                {
                    case AuditRows.Success: csv.WriteField(r.Bool(c) ? "true"u8 : "false"u8); break;
                    case AuditRows.DurationMs or AuditRows.RowsReturned: csv.WriteField(r.Int64(c)); break;
                    default: csv.WriteField(r.Utf8(c)); break;
                }
            }
            WriteHex(csv, r.Blob(AuditRows.PrevHash), chars);
            WriteHex(csv, r.Blob(AuditRows.Hash), chars);
            if (archived is not null) csv.WriteField("database");
            await csv.EndRecordAsync(ct);
            n++;
        }
        await csv.FlushAsync(ct);
        return n;
    }

    /// <summary>One archived event as a CSV record: the same columns, formats and neutralization as a database row.</summary>
    private static void WriteCsvEvent(CsvWriter csv, AuditEvent e, char[] chars)
    {
        WriteGuid(csv, e.ProjectId, chars);
        csv.WriteField(e.Seq);
        WriteGuid(csv, e.Id, chars);
        e.OccurredAt.ToUniversalTime().TryFormat(chars, out var written, "O", CultureInfo.InvariantCulture);
        csv.WriteField(chars.AsSpan(0, written));
        for (var i = 4; i < Fields.Length - 2; i++)
        {
            switch (Value(e, Fields[i]))
            {
                case null: csv.WriteField(ReadOnlySpan<byte>.Empty); break;
                case bool b: csv.WriteField(b ? "true"u8 : "false"u8); break;
                case long l: csv.WriteField(l); break;
                case string s: csv.WriteField(s.AsSpan()); break;
            }
        }
        WriteHex(csv, e.PrevHash, chars);
        WriteHex(csv, e.Hash, chars);
        csv.WriteField("archive");
    }

    /// <summary>An event's value for a column of <see cref="Fields"/> (between occurred_at and prev_hash).</summary>
    private static object? Value(AuditEvent e, string field) => field switch
    {
        "event_type" => e.EventType,
        "resource_type" => e.ResourceType,
        "resource_id" => e.ResourceId,
        "action" => e.Action,
        "actor_type" => e.ActorType,
        "actor_id" => e.ActorId,
        "actor_email" => e.ActorEmail,
        "actor_role" => e.ActorRole,
        "session_id" => e.SessionId,
        "success" => e.Success,
        "error_message" => e.ErrorMessage,
        "duration_ms" => e.DurationMs,
        "rows_returned" => e.RowsReturned,
        "security_level" => e.SecurityLevel,
        "data_classifications" => e.DataClassifications,
        "tables_accessed" => e.TablesAccessed,
        "client_ip" => e.ClientIp,
        "user_agent" => e.UserAgent,
        "request_id" => e.RequestId,
        "prompt" => e.Prompt,
        "sql_text" => e.SqlText,
        "details" => e.Details,
        "before_state" => e.BeforeState,
        "after_state" => e.AfterState,
        _ => throw new InvalidOperationException($"Unknown audit field {field}."),
    };

    /// <summary>
    /// Database rows and archived events merged by seq: <see cref="Next"/> yields an archived event, or null when the
    /// database cursor is positioned on the next row to write.
    /// </summary>
    private sealed class SeqMerge(AuditRows rows, IEnumerator<AuditEvent>? archived)
    {
        private bool started, rowReady, archivedReady, rowPending;

        public bool Next(out AuditEvent? archivedEvent)
        {
            if (!started)
            {
                started = true;
                rowReady = rows.Read();
                archivedReady = archived?.MoveNext() ?? false;
            }
            else if (rowPending) rowReady = rows.Read();
            rowPending = false;
            archivedEvent = null;
            if (archivedReady && (!rowReady || archived!.Current.Seq < rows.Int64(AuditRows.Seq)))
            {
                archivedEvent = archived!.Current;
                archivedReady = archived.MoveNext();
                return true;
            }
            if (!rowReady) return false;
            rowPending = true;
            return true;
        }
    }

    private static void WriteGuid(CsvWriter csv, Guid g, char[] chars)
    {
        g.TryFormat(chars, out var written);
        csv.WriteField(chars.AsSpan(0, written));
    }

    private static void WriteHex(CsvWriter csv, ReadOnlySpan<byte> bytes, char[] chars)
    {
        Convert.TryToHexStringLower(bytes, chars, out var written);
        csv.WriteField(chars.AsSpan(0, written));
    }

    private static async Task<long> WriteJsonAsync(AuditRows r, Stream output, bool array, CancellationToken ct, IEnumerator<AuditEvent>? archived = null)
    {
        // JSON Lines flushes the writer after every object to add the newline; a buffer keeps those from being tiny writes.
        var target = array ? output : new BufferedStream(output, 64 * 1024);
        // JSON Lines puts several top-level values in one stream, which the writer's validation would refuse.
        await using var json = new Utf8JsonWriter(target, new JsonWriterOptions { SkipValidation = !array });
        if (array) json.WriteStartArray();
        var chars = new char[64];
        long n = 0;
        var merge = new SeqMerge(r, archived);
        while (merge.Next(out var e))
        {
            if ((n & 0x3FFF) == 0) ct.ThrowIfCancellationRequested();
            json.WriteStartObject();
            if (e is not null)
            {
                WriteJsonEvent(json, e);
                json.WriteString("source", "archive");
                json.WriteEndObject();
                await EndJsonValueAsync();
                continue;
            }
            json.WriteString("project_id", r.Guid(AuditRows.ProjectId));
            json.WriteNumber("seq", r.Int64(AuditRows.Seq));
            json.WriteString("id", r.Guid(AuditRows.Id));
            json.WriteString("occurred_at", new DateTimeOffset(r.UtcTicks(AuditRows.OccurredAt), TimeSpan.Zero));
            // JSON-valued columns are exported as their exact stored text: that text is what the hash covers.
            for (var i = 4; i < Fields.Length - 2; i++)
            {
                var c = Column[i];
                var name = Fields[i];
                if (r.IsNull(c)) { json.WriteNull(name); continue; }
                switch (c)
                {
                    case AuditRows.Success: json.WriteBoolean(name, r.Bool(c)); break;
                    case AuditRows.DurationMs or AuditRows.RowsReturned: json.WriteNumber(name, r.Int64(c)); break;
                    default: json.WriteString(name, r.Utf8(c)); break;
                }
            }
            Convert.TryToHexStringLower(r.Blob(AuditRows.PrevHash), chars, out var w);
            json.WriteString("prev_hash", chars.AsSpan(0, w));
            Convert.TryToHexStringLower(r.Blob(AuditRows.Hash), chars, out w);
            json.WriteString("hash", chars.AsSpan(0, w));
            if (archived is not null) json.WriteString("source", "database");
            json.WriteEndObject();
            await EndJsonValueAsync();
        }
        if (array) json.WriteEndArray();
        await json.FlushAsync(ct);
        await target.FlushAsync(ct);
        return n;

        async Task EndJsonValueAsync()
        {
            if (!array)
            {
                json.Flush();
                json.Reset(); // a fresh top-level value, so no separating comma
                target.WriteByte((byte)'\n');
            }
            if (json.BytesPending > 32 * 1024) await json.FlushAsync(ct);
            n++;
        }
    }

    private static void WriteJsonEvent(Utf8JsonWriter json, AuditEvent e)
    {
        json.WriteString("project_id", e.ProjectId);
        json.WriteNumber("seq", e.Seq);
        json.WriteString("id", e.Id);
        json.WriteString("occurred_at", e.OccurredAt.ToUniversalTime());
        for (var i = 4; i < Fields.Length - 2; i++)
        {
            switch (Value(e, Fields[i]))
            {
                case null: json.WriteNull(Fields[i]); break;
                case bool b: json.WriteBoolean(Fields[i], b); break;
                case long l: json.WriteNumber(Fields[i], l); break;
                case string s: json.WriteString(Fields[i], s); break;
            }
        }
        json.WriteString("prev_hash", Convert.ToHexStringLower(e.PrevHash));
        json.WriteString("hash", Convert.ToHexStringLower(e.Hash));
    }

    /// <summary>The audit_events column of each entry of <see cref="Fields"/>.</summary>
    private static readonly int[] Column = Fields.Select(f => Array.IndexOf(AuditWriter.Columns.Split(", "), f)).ToArray();
}
