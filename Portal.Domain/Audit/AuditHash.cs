using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Portal.Domain.Audit;

/// <summary>
/// The canonical encoding that each event's SHA-256 hash covers. Hand-written: the encoding is the contract between
/// the writer, the verifier and any external auditor, so it must not depend on a serializer's defaults.
/// <para>
/// hash = SHA-256( "PAUDIT01" ‖ field₁ ‖ field₂ ‖ … ), where every field is a 4-byte big-endian signed length
/// followed by that many bytes, and length −1 (no bytes) stands for NULL. Length-prefixing means no value can be
/// shifted into its neighbour (moving text from one field to the next changes the hash). Field order and encodings:
/// </para>
/// <list type="number">
/// <item>project_id, seq, prev_hash — the header: 16-byte UUID in RFC 4122 (big-endian) order; seq as 8-byte big-endian;
/// prev_hash as its 32 raw bytes (32 zero bytes before seq 1).</item>
/// <item>id (UUID as above), occurred_at (8-byte big-endian UTC ticks of 100 ns since 0001-01-01, whole microseconds),
/// event_type, resource_type, resource_id, action, actor_type, actor_id, actor_email, actor_role, session_id, details,
/// before_state, after_state, prompt, sql_text, tables_accessed, success (1 byte: 0 or 1), error_message,
/// duration_ms (8-byte big-endian), rows_returned (8-byte big-endian), security_level, data_classifications,
/// client_ip, user_agent, request_id — the body. Text is UTF-8 exactly as stored.</item>
/// </list>
/// </summary>
public static class AuditHash
{
    public const int Size = 32;
    private static ReadOnlySpan<byte> Magic => "PAUDIT01"u8;
    private const int HeaderSize = 8 + (4 + 16) + (4 + 8) + (4 + Size);

    /// <summary>The hash before the first event of a chain.</summary>
    public static byte[] Genesis() => new byte[Size];

    /// <summary>Encodes the body fields (everything but project_id, seq and prev_hash) into <paramref name="buffer"/>, growing it.</summary>
    public static int EncodeBody(AuditEvent e, ref byte[] buffer, int start = 0)
    {
        var max = start + 26 * 4 + 16 + 8 + 1 + 8 + 8
            + Max(e.EventType) + Max(e.ResourceType) + Max(e.ResourceId) + Max(e.Action) + Max(e.ActorType) + Max(e.ActorId)
            + Max(e.ActorEmail) + Max(e.ActorRole) + Max(e.SessionId) + Max(e.Details) + Max(e.BeforeState) + Max(e.AfterState)
            + Max(e.Prompt) + Max(e.SqlText) + Max(e.TablesAccessed) + Max(e.ErrorMessage) + Max(e.SecurityLevel)
            + Max(e.DataClassifications) + Max(e.ClientIp) + Max(e.UserAgent) + Max(e.RequestId);
        if (buffer.Length < max) Array.Resize(ref buffer, Math.Max(max, buffer.Length * 2));
        var s = buffer.AsSpan();
        var p = start;
        Guid(s, ref p, e.Id);
        Int64(s, ref p, e.OccurredAt.UtcTicks);
        Text(s, ref p, e.EventType);
        Text(s, ref p, e.ResourceType);
        Text(s, ref p, e.ResourceId);
        Text(s, ref p, e.Action);
        Text(s, ref p, e.ActorType);
        Text(s, ref p, e.ActorId);
        Text(s, ref p, e.ActorEmail);
        Text(s, ref p, e.ActorRole);
        Text(s, ref p, e.SessionId);
        Text(s, ref p, e.Details);
        Text(s, ref p, e.BeforeState);
        Text(s, ref p, e.AfterState);
        Text(s, ref p, e.Prompt);
        Text(s, ref p, e.SqlText);
        Text(s, ref p, e.TablesAccessed);
        BinaryPrimitives.WriteInt32BigEndian(s[p..], 1); s[p + 4] = e.Success ? (byte)1 : (byte)0; p += 5;
        Text(s, ref p, e.ErrorMessage);
        Int64(s, ref p, e.DurationMs);
        Int64(s, ref p, e.RowsReturned);
        Text(s, ref p, e.SecurityLevel);
        Text(s, ref p, e.DataClassifications);
        Text(s, ref p, e.ClientIp);
        Text(s, ref p, e.UserAgent);
        Text(s, ref p, e.RequestId);
        return p - start;
    }

    /// <summary>SHA-256 over the header (project, seq, previous hash) and an already encoded body.</summary>
    public static void Compute(Guid projectId, long seq, ReadOnlySpan<byte> prevHash, ReadOnlySpan<byte> body, Span<byte> destination)
    {
        if (prevHash.Length != Size) throw new ArgumentException("A previous hash is 32 bytes.", nameof(prevHash));
        Span<byte> header = stackalloc byte[HeaderSize];
        var p = 0;
        Magic.CopyTo(header); p += Magic.Length;
        Guid(header, ref p, projectId);
        Int64(header, ref p, seq);
        BinaryPrimitives.WriteInt32BigEndian(header[p..], Size); p += 4;
        prevHash.CopyTo(header[p..]);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(header);
        sha.AppendData(body);
        sha.GetHashAndReset(destination);
    }

    /// <summary>Encodes and hashes a whole event, using <paramref name="scratch"/> as a reusable buffer (no allocation per event once it is large enough).</summary>
    public static void Compute(AuditEvent e, ref byte[] scratch, Span<byte> destination)
    {
        var p = 0;
        if (scratch.Length < HeaderSize) scratch = new byte[4096];
        Magic.CopyTo(scratch); p += Magic.Length;
        Guid(scratch, ref p, e.ProjectId);
        Int64(scratch, ref p, e.Seq);
        if (e.PrevHash.Length == Size)
        {
            BinaryPrimitives.WriteInt32BigEndian(scratch.AsSpan(p), Size); p += 4;
            e.PrevHash.CopyTo(scratch, p); p += Size;
        }
        else
        {
            // A tampered prev_hash of the wrong length still encodes unambiguously; it can never match.
            BinaryPrimitives.WriteInt32BigEndian(scratch.AsSpan(p), -2); p += 4;
        }
        var len = EncodeBody(e, ref scratch, p);
        SHA256.HashData(scratch.AsSpan(0, p + len), destination);
    }

    public static byte[] Compute(AuditEvent e)
    {
        var scratch = new byte[4096];
        var hash = new byte[Size];
        Compute(e, ref scratch, hash);
        return hash;
    }

    /// <summary>
    /// Hashes the row at the cursor straight from its stored bytes. The body fields are the columns from id onwards in
    /// <see cref="AuditWriter.Columns"/> order, skipping prev_hash and hash, which is exactly the canonical field order.
    /// </summary>
    internal static void Compute(AuditRows r, ref byte[] scratch, Span<byte> destination)
    {
        if (scratch.Length < 1024) scratch = new byte[8192];
        var p = 0;
        Magic.CopyTo(scratch); p += Magic.Length;
        Uuid(scratch, ref p, r, AuditRows.ProjectId);
        Int64(scratch, ref p, r.Int64(AuditRows.Seq));
        var prev = r.Blob(AuditRows.PrevHash);
        if (prev.Length == Size) Bytes(ref scratch, ref p, prev);
        else { BinaryPrimitives.WriteInt32BigEndian(scratch.AsSpan(p), -2); p += 4; }
        Uuid(scratch, ref p, r, AuditRows.Id);
        Int64(scratch, ref p, r.UtcTicks(AuditRows.OccurredAt));
        if (r.TryEncodedTail(AuditRows.OccurredAt + 1, out var tail))
        {
            // The cursor already holds event_type..request_id in this encoding (PostgreSQL binary COPY).
            if (p + tail.Length > scratch.Length) Array.Resize(ref scratch, Math.Max(scratch.Length * 2, p + tail.Length));
            tail.CopyTo(scratch.AsSpan(p));
            FastSha256.Hash(scratch.AsSpan(0, p + tail.Length), destination);
            return;
        }
        for (var c = AuditRows.OccurredAt + 1; c < 30; c++)
        {
            if (p + 64 > scratch.Length) Array.Resize(ref scratch, scratch.Length * 2);
            switch (c)
            {
                case AuditRows.Success:
                    BinaryPrimitives.WriteInt32BigEndian(scratch.AsSpan(p), 1); scratch[p + 4] = r.Bool(c) ? (byte)1 : (byte)0; p += 5;
                    break;
                case AuditRows.DurationMs or AuditRows.RowsReturned:
                    if (r.IsNull(c)) Int64(scratch, ref p, null);
                    else Int64(scratch, ref p, r.Int64(c));
                    break;
                default:
                    // Only an empty value needs the extra NULL check: most text is non-empty.
                    var value = r.Utf8(c);
                    if (value.IsEmpty && r.IsNull(c)) { BinaryPrimitives.WriteInt32BigEndian(scratch.AsSpan(p), -1); p += 4; }
                    else Bytes(ref scratch, ref p, value);
                    break;
            }
        }
        FastSha256.Hash(scratch.AsSpan(0, p), destination);
    }

    private static void Uuid(Span<byte> s, ref int p, AuditRows r, int column)
    {
        BinaryPrimitives.WriteInt32BigEndian(s[p..], 16); p += 4;
        r.CopyUuid(column, s.Slice(p, 16)); p += 16;
    }

    private static void Bytes(ref byte[] scratch, ref int p, ReadOnlySpan<byte> value)
    {
        if (p + 4 + value.Length > scratch.Length) Array.Resize(ref scratch, Math.Max(scratch.Length * 2, p + 4 + value.Length));
        BinaryPrimitives.WriteInt32BigEndian(scratch.AsSpan(p), value.Length); p += 4;
        value.CopyTo(scratch.AsSpan(p)); p += value.Length;
    }

    private static int Max(string? s) => s is null ? 0 : Encoding.UTF8.GetMaxByteCount(s.Length);

    private static void Guid(Span<byte> s, ref int p, Guid g)
    {
        BinaryPrimitives.WriteInt32BigEndian(s[p..], 16); p += 4;
        g.TryWriteBytes(s[p..], bigEndian: true, out _); p += 16;
    }

    private static void Int64(Span<byte> s, ref int p, long? v)
    {
        if (v is null) { BinaryPrimitives.WriteInt32BigEndian(s[p..], -1); p += 4; return; }
        BinaryPrimitives.WriteInt32BigEndian(s[p..], 8); p += 4;
        BinaryPrimitives.WriteInt64BigEndian(s[p..], v.Value); p += 8;
    }

    private static void Text(Span<byte> s, ref int p, string? v)
    {
        if (v is null) { BinaryPrimitives.WriteInt32BigEndian(s[p..], -1); p += 4; return; }
        var n = Encoding.UTF8.GetBytes(v, s[(p + 4)..]);
        BinaryPrimitives.WriteInt32BigEndian(s[p..], n); p += 4 + n;
    }
}
