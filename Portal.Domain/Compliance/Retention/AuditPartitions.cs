using System.Globalization;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using NpgsqlTypes;
using Portal.Domain.Persistence;

namespace Portal.Domain.Compliance.Retention;

/// <summary>One partition of audit_events: a UTC month, or the default partition (<see cref="Month"/> null).</summary>
public sealed record AuditPartition(string Name, DateTimeOffset? Month);

/// <summary>
/// Monthly partitions of audit_events on PostgreSQL (Database/postgres/0012); every method is a no-op on SQLite.
/// <para>
/// Lifecycle of a month: <see cref="EnsureAsync"/> creates it ahead of time (at startup and before each nightly archive
/// run); the archiver empties it with one TRUNCATE, inside the transaction that records the manifests, once every row
/// in it is in an archive file (<see cref="TruncateArchivedMonthsAsync"/>); <see cref="DropEmptiedAsync"/> then detaches
/// and drops the empty table. The drop is a separate short transaction on purpose: DETACH and DROP lock the whole
/// audit_events table (and the default partition) until commit, which would stall every audit write, and so every
/// gateway call, for as long as the archiver's transaction still deletes other months' rows by seq range; TRUNCATE
/// locks only the month being emptied.
/// </para>
/// </summary>
public sealed class AuditPartitions(PortalDatabase database, TimeProvider clock, ILogger<AuditPartitions>? logger = null)
{
    /// <summary>Months before the current one that are kept created. Events are stamped with the writer's clock, so only
    /// a clock a little behind at a month boundary writes into the past; a longer window would re-create months the
    /// archive job has just dropped.</summary>
    public const int MonthsBack = 1;

    /// <summary>Months after the current one created in advance: a portal stopped for up to this long still finds its month.</summary>
    public const int MonthsAhead = 3;

    // DDL on a partitioned table queues an ACCESS EXCLUSIVE lock; while it waits, every new audit write waits behind it.
    // Better to give up and try again at the next run (the default partition keeps inserts safe meanwhile).
    private const string LockTimeout = "SET LOCAL lock_timeout = '5s'";

    private readonly ILogger log = (ILogger?)logger ?? NullLogger.Instance;

    public static string NameOf(DateTimeOffset month) => string.Create(CultureInfo.InvariantCulture, $"audit_events_{month.Year:D4}_{month.Month:D2}");

    private static DateTimeOffset MonthOf(DateTimeOffset t)
    {
        var u = t.ToUniversalTime();
        return new DateTimeOffset(u.Year, u.Month, 1, 0, 0, 0, TimeSpan.Zero);
    }

    private static string Bound(DateTimeOffset month) => month.ToString("yyyy-MM-dd' 00:00:00+00'", CultureInfo.InvariantCulture);

    private static DateTimeOffset? ParseMonth(string name) =>
        name.Length == "audit_events_0000_00".Length && name.StartsWith("audit_events_", StringComparison.Ordinal)
        && DateTime.TryParseExact(name["audit_events_".Length..], "yyyy'_'MM", CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var d)
            ? new DateTimeOffset(d.Year, d.Month, 1, 0, 0, 0, TimeSpan.Zero)
            : null;

    /// <summary>The partitions of audit_events, oldest month first, the default partition last; empty on SQLite.</summary>
    public async Task<IReadOnlyList<AuditPartition>> ListAsync(CancellationToken ct = default)
    {
        if (database.Provider != DatabaseProvider.Postgres) return [];
        await using var conn = new NpgsqlConnection(database.ConnectionString);
        await conn.OpenAsync(ct);
        return await ListAsync(conn, null, ct);
    }

    private static async Task<List<AuditPartition>> ListAsync(NpgsqlConnection conn, NpgsqlTransaction? tx, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand("""
            SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = to_regclass('audit_events')
            """, conn, tx);
        var list = new List<AuditPartition>();
        await using (var r = await cmd.ExecuteReaderAsync(ct))
            while (await r.ReadAsync(ct))
            {
                var name = r.GetString(0);
                // A partition someone added by hand under another name is listed but never created, emptied or dropped here.
                list.Add(new AuditPartition(name, r.GetBoolean(1) ? null : ParseMonth(name)));
            }
        return list.OrderBy(p => p.Month is null).ThenBy(p => p.Month).ThenBy(p => p.Name, StringComparer.Ordinal).ToList();
    }

    /// <summary>
    /// Creates the monthly partitions from <see cref="MonthsBack"/> months ago to <see cref="MonthsAhead"/> months ahead
    /// that do not exist yet. A month whose events already sit in the default partition is skipped (PostgreSQL refuses to
    /// create a partition that would strand rows of the default one); those events stay there and are archived by seq
    /// range like any other. Returns the partitions created.
    /// </summary>
    public async Task<IReadOnlyList<string>> EnsureAsync(CancellationToken ct = default)
    {
        if (database.Provider != DatabaseProvider.Postgres) return [];
        await using var conn = new NpgsqlConnection(database.ConnectionString);
        await conn.OpenAsync(ct);
        var existing = await ListAsync(conn, null, ct);
        if (existing.FirstOrDefault(p => p.Month is null) is not { } defaultPartition) return []; // not partitioned (a database before 0012)
        var have = existing.Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        var current = MonthOf(clock.GetUtcNow());
        var created = new List<string>();
        for (var i = -MonthsBack; i <= MonthsAhead; i++)
        {
            var month = current.AddMonths(i);
            var name = NameOf(month);
            if (have.Contains(name)) continue;
            await using var tx = await conn.BeginTransactionAsync(ct);
            try
            {
                await ExecAsync(conn, tx, LockTimeout, ct);
                await using (var probe = new NpgsqlCommand($"SELECT EXISTS (SELECT 1 FROM {defaultPartition.Name} WHERE occurred_at >= @from AND occurred_at < @to)", conn, tx))
                {
                    probe.Parameters.AddWithValue("from", NpgsqlDbType.TimestampTz, month);
                    probe.Parameters.AddWithValue("to", NpgsqlDbType.TimestampTz, month.AddMonths(1));
                    if ((bool)(await probe.ExecuteScalarAsync(ct))!)
                    {
                        log.LogWarning("Audit partition {Partition} not created: events of that month are already in {Default}; they stay there and are archived by seq range", name, defaultPartition.Name);
                        await tx.RollbackAsync(ct);
                        continue;
                    }
                }
                await ExecAsync(conn, tx, $"CREATE TABLE {name} PARTITION OF audit_events FOR VALUES FROM ('{Bound(month)}') TO ('{Bound(month.AddMonths(1))}')", ct);
                await tx.CommitAsync(ct);
                created.Add(name);
                log.LogInformation("Created audit partition {Partition}", name);
            }
            catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.LockNotAvailable or PostgresErrorCodes.CheckViolation
                or PostgresErrorCodes.DuplicateTable or PostgresErrorCodes.InvalidObjectDefinition)
            {
                // Lock timeout, an event of that month written since the probe, another node that was quicker, or a
                // hand-made partition overlapping the month: nothing is lost, the default partition takes that month's events.
                await tx.RollbackAsync(CancellationToken.None);
                log.LogWarning("Audit partition {Partition} not created ({Reason}); will retry at the next run", name, e.MessageText);
            }
        }
        return created;
    }

    /// <summary>
    /// Detaches and drops monthly partitions that are empty and older than the window <see cref="EnsureAsync"/> keeps:
    /// the months the archive job has emptied. A partition that still holds one row is kept. Returns the dropped names.
    /// </summary>
    public async Task<IReadOnlyList<string>> DropEmptiedAsync(CancellationToken ct = default)
    {
        if (database.Provider != DatabaseProvider.Postgres) return [];
        await using var conn = new NpgsqlConnection(database.ConnectionString);
        await conn.OpenAsync(ct);
        var oldestKept = MonthOf(clock.GetUtcNow()).AddMonths(-MonthsBack);
        var dropped = new List<string>();
        foreach (var p in await ListAsync(conn, null, ct))
        {
            if (p.Month is not { } month || month >= oldestKept) continue;
            // Cheap look without a lock first: most old months that still have rows are skipped here.
            if (await HasRowsAsync(conn, null, p.Name, ct)) continue;
            await using var tx = await conn.BeginTransactionAsync(ct);
            try
            {
                await ExecAsync(conn, tx, LockTimeout, ct);
                await ExecAsync(conn, tx, $"ALTER TABLE audit_events DETACH PARTITION {p.Name}", ct);
                // DETACH holds the partition exclusively: nothing can be written into it between this look and the drop.
                if (await HasRowsAsync(conn, tx, p.Name, ct))
                {
                    await tx.RollbackAsync(ct);
                    continue;
                }
                await ExecAsync(conn, tx, $"DROP TABLE {p.Name}", ct);
                await tx.CommitAsync(ct);
                dropped.Add(p.Name);
                log.LogInformation("Dropped emptied audit partition {Partition}", p.Name);
            }
            catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.LockNotAvailable or PostgresErrorCodes.DeadlockDetected)
            {
                await tx.RollbackAsync(CancellationToken.None);
                log.LogWarning("Audit partition {Partition} not dropped ({Reason}); it is empty and will be dropped at the next run", p.Name, e.MessageText);
            }
        }
        return dropped;
    }

    private static async Task<bool> HasRowsAsync(NpgsqlConnection conn, NpgsqlTransaction? tx, string table, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand($"SELECT EXISTS (SELECT 1 FROM {table})", conn, tx);
        return (bool)(await cmd.ExecuteScalarAsync(ct))!;
    }

    /// <summary>
    /// Called by <see cref="AuditArchiver"/> inside the transaction that records <paramref name="manifests"/> and before
    /// it deletes <paramref name="archivedSeqs"/> by range: empties (TRUNCATE) each month partition that holds only events
    /// of this run's archive files, and returns how many events that removed, so the archiver's own count check covers
    /// them. "Only archived events" is decided under a SHARE lock on the partition (no insert, update or delete can slip
    /// in; reads go on): the partition's row count must equal the number of its rows that are this project's archived
    /// seqs. A month with one event of another project, of a class not yet expired, or not in this run stays and loses
    /// its archived rows by range as before; so does a month that has not ended yet, and the default partition.
    /// SQLite: 0, nothing done.
    /// </summary>
    public static async Task<long> TruncateArchivedMonthsAsync(PortalDbContext db, Guid projectId, IReadOnlyCollection<AuditArchive> manifests,
        IReadOnlyList<long> archivedSeqs, ILogger? log = null, CancellationToken ct = default)
    {
        if (db.IsSqlite || archivedSeqs.Count == 0 || db.Database.CurrentTransaction is null) return 0;
        var conn = (NpgsqlConnection)db.Database.GetDbConnection();
        var tx = (NpgsqlTransaction)db.Database.CurrentTransaction.GetDbTransaction();
        // Archive files are per UTC day, so their days name every month this run archived from. A month that has not
        // ended is never emptied: it still takes new events, and even a short lock on it would hold up every audit write.
        var months = manifests.Select(m => NameOf(MonthOf(m.Day))).ToHashSet(StringComparer.Ordinal);
        var runStarted = manifests.Min(m => m.CreatedAt);
        var candidates = (await ListAsync(conn, tx, ct))
            .Where(p => p.Month is { } month && month.AddMonths(1) <= runStarted && months.Contains(p.Name)).ToList();
        if (candidates.Count == 0) return 0;

        var (firsts, lasts) = Runs(archivedSeqs);
        long removed = 0;
        foreach (var p in candidates)
        {
            // Counted once without a lock, so a month that keeps events is passed over without blocking anyone, then
            // again under a SHARE lock (no insert, update or delete can slip in; reads go on) before it is emptied.
            if (await ArchivedWholeAsync(conn, tx, p.Name, projectId, firsts, lasts, archivedSeqs.Count, ct) == 0) continue;
            await ExecAsync(conn, tx, $"LOCK TABLE {p.Name} IN SHARE MODE", ct);
            var total = await ArchivedWholeAsync(conn, tx, p.Name, projectId, firsts, lasts, archivedSeqs.Count, ct);
            if (total == 0) continue;
            await ExecAsync(conn, tx, $"TRUNCATE {p.Name}", ct);
            removed += total;
            log?.LogInformation("Audit partition {Partition} archived whole ({Count} events): emptied, to be dropped after the archive run", p.Name, total);
        }
        return removed;
    }

    /// <summary>The partition's row count when every row in it is one of this project's archived seqs; otherwise (or when empty) 0.</summary>
    private static async Task<long> ArchivedWholeAsync(NpgsqlConnection conn, NpgsqlTransaction tx, string table, Guid projectId, long[] firsts, long[] lasts,
        int archivedCount, CancellationToken ct)
    {
        long total;
        await using (var count = new NpgsqlCommand($"SELECT count(*) FROM {table}", conn, tx))
            total = (long)(await count.ExecuteScalarAsync(ct))!;
        if (total == 0 || total > archivedCount) return 0;
        // Runs are disjoint, so each row matches at most one and the join counts rows, not matches.
        await using var mine = new NpgsqlCommand(
            $"SELECT count(*) FROM {table} e JOIN unnest(@firsts, @lasts) AS r(first_seq, last_seq) ON e.seq BETWEEN r.first_seq AND r.last_seq WHERE e.project_id = @p",
            conn, tx);
        mine.Parameters.AddWithValue("firsts", NpgsqlDbType.Array | NpgsqlDbType.Bigint, firsts);
        mine.Parameters.AddWithValue("lasts", NpgsqlDbType.Array | NpgsqlDbType.Bigint, lasts);
        mine.Parameters.AddWithValue("p", NpgsqlDbType.Uuid, projectId);
        return (long)(await mine.ExecuteScalarAsync(ct))! == total ? total : 0;
    }

    private static (long[] Firsts, long[] Lasts) Runs(IReadOnlyList<long> sorted)
    {
        var firsts = new List<long>();
        var lasts = new List<long>();
        long first = sorted[0], last = sorted[0];
        for (var i = 1; i < sorted.Count; i++)
        {
            if (sorted[i] == last + 1) { last = sorted[i]; continue; }
            firsts.Add(first); lasts.Add(last);
            first = last = sorted[i];
        }
        firsts.Add(first); lasts.Add(last);
        return (firsts.ToArray(), lasts.ToArray());
    }

    private static async Task ExecAsync(NpgsqlConnection conn, NpgsqlTransaction? tx, string sql, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, conn, tx);
        await cmd.ExecuteNonQueryAsync(ct);
    }
}
