using System.Data.Common;
using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using NpgsqlTypes;
using Portal.Domain.Persistence;

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
}

/// <summary>
/// The single, group-committing writer of the audit trail (one per process, registered as a singleton).
/// <para>
/// <see cref="AppendAsync"/> hands the event to one background loop and completes only once the transaction holding
/// it has committed durably (SQLite: WAL with synchronous=FULL on the writer connection; PostgreSQL: a normal commit
/// with synchronous_commit=on). Events that arrive while a batch is being committed are written together in the next
/// transaction, so under load thousands of requests share one commit while each waits only for its own batch.
/// </para>
/// <para>
/// Chains: each project's head (last seq and hash) lives in audit_chain_heads. Each batch reads the heads of the projects
/// it touches inside its own transaction under the write lock (SQLite BEGIN IMMEDIATE; PostgreSQL SELECT ... FOR
/// UPDATE), assigns seq, prev_hash and hash, advances the heads and inserts the events, then commits. Other processes
/// (the job worker, a second portal node) may therefore write to the same database: they queue on the lock instead of
/// forking a chain. Heads are not cached across batches on purpose: an in-memory copy would go stale as soon as a
/// second writer exists, and the locked read costs one indexed lookup (one round trip on PostgreSQL) per batch, not
/// per event. The (project_id, seq) primary key is a second guard.
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

    private sealed class Pending(AuditEvent e, byte[] body)
    {
        public readonly AuditEvent Event = e;
        public readonly byte[] Body = body;
        public readonly TaskCompletionSource<AuditReceipt> Done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

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

    // Owned by the loop thread only.
    private DbConnection? connection;
    private SqliteCommand? sqliteInsert;
    private readonly Dictionary<Guid, string> sqliteIds = new();

    private long batchesWritten, eventsWritten, writeTicks;

    /// <summary>Committed batches since start (for metrics: events per batch shows how well commits are shared).</summary>
    public long BatchesWritten => Interlocked.Read(ref batchesWritten);
    /// <summary>Committed events since start.</summary>
    public long EventsWritten => Interlocked.Read(ref eventsWritten);
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
        var buffer = new byte[512];
        var n = AuditHash.EncodeBody(e, ref buffer);
        var pending = new Pending(e, buffer.AsSpan(0, n).ToArray());
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
                var started = Stopwatch.GetTimestamp();
                WriteBatch(batch);
                Interlocked.Add(ref writeTicks, Stopwatch.GetElapsedTime(started).Ticks);
                batch.Clear();
            }
        }
        finally
        {
            CloseConnection();
            stopped.TrySetResult();
        }
    }

    private void WriteBatch(List<Pending> batch)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                var connection = Connection();
                using (var tx = connection.BeginTransaction())
                {
                    // Read the heads inside the transaction, locked (SQLite: BEGIN IMMEDIATE holds the write lock;
                    // PostgreSQL: FOR UPDATE), so a second writer process waits instead of forking a chain.
                    var heads = ReadHeads(connection, tx, batch);
                    var newHeads = Chain(batch, heads);
                    AdvanceHeads(connection, tx, newHeads, heads);
                    if (provider == DatabaseProvider.Sqlite) InsertSqlite((SqliteConnection)connection, (SqliteTransaction)tx, batch);
                    else CopyPostgres((NpgsqlConnection)connection, batch);
                    tx.Commit();
                }
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
                // Another writer created the same project's first head at the same moment; its row is there now.
            }
            catch (Exception ex)
            {
                logger.LogError(ex, "Audit batch of {Count} events could not be written; every request in it is refused", batch.Count);
                CloseConnection();
                var error = Unavailable();
                foreach (var p in batch) p.Done.TrySetException(error);
                return;
            }
        }
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
            pragma.CommandText = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;";
            pragma.ExecuteNonQuery();
            connection = c;
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
        sqliteInsert?.Dispose();
        sqliteInsert = null;
        connection?.Dispose();
        connection = null;
    }

    private Dictionary<Guid, Head> ReadHeads(DbConnection c, DbTransaction tx, List<Pending> batch)
    {
        var projects = new HashSet<Guid>();
        foreach (var p in batch) projects.Add(p.Event.ProjectId);
        var result = new Dictionary<Guid, Head>(projects.Count);
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        if (provider == DatabaseProvider.Sqlite)
        {
            var names = new List<string>(projects.Count);
            foreach (var project in projects)
            {
                var name = "@p" + names.Count;
                names.Add(name);
                Add(cmd, name, SqliteId(project));
            }
            cmd.CommandText = $"SELECT project_id, seq, hash FROM audit_chain_heads WHERE project_id IN ({string.Join(", ", names)})";
        }
        else
        {
            cmd.CommandText = "SELECT project_id, seq, hash FROM audit_chain_heads WHERE project_id = ANY(@ids) FOR UPDATE";
            Add(cmd, "@ids", projects.ToArray());
        }
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            var project = provider == DatabaseProvider.Sqlite ? Guid.Parse(r.GetString(0)) : r.GetGuid(0);
            result[project] = new Head(r.GetInt64(1), (byte[])r.GetValue(2));
        }
        return result;
    }

    private void AdvanceHeads(DbConnection c, DbTransaction tx, Dictionary<Guid, Head> newHeads, Dictionary<Guid, Head> oldHeads)
    {
        var now = clock.GetUtcNow();
        foreach (var (project, head) in newHeads)
        {
            var exists = oldHeads.TryGetValue(project, out var old);
            using var cmd = c.CreateCommand();
            cmd.Transaction = tx;
            // The seq condition is a second guard; the locked read above already keeps writers apart.
            cmd.CommandText = exists
                ? "UPDATE audit_chain_heads SET seq = @s, hash = @h, updated_at = @u WHERE project_id = @p AND seq = @e"
                : "INSERT INTO audit_chain_heads (project_id, seq, hash, updated_at) VALUES (@p, @s, @h, @u) ON CONFLICT (project_id) DO NOTHING";
            Add(cmd, "@p", provider == DatabaseProvider.Sqlite ? SqliteId(project) : project);
            Add(cmd, "@s", head.Seq);
            Add(cmd, "@h", head.Hash);
            Add(cmd, "@u", provider == DatabaseProvider.Sqlite ? now.UtcTicks : now);
            if (exists) Add(cmd, "@e", old!.Seq);
            if (cmd.ExecuteNonQuery() != 1) throw new ChainMovedException();
        }
    }

    private static void Add(DbCommand cmd, string name, object value)
    {
        var p = cmd.CreateParameter();
        p.ParameterName = name;
        p.Value = value;
        cmd.Parameters.Add(p);
    }

    // EF Core stores GUIDs in SQLite as upper-case text; match it so EF queries find these rows.
    private string SqliteId(Guid id)
    {
        if (sqliteIds.TryGetValue(id, out var s)) return s;
        if (sqliteIds.Count > 100_000) sqliteIds.Clear();
        return sqliteIds[id] = id.ToString().ToUpperInvariant();
    }

    private void InsertSqlite(SqliteConnection c, SqliteTransaction tx, List<Pending> batch)
    {
        // One prepared statement reused per row: SQLite has no COPY, and re-binding a prepared insert inside one
        // transaction is its fastest bulk path (a multi-row VALUES only adds parsing).
        if (sqliteInsert is null)
        {
            sqliteInsert = c.CreateCommand();
            var names = Columns.Split(", ");
            sqliteInsert.CommandText = $"INSERT INTO audit_events ({Columns}) VALUES ({string.Join(", ", names.Select(n => "@" + n))})";
            foreach (var n in names) sqliteInsert.Parameters.Add(new SqliteParameter { ParameterName = "@" + n });
        }
        var cmd = sqliteInsert;
        cmd.Transaction = tx;
        var ps = cmd.Parameters;
        foreach (var pending in batch)
        {
            var e = pending.Event;
            ps[0].Value = SqliteId(e.ProjectId);
            ps[1].Value = e.Seq;
            ps[2].Value = e.Id.ToString().ToUpperInvariant();
            ps[3].Value = e.PrevHash;
            ps[4].Value = e.Hash;
            ps[5].Value = e.OccurredAt.UtcTicks;
            ps[6].Value = e.EventType;
            ps[7].Value = Db(e.ResourceType);
            ps[8].Value = Db(e.ResourceId);
            ps[9].Value = Db(e.Action);
            ps[10].Value = e.ActorType;
            ps[11].Value = Db(e.ActorId);
            ps[12].Value = Db(e.ActorEmail);
            ps[13].Value = Db(e.ActorRole);
            ps[14].Value = Db(e.SessionId);
            ps[15].Value = Db(e.Details);
            ps[16].Value = Db(e.BeforeState);
            ps[17].Value = Db(e.AfterState);
            ps[18].Value = Db(e.Prompt);
            ps[19].Value = Db(e.SqlText);
            ps[20].Value = Db(e.TablesAccessed);
            ps[21].Value = e.Success ? 1L : 0L;
            ps[22].Value = Db(e.ErrorMessage);
            ps[23].Value = e.DurationMs is { } d ? d : DBNull.Value;
            ps[24].Value = e.RowsReturned is { } rr ? rr : DBNull.Value;
            ps[25].Value = e.SecurityLevel;
            ps[26].Value = Db(e.DataClassifications);
            ps[27].Value = Db(e.ClientIp);
            ps[28].Value = Db(e.UserAgent);
            ps[29].Value = Db(e.RequestId);
            cmd.ExecuteNonQuery();
        }
    }

    private static object Db(string? s) => s is null ? DBNull.Value : s;

    private static void CopyPostgres(NpgsqlConnection c, List<Pending> batch)
    {
        using var copy = c.BeginBinaryImport($"COPY audit_events ({Columns}) FROM STDIN (FORMAT BINARY)");
        foreach (var pending in batch)
        {
            var e = pending.Event;
            copy.StartRow();
            copy.Write(e.ProjectId, NpgsqlDbType.Uuid);
            copy.Write(e.Seq, NpgsqlDbType.Bigint);
            copy.Write(e.Id, NpgsqlDbType.Uuid);
            copy.Write(e.PrevHash, NpgsqlDbType.Bytea);
            copy.Write(e.Hash, NpgsqlDbType.Bytea);
            copy.Write(e.OccurredAt, NpgsqlDbType.TimestampTz);
            copy.Write(e.EventType, NpgsqlDbType.Varchar);
            Text(copy, e.ResourceType);
            Text(copy, e.ResourceId);
            Text(copy, e.Action);
            copy.Write(e.ActorType, NpgsqlDbType.Varchar);
            Text(copy, e.ActorId);
            Text(copy, e.ActorEmail);
            Text(copy, e.ActorRole);
            Text(copy, e.SessionId);
            Text(copy, e.Details);
            Text(copy, e.BeforeState);
            Text(copy, e.AfterState);
            Text(copy, e.Prompt);
            Text(copy, e.SqlText);
            Text(copy, e.TablesAccessed);
            copy.Write(e.Success, NpgsqlDbType.Boolean);
            Text(copy, e.ErrorMessage);
            Int(copy, e.DurationMs);
            Int(copy, e.RowsReturned);
            copy.Write(e.SecurityLevel, NpgsqlDbType.Varchar);
            Text(copy, e.DataClassifications);
            Text(copy, e.ClientIp);
            Text(copy, e.UserAgent);
            Text(copy, e.RequestId);
        }
        copy.Complete();
    }

    private static void Text(NpgsqlBinaryImporter copy, string? s)
    {
        if (s is null) copy.WriteNull();
        else copy.Write(s, NpgsqlDbType.Text);
    }

    private static void Int(NpgsqlBinaryImporter copy, long? v)
    {
        if (v is null) copy.WriteNull();
        else copy.Write(v.Value, NpgsqlDbType.Bigint);
    }

    /// <summary>Stops accepting events, writes those already accepted, and closes the connection.</summary>
    public async ValueTask DisposeAsync()
    {
        channel.Writer.TryComplete();
        await stopped.Task;
    }

    public void Dispose()
    {
        channel.Writer.TryComplete();
        stopped.Task.GetAwaiter().GetResult();
    }
}
