using System.Buffers;
using System.Buffers.Binary;
using System.Buffers.Text;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Data.Sqlite;
using Npgsql;
using Portal.Domain.Persistence;
using SQLitePCL;

namespace Portal.Domain.Audit;

/// <summary>
/// A forward-only cursor over audit_events rows (columns in <see cref="AuditWriter.Columns"/> order) that hands out
/// text as UTF-8 spans, for the verifier and the exporter, which stream millions of rows.
/// <para>
/// Hand-written because no package offers it: on SQLite the rows are read through SQLitePCLRaw (the engine binding
/// under Microsoft.Data.Sqlite) so that text is never decoded to .NET strings and re-encoded — the stored UTF-8 bytes
/// go straight into the hash or the CSV. That is what makes verification run at about a million rows a second.
/// A span is valid only until the next call on the cursor.
/// </para>
/// </summary>
internal abstract class AuditRows : IDisposable
{
    public const int ProjectId = 0, Seq = 1, Id = 2, PrevHash = 3, Hash = 4, OccurredAt = 5, Success = 21, DurationMs = 23, RowsReturned = 24;

    public static AuditRows Open(PortalDatabase db, string whereAndOrder, IReadOnlyList<(string Name, object Value)> parameters) =>
        db.Provider == DatabaseProvider.Sqlite
            ? new SqliteRows(db.ConnectionString, $"SELECT {AuditWriter.Columns} FROM audit_events {whereAndOrder}", parameters)
            : new PostgresRows(db.ConnectionString, $"SELECT {AuditWriter.Columns} FROM audit_events {whereAndOrder}", parameters);

    public abstract bool Read();
    public abstract bool IsNull(int column);
    /// <summary>A text column's UTF-8 bytes (empty for NULL: check <see cref="IsNull"/>).</summary>
    public abstract ReadOnlySpan<byte> Utf8(int column);
    public abstract ReadOnlySpan<byte> Blob(int column);
    public abstract long Int64(int column);
    public abstract Guid Guid(int column);
    public abstract long UtcTicks(int column);
    public abstract bool Bool(int column);
    public abstract void Dispose();

    /// <summary>
    /// Like <see cref="Open"/>, but on PostgreSQL the rows come as a binary COPY stream whose fields are read as raw
    /// bytes (no strings, no re-encoding) when every parameter can be written as a literal (UUIDs, integers,
    /// timestamps); otherwise it is <see cref="Open"/>. For the verifier and the exporter, which stream millions of rows.
    /// </summary>
    /// <para>
    /// <paramref name="mapFile"/>: on SQLite, read the database file through a memory map instead of one read call per
    /// page (most of a full scan's time on a busy machine goes to those calls). The mapped pages count in the process's
    /// resident memory, so the exporter, whose peak memory is a target, does not use it.
    /// </para>
    public static AuditRows OpenStream(PortalDatabase db, string whereAndOrder, IReadOnlyList<(string Name, object Value)> parameters,
        bool mapFile = false, bool columnApiOnly = false)
    {
        if (db.Provider == DatabaseProvider.Postgres && CopyRows.Literal(whereAndOrder, parameters) is { } inlined)
            return new CopyRows(db.ConnectionString, $"COPY (SELECT {AuditWriter.Columns} FROM audit_events {inlined}) TO STDOUT (FORMAT BINARY)");
        if (db.Provider == DatabaseProvider.Sqlite && (mapFile || columnApiOnly))
            return new SqliteRows(db.ConnectionString, $"SELECT {AuditWriter.Columns} FROM audit_events {whereAndOrder}", parameters, mapFile, columnApiOnly);
        return Open(db, whereAndOrder, parameters);
    }

    /// <summary>Writes a UUID column's 16 bytes in RFC 4122 (big-endian) order, the order the hash encodes.</summary>
    public virtual void CopyUuid(int column, Span<byte> destination) => Guid(column).TryWriteBytes(destination, bigEndian: true, out _);

    /// <summary>
    /// Whether a value read from the current row so far was stored with another type than the writer gives that column
    /// (an integer column holding text or a real, a text column holding a blob, a hash held as text). SQLite lets any
    /// column hold any type, and its column functions convert on reading (8.5 reads as the integer 8), so such a row can
    /// hash like the original although it was changed; the verifier treats it as altered. Always false on PostgreSQL,
    /// whose columns have fixed types.
    /// </summary>
    public virtual bool ValueOfAnotherType => false;

    /// <summary>
    /// The columns from <paramref name="fromColumn"/> to the last, already in the hash's field encoding (4-byte
    /// big-endian length, −1 for NULL, raw bytes), when the cursor holds them that way (PostgreSQL binary COPY).
    /// </summary>
    public virtual bool TryEncodedTail(int fromColumn, out ReadOnlySpan<byte> encoded)
    {
        encoded = default;
        return false;
    }

    private sealed class SqliteRows : AuditRows
    {
        private readonly sqlite3 connection;
        private readonly sqlite3_stmt stmt;
        private readonly IntPtr handle;
        private readonly bool direct;

        // The engine binding, once per process (Microsoft.Data.Sqlite does the same before its first connection).
        static SqliteRows() => Batteries_V2.Init();

        public SqliteRows(string connectionString, string sql, IReadOnlyList<(string Name, object Value)> parameters, bool mapFile = false, bool columnApiOnly = false)
        {
            // The cursor's own connection, opened through SQLitePCLRaw rather than taken from Microsoft.Data.Sqlite's
            // pool: a cursor is used by one thread at a time, so it can run in SQLite's multi-thread mode
            // (SQLITE_OPEN_NOMUTEX) — no mutex taken and released around each of the ~80 column calls per row, which was
            // a fifth of a full scan's CPU. It only reads; closing it leaves no setting behind for anyone else.
            var builder = new SqliteConnectionStringBuilder(connectionString);
            var flags = raw.SQLITE_OPEN_READWRITE | raw.SQLITE_OPEN_NOMUTEX
                | (builder.DataSource.StartsWith("file:", StringComparison.OrdinalIgnoreCase) ? raw.SQLITE_OPEN_URI : 0);
            var rc = raw.sqlite3_open_v2(builder.DataSource, out connection, flags, null);
            if (rc != raw.SQLITE_OK)
            {
                var message = connection.IsInvalid ? raw.sqlite3_errstr(rc).utf8_to_string() : raw.sqlite3_errmsg(connection).utf8_to_string();
                connection.Dispose();
                throw new SqliteException($"Cannot open the audit database for reading: {message}", rc);
            }
            try
            {
                raw.sqlite3_busy_timeout(connection, Math.Max(1, builder.DefaultTimeout) * 1000);
                // SQLite caps the size at its compile-time maximum.
                if (mapFile) Check(raw.sqlite3_exec(connection, "PRAGMA mmap_size = 1099511627776"));
                Check(raw.sqlite3_prepare_v2(connection, sql, out stmt));
                foreach (var (name, value) in parameters)
                {
                    var index = raw.sqlite3_bind_parameter_index(stmt, name);
                    if (index == 0) continue;
                    Check(value switch
                    {
                        string s => raw.sqlite3_bind_text(stmt, index, s),
                        long l => raw.sqlite3_bind_int64(stmt, index, l),
                        _ => throw new ArgumentException($"Unsupported parameter type {value.GetType()}", nameof(parameters)),
                    });
                }
            }
            catch
            {
                stmt?.Dispose();
                connection.Dispose();
                throw;
            }
            handle = stmt.DangerousGetHandle();
            direct = NativeSqlite.Available;
            rowValues = direct && NativeSqlite.ResultRow.Known && !columnApiOnly;
        }

        private void Check(int rc)
        {
            if (rc != raw.SQLITE_OK) throw new SqliteException(raw.sqlite3_errmsg(connection).utf8_to_string(), rc);
        }

        public override bool Read()
        {
            var rc = raw.sqlite3_step(stmt);
            anotherType = false;
            if (rc == raw.SQLITE_ROW)
            {
                if (rowValues) row = NativeSqlite.sqlite3_column_value(handle, 0);
                return true;
            }
            row = IntPtr.Zero;
            if (rc == raw.SQLITE_DONE) return false;
            throw new SqliteException(raw.sqlite3_errmsg(connection).utf8_to_string(), rc);
        }

        // The current row's values as SQLite holds them (see NativeSqlite.ResultRow), or zero to use the column API.
        private IntPtr row;
        private readonly bool rowValues;
        private bool anotherType;

        public override bool ValueOfAnotherType => anotherType;

        private int Type(int column) => direct ? NativeSqlite.sqlite3_column_type(handle, column) : raw.sqlite3_column_type(stmt, column);

        /// <summary>Notes a value whose stored type is neither NULL nor <paramref name="expected"/> (read through the column API).</summary>
        private void Expect(int column, int expected)
        {
            var type = Type(column);
            if (type != raw.SQLITE_NULL && type != expected) anotherType = true;
        }

        public override bool IsNull(int column)
        {
            if (row != IntPtr.Zero && NativeSqlite.ResultRow.IsNull(row, column) is { } isNull) return isNull;
            return Type(column) == raw.SQLITE_NULL;
        }

        public override ReadOnlySpan<byte> Utf8(int column) => Bytes(column, raw.SQLITE_TEXT);
        public override ReadOnlySpan<byte> Blob(int column) => Bytes(column, raw.SQLITE_BLOB);

        private ReadOnlySpan<byte> Bytes(int column, int expected)
        {
            if (row != IntPtr.Zero && NativeSqlite.ResultRow.TryBytes(row, column, expected == raw.SQLITE_TEXT, out var bytes)) return bytes;
            Expect(column, expected);
            return direct ? NativeSqlite.Blob(handle, column) : raw.sqlite3_column_blob(stmt, column);
        }

        public override long Int64(int column)
        {
            if (row != IntPtr.Zero && NativeSqlite.ResultRow.TryInt64(row, column, out var value)) return value;
            Expect(column, raw.SQLITE_INTEGER);
            return direct ? NativeSqlite.sqlite3_column_int64(handle, column) : raw.sqlite3_column_int64(stmt, column);
        }

        public override long UtcTicks(int column) => Int64(column);
        public override bool Bool(int column) => Int64(column) != 0;

        public override Guid Guid(int column)
        {
            if (!Utf8Parser.TryParse(Utf8(column), out Guid g, out _, 'D'))
                throw new FormatException($"Column {column} does not hold a UUID.");
            return g;
        }

        // The text form 8-4-4-4-12 lists the bytes in big-endian order, so decoding the hex digits in place gives the
        // hash's encoding without building a Guid and writing it back out. project_id is the same on every row of a
        // scan, so the last text decoded is remembered (36 bytes compared instead of 32 digits decoded).
        private readonly byte[] lastText = new byte[36], lastBytes = new byte[16];
        private bool lastValid;

        public override void CopyUuid(int column, Span<byte> destination)
        {
            var text = Utf8(column);
            if (lastValid && text.SequenceEqual(lastText)) { lastBytes.CopyTo(destination); return; }
            if (text.Length != 36 || text[8] != '-' || text[13] != '-' || text[18] != '-' || text[23] != '-')
                throw new FormatException($"Column {column} does not hold a UUID.");
            var d = 0;
            var bad = 0;
            for (var i = 0; i < 36; i += 2)
            {
                if (i is 8 or 13 or 18 or 23) i++;
                int hi = Hex[text[i]], lo = Hex[text[i + 1]];
                bad |= hi | lo;
                destination[d++] = (byte)(hi << 4 | lo);
            }
            if (bad < 0) throw new FormatException($"Column {column} does not hold a UUID.");
            if (column == ProjectId)
            {
                text.CopyTo(lastText);
                destination[..16].CopyTo(lastBytes);
                lastValid = true;
            }
        }

        // Hex digit values by byte, -1 for anything else.
        private static readonly sbyte[] Hex = Enumerable.Range(0, 256).Select(c => (sbyte)(c switch
        {
            >= '0' and <= '9' => c - '0',
            >= 'A' and <= 'F' => c - 'A' + 10,
            >= 'a' and <= 'f' => c - 'a' + 10,
            _ => -1,
        })).ToArray();

        public override void Dispose()
        {
            stmt.Dispose();
            connection.Dispose();
        }
    }

    private sealed class PostgresRows : AuditRows
    {
        private readonly NpgsqlConnection connection;
        private readonly NpgsqlCommand command;
        private readonly NpgsqlDataReader reader;
        private byte[] scratch = new byte[4096];

        public PostgresRows(string connectionString, string sql, IReadOnlyList<(string Name, object Value)> parameters)
        {
            connection = new NpgsqlConnection(connectionString);
            connection.Open();
            command = new NpgsqlCommand(sql, connection) { CommandTimeout = 0 };
            foreach (var (name, value) in parameters) command.Parameters.AddWithValue(name.TrimStart('@'), value);
            reader = command.ExecuteReader();
        }

        public override bool Read() => reader.Read();
        public override bool IsNull(int column) => reader.IsDBNull(column);

        public override ReadOnlySpan<byte> Utf8(int column)
        {
            if (reader.IsDBNull(column)) return default;
            var s = reader.GetString(column);
            var max = Encoding.UTF8.GetMaxByteCount(s.Length);
            if (scratch.Length < max) scratch = new byte[Math.Max(max, scratch.Length * 2)];
            return scratch.AsSpan(0, Encoding.UTF8.GetBytes(s, scratch));
        }

        public override ReadOnlySpan<byte> Blob(int column)
        {
            if (reader.IsDBNull(column)) return default;
            var n = (int)reader.GetBytes(column, 0, null, 0, 0);
            if (scratch.Length < n) scratch = new byte[Math.Max(n, scratch.Length * 2)];
            reader.GetBytes(column, 0, scratch, 0, n);
            return scratch.AsSpan(0, n);
        }

        public override long Int64(int column) => reader.GetInt64(column);
        public override Guid Guid(int column) => reader.GetGuid(column);
        public override long UtcTicks(int column) => reader.GetFieldValue<DateTimeOffset>(column).UtcTicks;
        public override bool Bool(int column) => reader.GetBoolean(column);

        public override void Dispose()
        {
            reader.Dispose();
            command.Dispose();
            connection.Dispose();
        }
    }
    /// <summary>
    /// Rows of a PostgreSQL binary COPY: each tuple is a field count, then per field a 4-byte big-endian length (−1 for
    /// NULL) and its bytes in the type's binary form (text as UTF-8, uuid big-endian, int8 big-endian, bool one byte).
    /// That is the hash's own field encoding for every column but occurred_at, so the verifier can hash the tail of a
    /// tuple as it arrived. COPY takes no bind parameters, hence <see cref="Literal"/>.
    /// </summary>
    private sealed class CopyRows : AuditRows
    {
        private const int Fields = 30;

        private readonly NpgsqlConnection connection;
        private readonly NpgsqlRawCopyStream stream;
        private byte[] buffer = new byte[1 << 18];
        private int tuple, end; // the current tuple starts at `tuple`; bytes up to `end` have been received
        private int tupleLength;
        private readonly int[] prefix = new int[Fields]; // where each field's length prefix is, relative to `tuple`
        private readonly int[] offset = new int[Fields]; // where its data is; −1 for NULL
        private readonly int[] length = new int[Fields];
        private bool finished;

        public CopyRows(string connectionString, string copySql)
        {
            connection = new NpgsqlConnection(connectionString);
            connection.Open();
            try
            {
                stream = connection.BeginRawBinaryCopy(copySql);
                stream.ReadTimeout = Timeout.Infinite;
                // Header: signature, flags, extension area.
                Fill(PgCopy.Signature.Length + 8);
                if (!buffer.AsSpan(0, PgCopy.Signature.Length).SequenceEqual(PgCopy.Signature)) throw new InvalidDataException("Not a binary COPY stream.");
                var extension = BinaryPrimitives.ReadInt32BigEndian(buffer.AsSpan(PgCopy.Signature.Length + 4));
                Fill(PgCopy.Signature.Length + 8 + extension);
                tuple = PgCopy.Signature.Length + 8 + extension;
            }
            catch
            {
                connection.Dispose();
                throw;
            }
        }

        /// <summary>The query with its parameters written as literals, or null when one cannot be written safely.</summary>
        public static string? Literal(string sql, IReadOnlyList<(string Name, object Value)> parameters)
        {
            // Longest names first, so @t1 is not replaced inside @t10.
            foreach (var (name, value) in parameters.OrderByDescending(p => p.Name.Length))
            {
                string? literal = value switch
                {
                    Guid g => $"'{g:D}'::uuid",
                    long l => l.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    int i => i.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    DateTimeOffset t => $"'{t.UtcDateTime:yyyy-MM-dd'T'HH:mm:ss.ffffff}Z'::timestamptz",
                    _ => null,
                };
                if (literal is null) return null;
                sql = System.Text.RegularExpressions.Regex.Replace(sql, System.Text.RegularExpressions.Regex.Escape(name) + @"\b", literal);
            }
            return sql;
        }

        /// <summary>Makes sure bytes up to <paramref name="count"/> (from the buffer's start) are received; false at the end of the stream.</summary>
        private bool Fill(int count)
        {
            if (count > buffer.Length) Array.Resize(ref buffer, Math.Max(count, buffer.Length * 2));
            while (end < count)
            {
                var n = stream.Read(buffer, end, buffer.Length - end);
                if (n == 0) return false;
                end += n;
            }
            return true;
        }

        /// <summary>Makes sure <paramref name="count"/> bytes from the current tuple's start are received, moving the tuple to the buffer's start when needed.</summary>
        private void Need(int count)
        {
            if (tuple + count <= end) return;
            if (tuple > 0)
            {
                Buffer.BlockCopy(buffer, tuple, buffer, 0, end - tuple);
                end -= tuple;
                tuple = 0;
            }
            if (!Fill(count)) throw new InvalidDataException("The COPY stream ended inside a row.");
        }

        public override bool Read()
        {
            if (finished) return false;
            tuple += tupleLength;
            tupleLength = 0;
            Need(2);
            var fields = BinaryPrimitives.ReadInt16BigEndian(buffer.AsSpan(tuple));
            if (fields == -1)
            {
                finished = true;
                return false;
            }
            if (fields != Fields) throw new InvalidDataException($"A COPY row has {fields} fields, expected {Fields}.");
            var p = 2;
            for (var f = 0; f < Fields; f++)
            {
                Need(p + 4);
                prefix[f] = p;
                var n = BinaryPrimitives.ReadInt32BigEndian(buffer.AsSpan(tuple + p));
                p += 4;
                if (n < 0) { offset[f] = -1; length[f] = 0; continue; }
                Need(p + n);
                offset[f] = p;
                length[f] = n;
                p += n;
            }
            tupleLength = p;
            return true;
        }

        private ReadOnlySpan<byte> Field(int column) =>
            offset[column] < 0 ? default : buffer.AsSpan(tuple + offset[column], length[column]);

        public override bool IsNull(int column) => offset[column] < 0;
        public override ReadOnlySpan<byte> Utf8(int column) => Field(column);
        public override ReadOnlySpan<byte> Blob(int column) => Field(column);
        public override long Int64(int column) => BinaryPrimitives.ReadInt64BigEndian(Field(column));
        public override Guid Guid(int column) => new(Field(column), bigEndian: true);
        public override void CopyUuid(int column, Span<byte> destination) => Field(column)[..16].CopyTo(destination);
        public override long UtcTicks(int column) => PgCopy.EpochTicks + BinaryPrimitives.ReadInt64BigEndian(Field(column)) * 10;
        public override bool Bool(int column) => Field(column)[0] != 0;

        public override bool TryEncodedTail(int fromColumn, out ReadOnlySpan<byte> encoded)
        {
            encoded = buffer.AsSpan(tuple + prefix[fromColumn], tupleLength - prefix[fromColumn]);
            return true;
        }

        public override void Dispose()
        {
            try
            {
                // Stopping early (a broken link found): tell the server to stop sending the rest.
                if (!finished) stream.Cancel();
            }
            catch (Exception e) when (e is NpgsqlException or InvalidOperationException or IOException) { }
            try { stream.Dispose(); }
            catch (Exception e) when (e is NpgsqlException or InvalidOperationException or IOException) { }
            connection.Dispose();
        }
    }
}

/// <summary>PostgreSQL's binary COPY framing, shared by the writer (COPY FROM) and the row cursor (COPY TO).</summary>
internal static class PgCopy
{
    /// <summary>"PGCOPY\n\xFF\r\n\0": the first 11 bytes of every binary COPY stream.</summary>
    public static ReadOnlySpan<byte> Signature => [0x50, 0x47, 0x43, 0x4F, 0x50, 0x59, 0x0A, 0xFF, 0x0D, 0x0A, 0x00];

    /// <summary>Microseconds since this instant are what timestamptz holds in binary form.</summary>
    public const long EpochTicks = 630822816000000000; // 2000-01-01T00:00:00Z
}

/// <summary>
/// Direct calls into the e_sqlite3 library that SQLitePCLRaw has already loaded. Hand-written for the row cursor's
/// hot path only: SQLitePCLRaw's provider indirection and SafeHandle bookkeeping cost about 60 ns per column read,
/// which caps verification near 250k rows/s per core; these calls cost a few nanoseconds. The statement stays owned
/// and finalized by SQLitePCLRaw. If the library cannot be bound (another SQLite provider), the cursor falls back to
/// SQLitePCLRaw.
/// </summary>
internal static unsafe class NativeSqlite
{
    private const string Lib = "e_sqlite3";

    public static readonly bool Available = Probe();

    private static bool Probe()
    {
        try
        {
            return NativeLibrary.TryLoad(Lib, typeof(NativeSqlite).Assembly, null, out _) && sqlite3_libversion_number() > 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            return false;
        }
    }

    [DllImport(Lib)]
    private static extern int sqlite3_libversion_number();

    [DllImport(Lib), SuppressGCTransition]
    public static extern int sqlite3_column_type(IntPtr stmt, int column);

    [DllImport(Lib), SuppressGCTransition]
    public static extern long sqlite3_column_int64(IntPtr stmt, int column);

    [DllImport(Lib), SuppressGCTransition]
    private static extern IntPtr sqlite3_column_blob(IntPtr stmt, int column);

    [DllImport(Lib), SuppressGCTransition]
    private static extern int sqlite3_column_bytes(IntPtr stmt, int column);

    // Binding with SQLITE_STATIC (a null destructor): SQLite reads the caller's bytes during sqlite3_step instead of
    // copying them, so the caller keeps them pinned until the step has finished. Used by the audit writer's insert.
    [DllImport(Lib), SuppressGCTransition]
    public static extern int sqlite3_bind_text(IntPtr stmt, int index, byte* value, int length, IntPtr destructor);

    [DllImport(Lib), SuppressGCTransition]
    public static extern int sqlite3_bind_blob(IntPtr stmt, int index, byte* value, int length, IntPtr destructor);

    [DllImport(Lib), SuppressGCTransition]
    public static extern int sqlite3_bind_int64(IntPtr stmt, int index, long value);

    [DllImport(Lib), SuppressGCTransition]
    public static extern int sqlite3_bind_null(IntPtr stmt, int index);

    [DllImport(Lib), SuppressGCTransition]
    public static extern IntPtr sqlite3_column_value(IntPtr stmt, int column);

    public static ReadOnlySpan<byte> Blob(IntPtr stmt, int column)
    {
        // sqlite3_column_blob first, then sqlite3_column_bytes: the order SQLite documents for a stable pointer.
        var p = sqlite3_column_blob(stmt, column);
        if (p == IntPtr.Zero) return default;
        return new ReadOnlySpan<byte>((void*)p, sqlite3_column_bytes(stmt, column));
    }

    /// <summary>
    /// Reads the current row's values straight from the statement's result registers instead of through two column
    /// API calls per value (<c>sqlite3_column_blob</c> + <c>sqlite3_column_bytes</c>, each of which checks the index,
    /// maps the type and checks for a failed allocation on the way out): those calls were a fifth of a chain
    /// verification's CPU. Hand-written, as nothing public offers it: <c>sqlite3_column_value(stmt, 0)</c> returns the
    /// first of the row's values, which SQLite keeps as consecutive <c>Mem</c> structures (<c>u</c>, <c>z</c>,
    /// <c>n</c>, <c>flags</c>, <c>enc</c>, … in <c>vdbeInt.h</c>). That layout is internal to SQLite, so it is used
    /// only after <see cref="Probe"/> has checked it against the public API on a row of every kind of value in the
    /// loaded library (stride from <c>sqlite3_column_value</c> of each column, then every text, blob, integer and NULL
    /// read both ways); if anything differs — another SQLite build, a changed structure — the cursor keeps using the
    /// API. Any value that is not plainly UTF-8 text, a blob, a 64-bit integer or NULL (a real, a zero-filled blob,
    /// UTF-16 text) is also read through the API, so a row tampered into an unusual type still hashes as before.
    /// </summary>
    public static class ResultRow
    {
        private const int MemSize = 56, Z = 8, N = 16, Flags = 20, Enc = 22;
        private const ushort MemNull = 0x0001, MemStr = 0x0002, MemInt = 0x0004, MemReal = 0x0008, MemBlob = 0x0010, MemIntReal = 0x0020,
            MemAffinity = 0x003F, MemZero = 0x0400;
        private const byte Utf8 = 1;

        public static readonly bool Known = Available && Environment.GetEnvironmentVariable("PORTAL_SQLITE_COLUMN_API") != "1" && Probe();

        public static bool? IsNull(IntPtr row, int column)
        {
            var flags = *(ushort*)((byte*)row + column * MemSize + Flags);
            if ((flags & MemNull) != 0) return true;
            return (flags & (MemStr | MemBlob | MemInt)) != 0 ? false : null;
        }

        /// <summary>
        /// The bytes of a NULL (empty), of UTF-8 text when <paramref name="text"/>, or of a blob otherwise; false for
        /// any other value, which the caller reads through the API.
        /// </summary>
        public static bool TryBytes(IntPtr row, int column, bool text, out ReadOnlySpan<byte> bytes)
        {
            var m = (byte*)row + column * MemSize;
            var flags = *(ushort*)(m + Flags);
            bytes = default;
            if ((flags & MemNull) != 0) return true;
            if ((flags & (MemZero | MemInt | MemReal | MemIntReal)) != 0) return false;
            // Text read once through the API is also marked as a blob; it is still text.
            if (text ? (flags & MemStr) == 0 || m[Enc] != Utf8 : (flags & (MemStr | MemBlob)) != MemBlob) return false;
            bytes = new ReadOnlySpan<byte>(*(byte**)(m + Z), *(int*)(m + N));
            return true;
        }

        public static bool TryInt64(IntPtr row, int column, out long value)
        {
            var m = (byte*)row + column * MemSize;
            if ((*(ushort*)(m + Flags) & MemAffinity) == MemInt) { value = *(long*)m; return true; }
            value = 0;
            return false;
        }

        /// <summary>Compares the structure reads with the public API on one row of every value kind the cursor meets.</summary>
        private static bool Probe()
        {
            try
            {
                Batteries_V2.Init(); // idempotent; this check may run before any connection was opened
                if (raw.sqlite3_open_v2(":memory:", out var db, raw.SQLITE_OPEN_READWRITE | raw.SQLITE_OPEN_NOMUTEX, null) != raw.SQLITE_OK)
                {
                    db.Dispose();
                    return false;
                }
                using (db)
                {
                    const string sql = "SELECT 'PAUDIT01', x'00FF7F80', NULL, 9223372036854775807, '', 'h\u00e9llo \u2603', -42, "
                        + "zeroblob(3), 1.5, x'', 0, printf('%.3000c', 'x'), CAST(NULL AS TEXT), '0190f000-0000-7000-8000-000000000001'";
                    // zeroblob(3) may be held unexpanded (zero-filled): the structure read refuses it and the API reads it.
                    const int ZeroBlob = 7;
                    if (raw.sqlite3_prepare_v2(db, sql, out var stmt) != raw.SQLITE_OK)
                    {
                        stmt.Dispose();
                        return false;
                    }
                    using (stmt)
                    {
                        if (raw.sqlite3_step(stmt) != raw.SQLITE_ROW) return false;
                        var h = stmt.DangerousGetHandle();
                        var count = raw.sqlite3_column_count(stmt);
                        var row = sqlite3_column_value(h, 0);
                        for (var c = 0; c < count; c++)
                            if (sqlite3_column_value(h, c) != row + c * MemSize) return false;
                        var seen = 0;
                        for (var c = 0; c < count; c++)
                        {
                            var type = sqlite3_column_type(h, c);
                            var isNull = IsNull(row, c);
                            if (isNull == true != (type == raw.SQLITE_NULL)) return false;
                            if (isNull == false && type is not (raw.SQLITE_TEXT or raw.SQLITE_BLOB or raw.SQLITE_INTEGER)) return false;
                            if (TryInt64(row, c, out var i))
                            {
                                if (type != raw.SQLITE_INTEGER || i != sqlite3_column_int64(h, c)) return false;
                                seen |= 1;
                            }
                            var textOk = TryBytes(row, c, text: true, out var asText);
                            var blobOk = TryBytes(row, c, text: false, out var asBlob);
                            if (textOk != (type is raw.SQLITE_TEXT or raw.SQLITE_NULL)) return false;
                            if (blobOk != (type is raw.SQLITE_BLOB or raw.SQLITE_NULL) && !(c == ZeroBlob && !blobOk)) return false;
                            if (textOk && !asText.SequenceEqual(Blob(h, c))) return false;
                            if (blobOk && !asBlob.SequenceEqual(Blob(h, c))) return false;
                            seen |= type switch { raw.SQLITE_TEXT => 2, raw.SQLITE_BLOB => 4, raw.SQLITE_NULL => 8, _ => 0 };
                            // Reading through the API may change a value's flags (text also marked as blob); read again.
                            if (type == raw.SQLITE_TEXT && (!TryBytes(row, c, text: true, out var again) || !again.SequenceEqual(Blob(h, c)))) return false;
                            if (type == raw.SQLITE_BLOB && c != ZeroBlob && (!TryBytes(row, c, text: false, out again) || !again.SequenceEqual(Blob(h, c)))) return false;
                        }
                        return seen == 15;
                    }
                }
            }
            catch (Exception)
            {
                return false; // any surprise means the column API, never a failed type initializer
            }
        }
    }
}
