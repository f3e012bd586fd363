using System.Buffers.Binary;
using System.Data.Common;
using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using NpgsqlTypes;
using Portal.Domain.Persistence;
using SQLitePCL;

namespace Portal.Domain.Audit;

public sealed class AuditWriterOptions
{
    /// <summary>Most events written in one transaction.</summary>
    public int MaxBatchSize { get; set; } = 4096;

    /// <summary>
    /// How long the writer waits after the first event of a batch for more to arrive. Zero (the default) is best:
    /// events that arrive while a batch commits form the next batch anyway, so batching needs no added delay.
    /// </summary>
    public TimeSpan BatchLinger { get; set; } = TimeSpan.Zero;

    /// <summary>Events waiting for the writer before producers are held back (back-pressure instead of unbounded memory).</summary>
    public int QueueCapacity { get; set; } = 65536;

    /// <summary>
    /// When nothing is queued and no batch is being written, the caller writes its own event on its own thread instead
    /// of handing it to the writer thread and waiting to be woken (two thread hand-offs saved on a quiet system; under
    /// load the writer is busy and events are group-committed as before). Off while <see cref="BatchLinger"/> is set.
    /// </summary>
    public bool WriteWhenIdle { get; set; } = true;
}

/// <summary>
/// The single, group-committing writer of the audit trail (one per process, registered as a singleton).
/// <para>
/// <see cref="AppendAsync"/> hands the event to one background loop and completes only once the transaction holding
/// it has committed durably (SQLite: WAL with synchronous=FULL on the writer connection; PostgreSQL: a normal commit
/// with synchronous_commit=on). Events that arrive while a batch is being committed are written together in the next
/// transaction, so under load thousands of requests share one commit while each waits only for its own batch. When the
/// writer is idle (nothing queued, no batch being written), the caller writes its own one-event batch on its own
/// thread under the same lock instead (<see cref="AuditWriterOptions.WriteWhenIdle"/>): same code, same durability,
/// two thread hand-offs fewer. That caller's thread blocks for the commit; only one batch is ever written at a time.
/// </para>
/// <para>
/// Chains: each project's head (last seq and hash) lives in audit_chain_heads. Each batch reads the heads of the projects
/// it touches inside its own transaction under the write lock (SQLite BEGIN IMMEDIATE; PostgreSQL SELECT ... FOR
/// UPDATE), assigns seq, prev_hash and hash, advances the heads and inserts the events, then commits. Other processes
/// (the job worker, a second portal node) may therefore write to the same database: they queue on the lock instead of
/// forking a chain. On PostgreSQL a batch of up to 64 events for projects whose heads this writer committed last goes
/// in one round trip instead (one autocommit statement that moves each head only if it still holds the seq this
/// writer left there, and undoes itself otherwise); a second writer makes that guard fail, and the batch is then written
/// the locked way above. On SQLite the (project_id, seq) primary key is a second guard; on PostgreSQL the key also holds occurred_at
/// (monthly partitions need it), so there the head's compare-and-set and the verifier's gap/repeat check are the guards.
/// </para>
/// <para>
/// Failure: if a batch cannot be written every waiter in it gets a <see cref="DomainException"/> of kind
/// <see cref="ErrorKind.Unavailable"/> (callers answer 503 and return no data), nothing of the batch is kept (one
/// transaction), and the next batch starts again from the heads in the database.
/// </para>
/// </summary>
public sealed class AuditWriter : IAsyncDisposable, IDisposable
{
    internal const string Columns =
        "project_id, seq, id, prev_hash, hash, occurred_at, event_type, resource_type, resource_id, action, actor_type, actor_id, " +
        "actor_email, actor_role, session_id, details, before_state, after_state, prompt, sql_text, tables_accessed, success, " +
        "error_message, duration_ms, rows_returned, security_level, data_classifications, client_ip, user_agent, request_id";

    private const int MaxChainRetries = 5;

    /// <summary>
    /// An accepted event with its canonical body encoding (<see cref="AuditHash.EncodeBody"/>) in
    /// <c>Buffer[..BodyLength]</c>, followed on SQLite by the id as upper-case UUID text. The writer hashes the body and
    /// inserts its fields from these bytes as they are, so no text is encoded twice and nothing on the writer's thread
    /// allocates per field.
    /// </summary>
    private sealed class Pending(AuditEvent e, byte[] buffer, int bodyLength)
    {
        public readonly AuditEvent Event = e;
        public readonly byte[] Buffer = buffer;
        public readonly int BodyLength = bodyLength;
        public ReadOnlySpan<byte> Body => Buffer.AsSpan(0, BodyLength);
        public readonly TaskCompletionSource<AuditReceipt> Done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    [ThreadStatic] private static byte[]? encodeScratch;

    private sealed record Head(long Seq, byte[] Hash);

    private sealed class ChainMovedException : Exception;

    private readonly DatabaseProvider provider;
    private readonly string connectionString;
    private readonly TimeProvider clock;
    private readonly ILogger logger;
    private readonly AuditWriterOptions options;
    private readonly Channel<Pending> channel;
    private readonly Thread loop;
    private readonly TaskCompletionSource stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // Held by whoever writes a batch: the loop thread, or a caller that found the writer idle (WriteWhenIdle).
    // Everything below it is touched only while holding it.
    private readonly Lock gate = new();
    private bool closed;
    private DbConnection? connection;
    private SqliteStatements? sqlite;
    private readonly Dictionary<Guid, byte[]> sqliteIds = new();
    private byte[] copyBuffer = new byte[1 << 16];

    private long batchesWritten, eventsWritten, writeTicks, oneTripBatches, staleHeads, callerBatches;
    private volatile bool disposing;

    /// <summary>Committed batches since start (for metrics: events per batch shows how well commits are shared).</summary>
    public long BatchesWritten => Interlocked.Read(ref batchesWritten);
    /// <summary>Committed events since start.</summary>
    public long EventsWritten => Interlocked.Read(ref eventsWritten);
    /// <summary>PostgreSQL batches written in one round trip.</summary>
    public long OneTripBatches => Interlocked.Read(ref oneTripBatches);
    /// <summary>PostgreSQL one-round-trip attempts undone because another writer had moved a head.</summary>
    public long StaleHeads => Interlocked.Read(ref staleHeads);
    /// <summary>Batches of one event written by the caller itself because the writer was idle.</summary>
    public long CallerBatches => Interlocked.Read(ref callerBatches);
    /// <summary>Time spent chaining, inserting and committing, for metrics.</summary>
    public TimeSpan WriteTime => TimeSpan.FromTicks(Interlocked.Read(ref writeTicks));

    public AuditWriter(PortalDatabase database, TimeProvider clock, ILogger<AuditWriter>? logger = null, AuditWriterOptions? options = null)
    {
        provider = database.Provider;
        connectionString = database.ConnectionString;
        this.clock = clock;
        this.logger = (ILogger?)logger ?? NullLogger.Instance;
        this.options = options ?? new AuditWriterOptions();
        channel = Channel.CreateBounded<Pending>(new BoundedChannelOptions(this.options.QueueCapacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        // A dedicated thread: the loop runs for the life of the process and mostly does blocking database I/O.
        loop = new Thread(Run) { IsBackground = true, Name = "audit-writer" };
        loop.Start();
    }

    /// <summary>
    /// Appends an event and waits until it is durably committed. Throws <see cref="DomainException"/>: Validation for a
    /// bad draft, Unavailable when the trail cannot be written (the caller must not return data). Cancelling
    /// <paramref name="ct"/> stops the wait, not the write: an accepted event is still recorded.
    /// </summary>
    public async Task<AuditReceipt> AppendAsync(AuditEventDraft draft, CancellationToken ct = default)
    {
        var e = AuditNormalizer.ToEvent(draft, clock.GetUtcNow());
        // Encode on the caller's thread so the single writer only hashes and inserts.
        var scratch = encodeScratch ?? new byte[2048];
        var n = AuditHash.EncodeBody(e, ref scratch);
        encodeScratch = scratch.Length <= 1 << 16 ? scratch : null;
        var idText = provider == DatabaseProvider.Sqlite ? 36 : 0;
        var buffer = GC.AllocateUninitializedArray<byte>(n + idText);
        scratch.AsSpan(0, n).CopyTo(buffer);
        if (idText > 0) SqliteIdText(e.Id, buffer.AsSpan(n));
        var pending = new Pending(e, buffer, n);
        if (options.WriteWhenIdle && options.BatchLinger == TimeSpan.Zero && channel.Reader.Count == 0 && gate.TryEnter())
        {
            try
            {
                if (closed || disposing) throw Unavailable();
                Interlocked.Increment(ref callerBatches);
                WriteTimed([pending]);
            }
            finally
            {
                gate.Exit();
            }
            return await pending.Done.Task; // already completed (result or Unavailable)
        }
        try
        {
            await channel.Writer.WriteAsync(pending, ct);
        }
        catch (ChannelClosedException)
        {
            throw Unavailable();
        }
        return await pending.Done.Task.WaitAsync(ct);
    }

    private static DomainException Unavailable() =>
        new(ErrorKind.Unavailable, "The audit trail cannot be written right now, so the request was not carried out. Try again shortly.");

    private void Run()
    {
        var batch = new List<Pending>(options.MaxBatchSize);
        var reader = channel.Reader;
        try
        {
            while (true)
            {
                var more = reader.WaitToReadAsync();
                var hasData = more.IsCompleted ? more.Result : more.AsTask().GetAwaiter().GetResult();
                if (!hasData) break;
                if (options.BatchLinger > TimeSpan.Zero) Thread.Sleep(options.BatchLinger);
                while (batch.Count < options.MaxBatchSize && reader.TryRead(out var p)) batch.Add(p);
                if (batch.Count == 0) continue;
                lock (gate) WriteTimed(batch);
                batch.Clear();
            }
        }
        finally
        {
            lock (gate)
            {
                closed = true;
                CloseConnection();
            }
            stopped.TrySetResult();
        }
    }

    // Caller holds the gate.
    private void WriteTimed(List<Pending> batch)
    {
        var started = Stopwatch.GetTimestamp();
        WriteBatch(batch);
        Interlocked.Add(ref writeTicks, Stopwatch.GetElapsedTime(started).Ticks);
    }

    private void WriteBatch(List<Pending> batch)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                var connection = Connection();
                if (provider == DatabaseProvider.Sqlite) WriteSqlite(sqlite!, batch);
                else WritePostgres((NpgsqlConnection)connection, batch);
                Interlocked.Increment(ref batchesWritten);
                Interlocked.Add(ref eventsWritten, batch.Count);
                foreach (var p in batch)
                {
                    var e = p.Event;
                    p.Done.TrySetResult(new AuditReceipt(e.Id, e.ProjectId, e.Seq, Convert.ToHexStringLower(e.Hash)));
                }
                return;
            }
            catch (ChainMovedException) when (attempt < MaxChainRetries)
            {
                committedHeads.Clear();
                // Another writer created the same project's first head at the same moment; its row is there now.
                Rollback();
            }
            catch (Exception ex)
            {
                logger.LogError(ex, "Audit batch of {Count} events could not be written; every request in it is refused", batch.Count);
                committedHeads.Clear();
                // The transaction was begun with plain SQL, which a pooled connection would not undo on its return.
                if (connection is not null) Rollback();
                CloseConnection();
                var error = Unavailable();
                foreach (var p in batch) p.Done.TrySetException(error);
                return;
            }
        }
    }

    private void Rollback()
    {
        try
        {
            if (sqlite is not null) sqlite.Run(sqlite.Rollback);
            else if (connection is NpgsqlConnection pg)
            {
                using var cmd = new NpgsqlCommand("ROLLBACK", pg);
                cmd.ExecuteNonQuery();
            }
        }
        catch (Exception e) when (e is SqliteException or NpgsqlException or InvalidOperationException)
        {
            CloseConnection();
        }
    }

    private void WriteSqlite(SqliteStatements st, List<Pending> batch)
    {
        // BEGIN IMMEDIATE takes the write lock before the heads are read, so a second writer process waits instead of
        // forking a chain.
        st.Run(st.Begin);
        var old = new Dictionary<Guid, Head>();
        var seen = new HashSet<Guid>();
        foreach (var p in batch)
        {
            var project = p.Event.ProjectId;
            if (seen.Add(project) && st.ReadHead(SqliteId(project)) is { } head) old[project] = head;
        }
        var newHeads = Chain(batch, old);
        var now = clock.GetUtcNow().UtcTicks;
        foreach (var (project, head) in newHeads)
        {
            // The seq condition is a second guard; the write lock already keeps writers apart.
            var changed = old.TryGetValue(project, out var before)
                ? st.UpdateHead(SqliteId(project), head, now, before.Seq)
                : st.InsertHead(SqliteId(project), head, now);
            if (!changed) throw new ChainMovedException();
        }
        foreach (var p in batch) st.Insert(p, SqliteId(p.Event.ProjectId));
        st.Run(st.Commit);
    }

    /// <summary>
    /// Each project's head as this writer's last commit left it. A batch of only such projects is written in one
    /// round trip (<see cref="TryWritePostgresOneTrip"/>); the head's seq guard there catches another writer having
    /// moved on since. Cleared on any failure, so after one the heads are read again under lock.
    /// </summary>
    private readonly Dictionary<Guid, Head> committedHeads = new();

    /// <summary>Batches up to this size take the one-round-trip statement; larger ones stream through COPY.</summary>
    private const int OneTripMaxEvents = 64;

    private void WritePostgres(NpgsqlConnection c, List<Pending> batch)
    {
        if (batch.Count <= OneTripMaxEvents && TryWritePostgresOneTrip(c, batch)) return;
        WritePostgresLocked(c, batch);
    }

    /// <summary>
    /// One statement, in autocommit, so one round trip including the durable commit: the heads move from the values
    /// this writer committed last (seq guard) and the events are inserted from arrays. If another writer moved a head
    /// since, the count check divides by zero, the whole statement (heads and events) is undone, and the caller falls
    /// back to reading the heads under lock. False when the batch cannot or could not go this way; nothing is written then.
    /// </summary>
    private bool TryWritePostgresOneTrip(NpgsqlConnection c, List<Pending> batch)
    {
        var heads = new Dictionary<Guid, Head>();
        foreach (var p in batch)
        {
            var project = p.Event.ProjectId;
            if (heads.ContainsKey(project)) continue;
            if (!committedHeads.TryGetValue(project, out var known)) return false;
            heads[project] = known;
        }
        var newHeads = Chain(batch, heads);
        var projects = newHeads.Keys.ToArray();
        var n = batch.Count;
        T?[] Col<T>(Func<AuditEvent, T?> f) { var a = new T?[n]; for (var i = 0; i < n; i++) a[i] = f(batch[i].Event); return a; }
        // Prepared once per connection (the statement's parse and plan, and the parameters' type handling, are then
        // done once); later batches only set the values.
        var fresh = oneTrip is null || oneTrip.Connection != c;
        if (fresh)
        {
            oneTrip?.Dispose();
            oneTrip = new NpgsqlCommand(OneTripSql, c);
        }
        var cmd = oneTrip!;
        var ps = cmd.Parameters;
        var k = 0;
        PutHeadMoves(ps, ref k, projects, newHeads, heads);
        Put(ps, ref k, Col(e => e.ProjectId));
        Put(ps, ref k, Col(e => e.Seq));
        Put(ps, ref k, Col(e => e.Id));
        Put(ps, ref k, Col(e => e.PrevHash)!);
        Put(ps, ref k, Col(e => e.Hash)!);
        Put(ps, ref k, Col(e => e.OccurredAt));
        foreach (var text in OneTripText) Put(ps, ref k, Col(text));
        Put(ps, ref k, Col(e => e.Success));
        Put(ps, ref k, Col(e => e.ErrorMessage));
        Put(ps, ref k, Col(e => e.DurationMs));
        Put(ps, ref k, Col(e => e.RowsReturned));
        foreach (var text in OneTripTextTail) Put(ps, ref k, Col(text));
        if (fresh) cmd.Prepare();
        try
        {
            using var r = cmd.ExecuteReader();
            if (!r.Read() || r.GetInt64(1) != n) throw new InvalidOperationException("The audit insert did not report every event written.");
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.DivisionByZero or PostgresErrorCodes.UniqueViolation)
        {
            // Another writer moved one of the heads (the guard's count, or its events already hold these seqs): nothing
            // of this statement stays. Read the heads under lock instead.
            committedHeads.Clear();
            Interlocked.Increment(ref staleHeads);
            return false;
        }
        foreach (var (project, head) in newHeads) committedHeads[project] = head;
        Interlocked.Increment(ref oneTripBatches);
        return true;
    }

    // event_type .. tables_accessed, then security_level .. request_id: the text columns around success, error_message,
    // duration_ms and rows_returned, in Columns order.
    private static readonly Func<AuditEvent, string?>[] OneTripText =
    [
        e => e.EventType, e => e.ResourceType, e => e.ResourceId, e => e.Action, e => e.ActorType, e => e.ActorId, e => e.ActorEmail,
        e => e.ActorRole, e => e.SessionId, e => e.Details, e => e.BeforeState, e => e.AfterState, e => e.Prompt, e => e.SqlText,
        e => e.TablesAccessed,
    ];

    private static readonly Func<AuditEvent, string?>[] OneTripTextTail =
        [e => e.SecurityLevel, e => e.DataClassifications, e => e.ClientIp, e => e.UserAgent, e => e.RequestId];

    private static readonly string OneTripSql = BuildOneTripSql();

    private NpgsqlCommand? oneTrip;

    /// <summary>The parameter at position <paramref name="k"/>: added to a new command, its value replaced on a prepared one.</summary>
    private static void Put<T>(NpgsqlParameterCollection ps, ref int k, T value)
    {
        if (k == ps.Count) ps.Add(new NpgsqlParameter<T> { TypedValue = value });
        else ((NpgsqlParameter<T>)ps[k]).TypedValue = value;
        k++;
    }

    /// <summary>
    /// Moves each head from the seq this writer read or remembered to its new seq and hash, only where it still holds
    /// the old seq; the statement that uses it compares the count with $6 (parameters $1..$6: <see cref="PutHeadMoves"/>).
    /// </summary>
    private const string MoveHeads = """
        moved AS (
            UPDATE audit_chain_heads h SET seq = n.seq, hash = n.hash, updated_at = $5
            FROM unnest($1::uuid[], $2::bigint[], $3::bytea[], $4::bigint[]) AS n(project_id, seq, hash, expected)
            WHERE h.project_id = n.project_id AND h.seq = n.expected
            RETURNING 1)
        """;

    private void PutHeadMoves(NpgsqlParameterCollection ps, ref int k, Guid[] projects, Dictionary<Guid, Head> newHeads, Dictionary<Guid, Head> old)
    {
        Put(ps, ref k, projects);
        Put(ps, ref k, projects.Select(p => newHeads[p].Seq).ToArray());
        Put(ps, ref k, projects.Select(p => newHeads[p].Hash).ToArray());
        Put(ps, ref k, projects.Select(p => old[p].Seq).ToArray());
        Put(ps, ref k, clock.GetUtcNow());
        Put(ps, ref k, (long)projects.Length);
    }

    private static string BuildOneTripSql()
    {
        var names = Columns.Split(", ");
        string[] types = ["uuid", "bigint", "uuid", "bytea", "bytea", "timestamptz", .. Enumerable.Repeat("text", 15), "boolean", "text", "bigint", "bigint",
            .. Enumerable.Repeat("text", 5)];
        if (types.Length != names.Length) throw new InvalidOperationException("One-trip insert: a type for every audit column.");
        var arrays = string.Join(", ", types.Select((t, i) => $"${i + 7}::{t}[]"));
        return $"""
            WITH {MoveHeads},
            added AS (
                INSERT INTO audit_events ({Columns})
                SELECT * FROM unnest({arrays})
                RETURNING 1)
            SELECT 1 / (CASE WHEN (SELECT count(*) FROM moved) = $6 THEN 1 ELSE 0 END), (SELECT count(*) FROM added)
            """;
    }

    private void WritePostgresLocked(NpgsqlConnection c, List<Pending> batch)
    {
        // Four round trips whatever the number of projects: BEGIN with the locked read of the heads, the COPY (start,
        // then data with its end), and the heads' update with COMMIT. FOR UPDATE makes a second writer process wait
        // for this commit instead of forking a chain.
        var projects = batch.Select(p => p.Event.ProjectId).Distinct().ToArray();
        var heads = new Dictionary<Guid, Head>(projects.Length);
        using (var read = new NpgsqlBatch(c))
        {
            read.BatchCommands.Add(new NpgsqlBatchCommand("BEGIN"));
            var select = new NpgsqlBatchCommand("SELECT project_id, seq, hash FROM audit_chain_heads WHERE project_id = ANY($1) FOR UPDATE");
            select.Parameters.Add(new NpgsqlParameter<Guid[]> { TypedValue = projects });
            read.BatchCommands.Add(select);
            using var r = read.ExecuteReader();
            while (r.Read()) heads[r.GetGuid(0)] = new Head(r.GetInt64(1), (byte[])r.GetValue(2));
        }
        var newHeads = Chain(batch, heads);
        var created = newHeads.Keys.Where(k => !heads.ContainsKey(k)).ToArray();
        if (created.Length > 0)
        {
            // A project's first event: another writer may create the same head at the same moment (ON CONFLICT waits
            // for it, then inserts nothing), which this batch must notice and retry.
            using var insert = new NpgsqlCommand("""
                INSERT INTO audit_chain_heads (project_id, seq, hash, updated_at)
                SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bytea[]) AS n(project_id, seq, hash), (SELECT $4::timestamptz) AS u
                ON CONFLICT (project_id) DO NOTHING
                """, c);
            insert.Parameters.Add(new NpgsqlParameter<Guid[]> { TypedValue = created });
            insert.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = created.Select(p => newHeads[p].Seq).ToArray() });
            insert.Parameters.Add(new NpgsqlParameter<byte[][]> { TypedValue = created.Select(p => newHeads[p].Hash).ToArray() });
            insert.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = clock.GetUtcNow() });
            if (insert.ExecuteNonQuery() != created.Length) throw new ChainMovedException();
        }
        CopyPostgres(c, batch);
        var moved = newHeads.Keys.Where(heads.ContainsKey).ToArray();
        using var finish = new NpgsqlBatch(c);
        if (moved.Length > 0)
        {
            // The seq condition is a second guard (the rows are locked). It must stop the COMMIT queued behind it, so a
            // count that does not match divides by zero: the error aborts the transaction and the server skips COMMIT.
            var update = new NpgsqlBatchCommand($"WITH {MoveHeads} SELECT 1 / (CASE WHEN count(*) = $6 THEN 1 ELSE 0 END) FROM moved");
            var k = 0;
            PutHeadMoves(update.Parameters, ref k, moved, newHeads, heads);
            finish.BatchCommands.Add(update);
        }
        finish.BatchCommands.Add(new NpgsqlBatchCommand("COMMIT"));
        finish.ExecuteNonQuery();
        foreach (var (project, head) in newHeads) committedHeads[project] = head;
    }

    /// <summary>Assigns seq, prev_hash and hash in arrival order; returns each touched project's new head.</summary>
    private static Dictionary<Guid, Head> Chain(List<Pending> batch, Dictionary<Guid, Head> heads)
    {
        var newHeads = new Dictionary<Guid, Head>();
        foreach (var p in batch)
        {
            var e = p.Event;
            if (!newHeads.TryGetValue(e.ProjectId, out var head))
                head = heads.TryGetValue(e.ProjectId, out var h) ? h : new Head(0, AuditHash.Genesis());
            e.Seq = head.Seq + 1;
            e.PrevHash = head.Hash;
            var hash = new byte[AuditHash.Size];
            AuditHash.Compute(e.ProjectId, e.Seq, e.PrevHash, p.Body, hash);
            e.Hash = hash;
            newHeads[e.ProjectId] = new Head(e.Seq, hash);
        }
        return newHeads;
    }

    private DbConnection Connection()
    {
        if (connection is not null) return connection;
        if (provider == DatabaseProvider.Sqlite)
        {
            var c = new SqliteConnection(connectionString);
            c.Open();
            using var pragma = c.CreateCommand();
            // FULL: the WAL is fsynced at every commit, so an acknowledged event survives power loss, not only a crash.
            // The larger page cache keeps the upper levels of the table's eight B-trees in memory between batches.
            // The statements below run outside Microsoft.Data.Sqlite, so the lock wait is SQLite's own busy timeout.
            var timeout = new SqliteConnectionStringBuilder(connectionString).DefaultTimeout;
            pragma.CommandText = $"PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-65536; PRAGMA busy_timeout={Math.Max(1, timeout) * 1000};";
            pragma.ExecuteNonQuery();
            connection = c;
            sqlite = new SqliteStatements(c);
        }
        else
        {
            var c = new NpgsqlConnection(connectionString);
            c.Open();
            using var set = c.CreateCommand();
            // Guard against a server or role configured with synchronous_commit=off: the ack must mean durable.
            set.CommandText = "SET synchronous_commit = on";
            set.ExecuteNonQuery();
            connection = c;
        }
        return connection;
    }

    private void CloseConnection()
    {
        oneTrip?.Dispose();
        oneTrip = null;
        sqlite?.Dispose();
        sqlite = null;
        connection?.Dispose();
        connection = null;
    }

    // EF Core stores GUIDs in SQLite as upper-case text; match it so EF queries find these rows.
    private byte[] SqliteId(Guid id)
    {
        if (sqliteIds.TryGetValue(id, out var s)) return s;
        if (sqliteIds.Count > 100_000) sqliteIds.Clear();
        var text = new byte[36];
        SqliteIdText(id, text);
        return sqliteIds[id] = text;
    }

    private static void SqliteIdText(Guid id, Span<byte> destination)
    {
        id.TryFormat(destination, out _, "D");
        for (var i = 0; i < 36; i++)
            if (destination[i] >= 'a') destination[i] -= 'a' - 'A';
    }

    /// <summary>
    /// The writer connection's prepared statements, run through SQLitePCLRaw (the engine binding under
    /// Microsoft.Data.Sqlite): the insert binds each field straight from the pending event's encoded bytes.
    /// </summary>
    private sealed unsafe class SqliteStatements : IDisposable
    {
        private readonly sqlite3 db;
        public readonly sqlite3_stmt Begin, Commit, Rollback, SelectHead, UpdateHeadStmt, InsertHeadStmt, InsertEvent;
        private readonly IntPtr insertHandle;
        private readonly bool direct = NativeSqlite.Available;

        public SqliteStatements(SqliteConnection connection)
        {
            db = connection.Handle!;
            Begin = Prepare("BEGIN IMMEDIATE");
            Commit = Prepare("COMMIT");
            Rollback = Prepare("ROLLBACK");
            SelectHead = Prepare("SELECT seq, hash FROM audit_chain_heads WHERE project_id = ?1");
            UpdateHeadStmt = Prepare("UPDATE audit_chain_heads SET seq = ?2, hash = ?3, updated_at = ?4 WHERE project_id = ?1 AND seq = ?5");
            InsertHeadStmt = Prepare("INSERT INTO audit_chain_heads (project_id, seq, hash, updated_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (project_id) DO NOTHING");
            var names = Columns.Split(", ");
            InsertEvent = Prepare($"INSERT INTO audit_events ({Columns}) VALUES ({string.Join(", ", names.Select((_, i) => "?" + (i + 1)))})");
            insertHandle = InsertEvent.DangerousGetHandle();
        }

        private sqlite3_stmt Prepare(string sql)
        {
            Check(raw.sqlite3_prepare_v2(db, sql, out var stmt));
            return stmt;
        }

        private void Check(int rc)
        {
            if (rc != raw.SQLITE_OK) throw new SqliteException(raw.sqlite3_errmsg(db).utf8_to_string(), rc);
        }

        /// <summary>Steps a statement that returns no rows, then resets it for the next use.</summary>
        public void Run(sqlite3_stmt stmt)
        {
            var rc = raw.sqlite3_step(stmt);
            raw.sqlite3_reset(stmt);
            if (rc != raw.SQLITE_DONE) throw new SqliteException(raw.sqlite3_errmsg(db).utf8_to_string(), rc);
        }

        public Head? ReadHead(byte[] project)
        {
            var s = SelectHead;
            try
            {
                Check(raw.sqlite3_bind_text(s, 1, project));
                var rc = raw.sqlite3_step(s);
                if (rc == raw.SQLITE_DONE) return null;
                if (rc != raw.SQLITE_ROW) throw new SqliteException(raw.sqlite3_errmsg(db).utf8_to_string(), rc);
                return new Head(raw.sqlite3_column_int64(s, 0), raw.sqlite3_column_blob(s, 1).ToArray());
            }
            finally { raw.sqlite3_reset(s); }
        }

        public bool UpdateHead(byte[] project, Head head, long now, long expectedSeq)
        {
            var s = UpdateHeadStmt;
            Check(raw.sqlite3_bind_text(s, 1, project));
            Check(raw.sqlite3_bind_int64(s, 2, head.Seq));
            Check(raw.sqlite3_bind_blob(s, 3, head.Hash));
            Check(raw.sqlite3_bind_int64(s, 4, now));
            Check(raw.sqlite3_bind_int64(s, 5, expectedSeq));
            Run(s);
            return raw.sqlite3_changes(db) == 1;
        }

        public bool InsertHead(byte[] project, Head head, long now)
        {
            var s = InsertHeadStmt;
            Check(raw.sqlite3_bind_text(s, 1, project));
            Check(raw.sqlite3_bind_int64(s, 2, head.Seq));
            Check(raw.sqlite3_bind_blob(s, 3, head.Hash));
            Check(raw.sqlite3_bind_int64(s, 4, now));
            Run(s);
            return raw.sqlite3_changes(db) == 1;
        }

        /// <summary>
        /// One audit_events row. The body holds id, occurred_at, then event_type..request_id in column order, each as a
        /// 4-byte big-endian length (−1 for NULL) and its bytes: text is bound from those UTF-8 bytes, numbers decoded.
        /// </summary>
        public void Insert(Pending p, byte[] project)
        {
            var e = p.Event;
            fixed (byte* buffer = p.Buffer)
            fixed (byte* projectText = project)
            fixed (byte* prev = e.PrevHash)
            fixed (byte* hash = e.Hash)
            {
                var body = new ReadOnlySpan<byte>(buffer, p.BodyLength);
                Text(1, projectText, 36);
                Int(2, e.Seq);
                Text(3, buffer + p.BodyLength, 36);
                Blob(4, prev, e.PrevHash.Length);
                Blob(5, hash, e.Hash.Length);
                var at = 4 + 16; // past the id
                Int(6, BinaryPrimitives.ReadInt64BigEndian(body[(at + 4)..]));
                at += 4 + 8;
                for (var column = 7; column <= 30; column++)
                {
                    var n = BinaryPrimitives.ReadInt32BigEndian(body[at..]);
                    at += 4;
                    if (n < 0) { Null(column); continue; }
                    switch (column - 1)
                    {
                        case AuditRows.Success: Int(column, body[at]); break;
                        case AuditRows.DurationMs or AuditRows.RowsReturned: Int(column, BinaryPrimitives.ReadInt64BigEndian(body[at..])); break;
                        default: Text(column, buffer + at, n); break;
                    }
                    at += n;
                }
                var rc = raw.sqlite3_step(InsertEvent);
                raw.sqlite3_reset(InsertEvent);
                if (rc != raw.SQLITE_DONE) throw new SqliteException(raw.sqlite3_errmsg(db).utf8_to_string(), rc);
            }
        }

        private void Text(int index, byte* value, int length) => Check(direct
            ? NativeSqlite.sqlite3_bind_text(insertHandle, index, value, length, IntPtr.Zero)
            : raw.sqlite3_bind_text(InsertEvent, index, new ReadOnlySpan<byte>(value, length)));

        private void Blob(int index, byte* value, int length) => Check(direct
            ? NativeSqlite.sqlite3_bind_blob(insertHandle, index, value, length, IntPtr.Zero)
            : raw.sqlite3_bind_blob(InsertEvent, index, new ReadOnlySpan<byte>(value, length)));

        private void Int(int index, long value) => Check(direct
            ? NativeSqlite.sqlite3_bind_int64(insertHandle, index, value)
            : raw.sqlite3_bind_int64(InsertEvent, index, value));

        private void Null(int index) => Check(direct
            ? NativeSqlite.sqlite3_bind_null(insertHandle, index)
            : raw.sqlite3_bind_null(InsertEvent, index));

        public void Dispose()
        {
            foreach (var s in new[] { Begin, Commit, Rollback, SelectHead, UpdateHeadStmt, InsertHeadStmt, InsertEvent }) s.Dispose();
        }
    }

    /// <summary>
    /// The batch as one binary COPY written by hand: a binary COPY field is a 4-byte big-endian length (−1 for NULL)
    /// and the value's binary form, which for event_type..request_id is exactly the body encoding the producers made,
    /// so those bytes are copied as they are. Only the header columns and occurred_at (microseconds since 2000) are
    /// written per row.
    /// </summary>
    private void CopyPostgres(NpgsqlConnection c, List<Pending> batch)
    {
        using var copy = c.BeginRawBinaryCopy($"COPY audit_events ({Columns}) FROM STDIN (FORMAT BINARY)");
        try
        {
            var b = copyBuffer;
            var p = 0;
            PgCopy.Signature.CopyTo(b);
            p += PgCopy.Signature.Length;
            BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(p), 0); p += 4; // flags
            BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(p), 0); p += 4; // no header extension
            foreach (var pending in batch)
            {
                var e = pending.Event;
                var body = pending.Body;
                var row = 2 + 20 + 12 + 20 + 36 + 36 + 12 + (body.Length - 32);
                if (p + row > b.Length)
                {
                    copy.Write(b, 0, p);
                    p = 0;
                    if (row > b.Length) copyBuffer = b = new byte[Math.Max(row, b.Length * 2)];
                }
                var s = b.AsSpan();
                BinaryPrimitives.WriteInt16BigEndian(s[p..], 30); p += 2;
                BinaryPrimitives.WriteInt32BigEndian(s[p..], 16); p += 4;
                e.ProjectId.TryWriteBytes(s[p..], bigEndian: true, out _); p += 16;
                BinaryPrimitives.WriteInt32BigEndian(s[p..], 8); p += 4;
                BinaryPrimitives.WriteInt64BigEndian(s[p..], e.Seq); p += 8;
                body[..20].CopyTo(s[p..]); p += 20; // id: length 16 and its big-endian bytes
                BinaryPrimitives.WriteInt32BigEndian(s[p..], e.PrevHash.Length); p += 4;
                e.PrevHash.CopyTo(s[p..]); p += e.PrevHash.Length;
                BinaryPrimitives.WriteInt32BigEndian(s[p..], e.Hash.Length); p += 4;
                e.Hash.CopyTo(s[p..]); p += e.Hash.Length;
                BinaryPrimitives.WriteInt32BigEndian(s[p..], 8); p += 4;
                BinaryPrimitives.WriteInt64BigEndian(s[p..], (BinaryPrimitives.ReadInt64BigEndian(body[24..]) - PgCopy.EpochTicks) / 10); p += 8;
                body[32..].CopyTo(s[p..]); p += body.Length - 32;
            }
            if (p + 2 > b.Length) { copy.Write(b, 0, p); p = 0; }
            BinaryPrimitives.WriteInt16BigEndian(b.AsSpan(p), -1); p += 2; // trailer
            copy.Write(b, 0, p);
        }
        catch
        {
            copy.Cancel();
            throw;
        }
    }

    /// <summary>Stops accepting events, writes those already accepted, and closes the connection.</summary>
    public async ValueTask DisposeAsync()
    {
        disposing = true;
        channel.Writer.TryComplete();
        await stopped.Task;
    }

    public void Dispose()
    {
        disposing = true;
        channel.Writer.TryComplete();
        stopped.Task.GetAwaiter().GetResult();
    }
}
