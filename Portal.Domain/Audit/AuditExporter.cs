using System.Data.Common;
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
public sealed class AuditExporter(PortalDatabase database, AuditWriter writer)
{
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
        AuditActor exportedBy, CancellationToken ct = default)
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
            }),
        }, ct);

        await using var c = AuditReader.Open(database);
        await using var cmd = BuildQuery(c, projectId, filter);
        await using var r = await cmd.ExecuteReaderAsync(ct);
        var sqlite = database.Provider == DatabaseProvider.Sqlite;
        return format == AuditExportFormat.Csv
            ? await WriteCsvAsync(r, sqlite, output, ct)
            : await WriteJsonAsync(r, sqlite, output, format == AuditExportFormat.JsonArray, ct);
    }

    private DbCommand BuildQuery(DbConnection c, Guid projectId, AuditExportFilter filter)
    {
        var cmd = c.CreateCommand();
        cmd.CommandTimeout = 0;
        var sql = new StringBuilder($"SELECT {AuditWriter.Columns} FROM audit_events WHERE project_id = @p");
        AuditReader.Add(cmd, "@p", AuditReader.Id(database, projectId));
        if (filter.From is { } from) { sql.Append(" AND occurred_at >= @from"); AuditReader.Add(cmd, "@from", AuditReader.Time(database, from)); }
        if (filter.To is { } to) { sql.Append(" AND occurred_at < @to"); AuditReader.Add(cmd, "@to", AuditReader.Time(database, to)); }
        if (filter.EventTypes is { Count: > 0 } types)
        {
            sql.Append(" AND event_type IN (");
            for (var i = 0; i < types.Count; i++)
            {
                sql.Append(i == 0 ? "" : ", ").Append("@t").Append(i);
                AuditReader.Add(cmd, "@t" + i, types[i]);
            }
            sql.Append(')');
        }
        if (!string.IsNullOrWhiteSpace(filter.Actor))
        {
            sql.Append(" AND (actor_id = @actor OR actor_email = @actor)");
            AuditReader.Add(cmd, "@actor", filter.Actor.Trim());
        }
        if (filter.SecurityLevel is { } level)
        {
            sql.Append(" AND security_level = @level");
            AuditReader.Add(cmd, "@level", AuditNormalizer.Level(level));
        }
        if (!string.IsNullOrWhiteSpace(filter.Text))
        {
            // SQLite's LIKE ignores ASCII case; PostgreSQL needs ILIKE. The pattern is a parameter with % and _ escaped.
            var like = database.Provider == DatabaseProvider.Sqlite ? "LIKE" : "ILIKE";
            string[] searchable = ["event_type", "resource_type", "resource_id", "action", "actor_id", "actor_email", "prompt", "sql_text",
                "details", "before_state", "after_state", "error_message"];
            sql.Append(" AND (").Append(string.Join(" OR ", searchable.Select(col => $"{col} {like} @text ESCAPE '\\'"))).Append(')');
            var escaped = filter.Text.Trim().Replace("\\", "\\\\").Replace("%", "\\%").Replace("_", "\\_");
            AuditReader.Add(cmd, "@text", "%" + escaped + "%");
        }
        sql.Append(" ORDER BY seq");
        cmd.CommandText = sql.ToString();
        return cmd;
    }

    private static async Task<long> WriteCsvAsync(DbDataReader r, bool sqlite, Stream output, CancellationToken ct)
    {
        // CsvHelper neutralizes formula-like cells (= + - @ tab CR) with a leading quote; see CsvInjection.Escape.
        var options = CsvWriterOptions.Default with { Injection = CsvInjection.Escape };
        await using var csv = CsvWriter.Create(output, options, leaveOpen: true);
        foreach (var name in Fields) csv.WriteField(name);
        csv.EndRecord();
        var e = new AuditEvent();
        long n = 0;
        while (r.Read())
        {
            if ((n & 0x3FFF) == 0) ct.ThrowIfCancellationRequested();
            AuditReader.Fill(r, sqlite, e);
            csv.WriteField(e.ProjectId.ToString());
            csv.WriteField(e.Seq);
            csv.WriteField(e.Id.ToString());
            csv.WriteField(e.OccurredAt.ToString("O", CultureInfo.InvariantCulture));
            csv.WriteField(e.EventType);
            csv.WriteField(e.ResourceType);
            csv.WriteField(e.ResourceId);
            csv.WriteField(e.Action);
            csv.WriteField(e.ActorType);
            csv.WriteField(e.ActorId);
            csv.WriteField(e.ActorEmail);
            csv.WriteField(e.ActorRole);
            csv.WriteField(e.SessionId);
            csv.WriteField(e.Success ? "true" : "false");
            csv.WriteField(e.ErrorMessage);
            if (e.DurationMs is { } d) csv.WriteField(d); else csv.WriteField((string?)null);
            if (e.RowsReturned is { } rows) csv.WriteField(rows); else csv.WriteField((string?)null);
            csv.WriteField(e.SecurityLevel);
            csv.WriteField(e.DataClassifications);
            csv.WriteField(e.TablesAccessed);
            csv.WriteField(e.ClientIp);
            csv.WriteField(e.UserAgent);
            csv.WriteField(e.RequestId);
            csv.WriteField(e.Prompt);
            csv.WriteField(e.SqlText);
            csv.WriteField(e.Details);
            csv.WriteField(e.BeforeState);
            csv.WriteField(e.AfterState);
            csv.WriteField(Convert.ToHexStringLower(e.PrevHash));
            csv.WriteField(Convert.ToHexStringLower(e.Hash));
            await csv.EndRecordAsync(ct);
            n++;
        }
        await csv.FlushAsync(ct);
        return n;
    }

    private static async Task<long> WriteJsonAsync(DbDataReader r, bool sqlite, Stream output, bool array, CancellationToken ct)
    {
        // JSON Lines puts several top-level values in one stream, which the writer's validation would refuse.
        // JSON Lines flushes the writer after every object to add the newline; a buffer keeps those from being tiny writes.
        var target = array ? output : new BufferedStream(output, 64 * 1024);
        await using var json = new Utf8JsonWriter(target, new JsonWriterOptions { SkipValidation = !array });
        if (array) json.WriteStartArray();
        var e = new AuditEvent();
        long n = 0;
        while (r.Read())
        {
            if ((n & 0x3FFF) == 0) ct.ThrowIfCancellationRequested();
            AuditReader.Fill(r, sqlite, e);
            json.WriteStartObject();
            json.WriteString("project_id", e.ProjectId);
            json.WriteNumber("seq", e.Seq);
            json.WriteString("id", e.Id);
            json.WriteString("occurred_at", e.OccurredAt);
            json.WriteString("event_type", e.EventType);
            json.WriteString("resource_type", e.ResourceType);
            json.WriteString("resource_id", e.ResourceId);
            json.WriteString("action", e.Action);
            json.WriteString("actor_type", e.ActorType);
            json.WriteString("actor_id", e.ActorId);
            json.WriteString("actor_email", e.ActorEmail);
            json.WriteString("actor_role", e.ActorRole);
            json.WriteString("session_id", e.SessionId);
            json.WriteBoolean("success", e.Success);
            json.WriteString("error_message", e.ErrorMessage);
            if (e.DurationMs is { } d) json.WriteNumber("duration_ms", d); else json.WriteNull("duration_ms");
            if (e.RowsReturned is { } rows) json.WriteNumber("rows_returned", rows); else json.WriteNull("rows_returned");
            json.WriteString("security_level", e.SecurityLevel);
            // JSON-valued columns are exported as the exact stored text: that text is what the hash covers.
            json.WriteString("data_classifications", e.DataClassifications);
            json.WriteString("tables_accessed", e.TablesAccessed);
            json.WriteString("client_ip", e.ClientIp);
            json.WriteString("user_agent", e.UserAgent);
            json.WriteString("request_id", e.RequestId);
            json.WriteString("prompt", e.Prompt);
            json.WriteString("sql_text", e.SqlText);
            json.WriteString("details", e.Details);
            json.WriteString("before_state", e.BeforeState);
            json.WriteString("after_state", e.AfterState);
            json.WriteString("prev_hash", Convert.ToHexStringLower(e.PrevHash));
            json.WriteString("hash", Convert.ToHexStringLower(e.Hash));
            json.WriteEndObject();
            if (!array)
            {
                json.Flush();
                json.Reset(); // a fresh top-level value, so no separating comma
                target.WriteByte((byte)'\n');
            }
            if (json.BytesPending > 32 * 1024) await json.FlushAsync(ct);
            n++;
        }
        if (array) json.WriteEndArray();
        await json.FlushAsync(ct);
        await target.FlushAsync(ct);
        return n;
    }
}
