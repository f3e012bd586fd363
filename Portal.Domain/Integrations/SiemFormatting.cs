using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Portal.Domain.Audit;

namespace Portal.Domain.Integrations;

/// <summary>OCSF class of an audit event: class_uid = category_uid*1000 + class id; type_uid = class_uid*100 + activity_id.</summary>
public readonly record struct OcsfClass(int CategoryUid, int ClassUid, int ActivityId, string ClassName, string ActivityName)
{
    public int TypeUid => ClassUid * 100 + ActivityId;
}

/// <summary>
/// The wire formats of SIEM export, hand-written on Utf8JsonWriter / StringBuilder so export runs at tens of thousands of
/// events a second: a JSON event, ArcSight CEF, OCSF JSON, RFC 5424 syslog lines and RFC 6587 octet-counting frames.
/// </summary>
public static class SiemFormatting
{
    public const string Vendor = "GovernancePortal";
    public const string Product = "Governance Portal";
    public const string ProductVersion = "1.0";
    public const string OcsfVersion = "1.1.0";

    public static OcsfClass Classify(string eventType)
    {
        if (eventType is "gateway.query_executed" or "query.executed" or "gateway.query_denied")
            return new(6, 6005, 4, "Datastore Activity", "Query");
        if (eventType.StartsWith("gateway.", StringComparison.Ordinal))
            return new(6, 6003, 2, "API Activity", "Read");
        if (eventType.StartsWith("auth.", StringComparison.Ordinal))
            return eventType == "auth.signed_out" ? new(3, 3002, 2, "Authentication", "Logoff") : new(3, 3002, 1, "Authentication", "Logon");
        if (eventType.StartsWith("alert.", StringComparison.Ordinal) || eventType.StartsWith("security.", StringComparison.Ordinal))
            return new(2, 2004, eventType.EndsWith(".updated", StringComparison.Ordinal) ? 2 : 1, "Detection Finding", eventType.EndsWith(".updated", StringComparison.Ordinal) ? "Update" : "Create");
        var activity = eventType.EndsWith("created", StringComparison.Ordinal) || eventType.EndsWith("added", StringComparison.Ordinal) ? 1
            : eventType.EndsWith("deleted", StringComparison.Ordinal) || eventType.EndsWith("removed", StringComparison.Ordinal) || eventType.EndsWith("revoked", StringComparison.Ordinal) ? 4 : 3;
        return new(6, 6003, activity, "API Activity", activity switch { 1 => "Create", 4 => "Delete", _ => "Update" });
    }

    private static int SeverityId(string level) => level switch { "alert" => 4, "warning" => 3, _ => 1 };
    private static int CefSeverity(string level) => level switch { "alert" => 8, "warning" => 5, _ => 3 };
    /// <summary>RFC 5424 severity: alert 1, warning 4, informational 6.</summary>
    public static int SyslogSeverity(string level) => level switch { "alert" => 1, "warning" => 4, _ => 6 };

    /// <summary>The portal's own JSON shape of an event (also the "event" of Splunk HEC and the Datadog log attributes).</summary>
    public static void WriteJson(Utf8JsonWriter w, AuditEvent e)
    {
        w.WriteStartObject();
        w.WriteString("id"u8, e.Id);
        w.WriteString("project_id"u8, e.ProjectId);
        w.WriteNumber("seq"u8, e.Seq);
        w.WriteString("occurred_at"u8, e.OccurredAt);
        w.WriteString("event_type"u8, e.EventType);
        Opt(w, "resource_type"u8, e.ResourceType);
        Opt(w, "resource_id"u8, e.ResourceId);
        Opt(w, "action"u8, e.Action);
        w.WriteString("actor_type"u8, e.ActorType);
        Opt(w, "actor_id"u8, e.ActorId);
        Opt(w, "actor_email"u8, e.ActorEmail);
        Opt(w, "actor_role"u8, e.ActorRole);
        Opt(w, "sql_text"u8, e.SqlText);
        w.WriteBoolean("success"u8, e.Success);
        Opt(w, "error_message"u8, e.ErrorMessage);
        if (e.DurationMs is { } d) w.WriteNumber("duration_ms"u8, d);
        if (e.RowsReturned is { } r) w.WriteNumber("rows_returned"u8, r);
        w.WriteString("security_level"u8, e.SecurityLevel);
        Opt(w, "client_ip"u8, e.ClientIp);
        Opt(w, "request_id"u8, e.RequestId);
        w.WriteHex("hash"u8, e.Hash);
        w.WriteEndObject();
    }

    /// <summary>An OCSF 1.1 event: class, category, activity, type_uid, time in ms, severity, status, actor, metadata.</summary>
    public static void WriteOcsf(Utf8JsonWriter w, AuditEvent e)
    {
        var c = Classify(e.EventType);
        w.WriteStartObject();
        w.WriteNumber("category_uid"u8, c.CategoryUid);
        w.WriteNumber("class_uid"u8, c.ClassUid);
        w.WriteString("class_name"u8, c.ClassName);
        w.WriteNumber("activity_id"u8, c.ActivityId);
        w.WriteString("activity_name"u8, c.ActivityName);
        w.WriteNumber("type_uid"u8, c.TypeUid);
        w.WriteNumber("time"u8, e.OccurredAt.ToUnixTimeMilliseconds());
        w.WriteNumber("severity_id"u8, SeverityId(e.SecurityLevel));
        w.WriteNumber("status_id"u8, e.Success ? 1 : 2);
        w.WriteString("status"u8, e.Success ? "Success" : "Failure");
        if (e.ErrorMessage is not null) w.WriteString("status_detail"u8, e.ErrorMessage);
        w.WriteString("message"u8, e.EventType);
        w.WriteStartObject("metadata"u8);
        w.WriteString("version"u8, OcsfVersion);
        w.WriteString("uid"u8, e.Id);
        w.WriteNumber("sequence"u8, e.Seq);
        w.WriteString("event_code"u8, e.EventType);
        w.WriteStartObject("product"u8);
        w.WriteString("name"u8, Product);
        w.WriteString("vendor_name"u8, Vendor);
        w.WriteString("version"u8, ProductVersion);
        w.WriteEndObject();
        w.WriteEndObject();
        w.WriteStartObject("actor"u8);
        w.WriteStartObject("user"u8);
        w.WriteString("type"u8, e.ActorType);
        Opt(w, "uid"u8, e.ActorId);
        Opt(w, "email_addr"u8, e.ActorEmail);
        w.WriteEndObject();
        w.WriteEndObject();
        if (e.ClientIp is not null)
        {
            w.WriteStartObject("src_endpoint"u8);
            w.WriteString("ip"u8, e.ClientIp);
            w.WriteEndObject();
        }
        if (c.ClassUid == 6005 && e.SqlText is not null)
        {
            w.WriteStartObject("query_info"u8);
            w.WriteString("query_string"u8, e.SqlText);
            if (e.RowsReturned is { } rows) w.WriteNumber("data"u8, rows);
            w.WriteEndObject();
        }
        if (c.ClassUid == 2004)
        {
            w.WriteStartObject("finding_info"u8);
            w.WriteString("uid"u8, e.ResourceId ?? e.Id.ToString());
            w.WriteString("title"u8, e.EventType);
            w.WriteEndObject();
        }
        w.WriteStartObject("unmapped"u8);
        w.WriteString("project_id"u8, e.ProjectId);
        Opt(w, "resource_type"u8, e.ResourceType);
        Opt(w, "resource_id"u8, e.ResourceId);
        w.WriteHex("hash"u8, e.Hash);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    private static void Opt(Utf8JsonWriter w, ReadOnlySpan<byte> name, string? value)
    {
        if (value is not null) w.WriteString(name, value);
    }

    /// <summary>ArcSight CEF 0: header fields escape \ and |; extension values escape \ and = and encode line breaks as \n / \r.</summary>
    public static string Cef(AuditEvent e)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        WriteCef(buffer, e);
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <summary>
    /// <see cref="Cef"/> written straight as UTF-8. Every character CEF escapes is ASCII, and UTF-8 never uses ASCII
    /// bytes inside a multi-byte sequence, so escaping the encoded bytes gives exactly the bytes of the escaped string.
    /// </summary>
    public static void WriteCef(IBufferWriter<byte> o, AuditEvent e)
    {
        Raw(o, "CEF:0|"u8);
        Raw(o, "GovernancePortal|Governance Portal|1.0|"u8);
        HeaderUtf8(o, e.EventType); Raw(o, "|"u8);
        HeaderUtf8(o, e.EventType); Raw(o, "|"u8);
        Number(o, CefSeverity(e.SecurityLevel)); Raw(o, "|rt="u8);
        Number(o, e.OccurredAt.ToUnixTimeMilliseconds());
        Raw(o, " externalId="u8); Number(o, e.Seq);
        Raw(o, e.Success ? " outcome=success"u8 : " outcome=failure"u8);
        ExtUtf8(o, " suser="u8, e.ActorEmail ?? e.ActorId);
        ExtUtf8(o, " suid="u8, e.ActorId);
        ExtUtf8(o, " src="u8, e.ClientIp);
        ExtUtf8(o, " act="u8, e.Action);
        if (e.ResourceType is not null) { Raw(o, " cs1Label=resourceType"u8); ExtUtf8(o, " cs1="u8, e.ResourceType); }
        if (e.ResourceId is not null) { Raw(o, " cs2Label=resourceId"u8); ExtUtf8(o, " cs2="u8, e.ResourceId); }
        Raw(o, " cs3Label=projectId cs3="u8);
        var id = o.GetSpan(36);
        e.ProjectId.TryFormat(id, out var n);
        o.Advance(n);
        ExtUtf8(o, " msg="u8, e.ErrorMessage ?? e.SqlText);
    }

    public static void Header(StringBuilder sb, string value)
    {
        foreach (var ch in value)
        {
            if (ch is '\\' or '|') sb.Append('\\');
            if (ch is '\r' or '\n') { sb.Append(' '); continue; }
            sb.Append(ch);
        }
    }

    public static void ExtValue(StringBuilder sb, string value)
    {
        foreach (var ch in value)
        {
            switch (ch)
            {
                case '\\': sb.Append("\\\\"); break;
                case '=': sb.Append("\\="); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                default: sb.Append(ch); break;
            }
        }
    }

    private static readonly SearchValues<byte> HeaderSpecial = SearchValues.Create("\\|\r\n"u8);
    private static readonly SearchValues<byte> ExtSpecial = SearchValues.Create("\\=\r\n"u8);

    private static void Raw(IBufferWriter<byte> o, ReadOnlySpan<byte> bytes) => o.Write(bytes);

    private static void Number(IBufferWriter<byte> o, long value)
    {
        var span = o.GetSpan(20);
        value.TryFormat(span, out var n, default, CultureInfo.InvariantCulture);
        o.Advance(n);
    }

    /// <summary>Encodes <paramref name="value"/> and escapes it in place: the escaped form is at most twice as long.</summary>
    private static void Escaped(IBufferWriter<byte> o, string value, SearchValues<byte> special, bool header)
    {
        var max = Encoding.UTF8.GetMaxByteCount(value.Length);
        var span = o.GetSpan(max * 2);
        var len = Encoding.UTF8.GetBytes(value, span[max..]);
        var src = span.Slice(max, len);
        if (src.IndexOfAny(special) < 0) { src.CopyTo(span); o.Advance(len); return; }
        var w = 0;
        foreach (var b in src)
        {
            if (header)
            {
                if (b is (byte)'\r' or (byte)'\n') { span[w++] = (byte)' '; continue; }
                if (b is (byte)'\\' or (byte)'|') span[w++] = (byte)'\\';
                span[w++] = b;
            }
            else
            {
                switch (b)
                {
                    case (byte)'\\': span[w++] = (byte)'\\'; span[w++] = (byte)'\\'; break;
                    case (byte)'=': span[w++] = (byte)'\\'; span[w++] = (byte)'='; break;
                    case (byte)'\n': span[w++] = (byte)'\\'; span[w++] = (byte)'n'; break;
                    case (byte)'\r': span[w++] = (byte)'\\'; span[w++] = (byte)'r'; break;
                    default: span[w++] = b; break;
                }
            }
        }
        o.Advance(w);
    }

    private static void HeaderUtf8(IBufferWriter<byte> o, string value) => Escaped(o, value, HeaderSpecial, header: true);

    private static void ExtUtf8(IBufferWriter<byte> o, ReadOnlySpan<byte> keyWithSpace, string? value)
    {
        if (value is null) return;
        o.Write(keyWithSpace);
        Escaped(o, value, ExtSpecial, header: false);
    }

    /// <summary>
    /// One RFC 5424 message: &lt;PRI&gt;1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG, facility 13 (log audit).
    /// MSGID is the event type cut to 32 printable characters.
    /// </summary>
    public static string SyslogLine(AuditEvent e, string message, string hostname)
    {
        var buffer = new ArrayBufferWriter<byte>(256 + message.Length * 3);
        WriteSyslogHeader(buffer, e, hostname);
        buffer.Write(Encoding.UTF8.GetBytes(message));
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <summary>Everything of a <see cref="SyslogLine"/> before MSG, as UTF-8.</summary>
    public static void WriteSyslogHeader(IBufferWriter<byte> o, AuditEvent e, string hostname)
    {
        Raw(o, "<"u8);
        Number(o, 13 * 8 + SyslogSeverity(e.SecurityLevel));
        Raw(o, ">1 "u8);
        var span = o.GetSpan(32);
        e.OccurredAt.UtcDateTime.TryFormat(span, out var n, "yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture);
        o.Advance(n);
        Raw(o, " "u8);
        span = o.GetSpan(Encoding.UTF8.GetMaxByteCount(hostname.Length));
        o.Advance(Encoding.UTF8.GetBytes(hostname, span));
        Raw(o, " governance-portal - "u8);
        span = o.GetSpan(32);
        n = 0;
        foreach (var ch in e.EventType)
        {
            if (ch is not (> (char)32 and < (char)127)) continue;
            span[n++] = (byte)ch;
            if (n == 32) break;
        }
        if (n == 0) span[n++] = (byte)'-';
        o.Advance(n);
        Raw(o, " - "u8);
    }

    /// <summary>RFC 6587 octet counting: "MSG-LEN SP SYSLOG-MSG", the length in bytes of the UTF-8 message.</summary>
    public static void Frame(IBufferWriter<byte> output, string syslogMessage)
    {
        var n = Encoding.UTF8.GetByteCount(syslogMessage);
        var prefix = Encoding.ASCII.GetBytes(n.ToString(CultureInfo.InvariantCulture) + " ");
        output.Write(prefix);
        var span = output.GetSpan(n);
        Encoding.UTF8.GetBytes(syslogMessage, span);
        output.Advance(n);
    }

    /// <summary>Frames a message already written as UTF-8.</summary>
    public static void Frame(IBufferWriter<byte> output, ReadOnlySpan<byte> syslogMessage)
    {
        Number(output, syslogMessage.Length);
        Raw(output, " "u8);
        output.Write(syslogMessage);
    }

    /// <summary>Parses octet-counted frames (what a receiver does); returns complete frames and leaves a partial tail in <paramref name="buffer"/>.</summary>
    public static List<string> ParseFrames(List<byte> buffer)
    {
        var frames = new List<string>();
        var pos = 0;
        while (true)
        {
            var sp = buffer.IndexOf((byte)' ', pos);
            if (sp < 0) break;
            var len = int.Parse(Encoding.ASCII.GetString(buffer.GetRange(pos, sp - pos).ToArray()), CultureInfo.InvariantCulture);
            if (buffer.Count < sp + 1 + len) break;
            frames.Add(Encoding.UTF8.GetString(buffer.GetRange(sp + 1, len).ToArray()));
            pos = sp + 1 + len;
        }
        buffer.RemoveRange(0, pos);
        return frames;
    }
}
