using System.Data.Common;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using Npgsql;
using NpgsqlTypes;
using Portal.Domain.Persistence;

namespace Portal.Domain.Integrations;

/// <summary>
/// Set-based writes of webhook deliveries inside the caller's transaction. Staging 500 deliveries through EF's change
/// tracker took most of a dispatcher run; here PostgreSQL gets one INSERT/UPDATE over unnest()ed arrays and SQLite one
/// prepared statement re-bound per row (SQLite executes a prepared statement in microseconds, and the transaction holds
/// the write lock anyway).
/// </summary>
internal static class DeliveryRows
{
    private const string InsertColumns = "id, project_id, endpoint_id, outbox_message_id, event_type, payload, status, attempts, next_attempt_at, created_at";

    /// <summary>Inserts new deliveries; <paramref name="db"/> must have a current transaction.</summary>
    public static async Task InsertAsync(PortalDbContext db, IReadOnlyList<WebhookDelivery> rows, CancellationToken ct)
    {
        if (rows.Count == 0) return;
        var (conn, tx) = Current(db);
        if (db.IsSqlite)
        {
            await using var cmd = SqlValues.PreparedSqlite(db, conn, tx,
                $"INSERT INTO webhook_deliveries ({InsertColumns}) VALUES (@id, @p, @e, @o, @t, @body, @s, @a, @next, @c)",
                ["@id", "@p", "@e", "@o", "@t", "@body", "@s", "@a", "@next", "@c"], out var ps);
            foreach (var d in rows)
            {
                ps[0].Value = SqlValues.Sqlite(d.Id);
                ps[1].Value = SqlValues.Sqlite(d.ProjectId);
                ps[2].Value = SqlValues.Sqlite(d.EndpointId);
                ps[3].Value = SqlValues.Sqlite(d.OutboxMessageId);
                ps[4].Value = d.EventType;
                ps[5].Value = d.Payload;
                ps[6].Value = d.Status;
                ps[7].Value = (long)d.Attempts;
                ps[8].Value = SqlValues.Sqlite(d.NextAttemptAt);
                ps[9].Value = SqlValues.Sqlite(d.CreatedAt);
                await cmd.ExecuteNonQueryAsync(ct);
            }
            return;
        }
        await using (var pg = new NpgsqlCommand(
            $"INSERT INTO webhook_deliveries ({InsertColumns}) SELECT * FROM unnest(@id, @p, @e, @o, @t, @body, @s, @a, @next, @c)",
            (NpgsqlConnection)conn, (NpgsqlTransaction)tx))
        {
            pg.Parameters.Add(Column("id", NpgsqlDbType.Uuid, rows, d => d.Id));
            pg.Parameters.Add(Column("p", NpgsqlDbType.Uuid, rows, d => d.ProjectId));
            pg.Parameters.Add(Column("e", NpgsqlDbType.Uuid, rows, d => d.EndpointId));
            pg.Parameters.Add(Column("o", NpgsqlDbType.Uuid, rows, d => d.OutboxMessageId));
            pg.Parameters.Add(Column("t", NpgsqlDbType.Varchar, rows, d => d.EventType));
            pg.Parameters.Add(Column("body", NpgsqlDbType.Text, rows, d => d.Payload));
            pg.Parameters.Add(Column("s", NpgsqlDbType.Varchar, rows, d => d.Status));
            pg.Parameters.Add(Column("a", NpgsqlDbType.Integer, rows, d => d.Attempts));
            pg.Parameters.Add(Column("next", NpgsqlDbType.TimestampTz, rows, d => d.NextAttemptAt));
            pg.Parameters.Add(Column("c", NpgsqlDbType.TimestampTz, rows, d => d.CreatedAt));
            var n = await pg.ExecuteNonQueryAsync(ct);
            if (n != rows.Count) throw new InvalidOperationException($"Inserted {n} of {rows.Count} webhook deliveries.");
        }
    }

    /// <summary>The fields of an outbox message that staging needs.</summary>
    public sealed record PendingMessage(Guid Id, Guid ProjectId, string EventType, string PayloadJson, DateTimeOffset CreatedAt);

    /// <summary>
    /// The oldest unprocessed outbox messages, locked for this transaction: FOR UPDATE SKIP LOCKED on PostgreSQL (other
    /// workers take the next ones); on SQLite the transaction already holds the write lock (BEGIN IMMEDIATE).
    /// </summary>
    public static async Task<List<PendingMessage>> ClaimOutboxAsync(PortalDbContext db, int batchSize, CancellationToken ct)
    {
        var (conn, tx) = Current(db);
        await using var cmd = conn.CreateCommand();
        cmd.Transaction = tx;
        var list = new List<PendingMessage>(batchSize);
        cmd.CommandText = "SELECT id, project_id, event_type, payload_json, created_at FROM outbox_messages WHERE processed_at IS NULL ORDER BY id LIMIT @n" +
            (db.IsSqlite ? "" : " FOR UPDATE SKIP LOCKED");
        cmd.Parameters.Add(SqlValues.P(db, "@n", batchSize));
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
            list.Add(db.IsSqlite
                ? new PendingMessage(Guid.Parse(r.GetString(0)), Guid.Parse(r.GetString(1)), r.GetString(2), r.GetString(3), new DateTimeOffset(r.GetInt64(4), TimeSpan.Zero))
                : new PendingMessage(r.GetGuid(0), r.GetGuid(1), r.GetString(2), r.GetString(3), r.GetFieldValue<DateTimeOffset>(4)));
        return list;
    }

    /// <summary>Marks claimed messages processed; returns how many were still unprocessed.</summary>
    public static async Task<int> MarkProcessedAsync(PortalDbContext db, IReadOnlyList<PendingMessage> messages, DateTimeOffset now, CancellationToken ct)
    {
        var (conn, tx) = Current(db);
        if (db.IsSqlite)
        {
            await using var cmd = SqlValues.PreparedSqlite(db, conn, tx,
                "UPDATE outbox_messages SET processed_at = @now WHERE id = @id AND processed_at IS NULL", ["@now", "@id"], out var ps);
            ps[0].Value = SqlValues.Sqlite(now);
            var marked = 0;
            foreach (var m in messages)
            {
                ps[1].Value = SqlValues.Sqlite(m.Id);
                marked += await cmd.ExecuteNonQueryAsync(ct);
            }
            return marked;
        }
        await using var pg = new NpgsqlCommand("UPDATE outbox_messages SET processed_at = @now WHERE id = ANY(@ids) AND processed_at IS NULL", (NpgsqlConnection)conn, (NpgsqlTransaction)tx);
        pg.Parameters.Add(Column("ids", NpgsqlDbType.Uuid, messages, m => m.Id));
        pg.Parameters.Add(new NpgsqlParameter("now", NpgsqlDbType.TimestampTz) { Value = now });
        return await pg.ExecuteNonQueryAsync(ct);
    }

    private static (DbConnection, DbTransaction) Current(PortalDbContext db) =>
        (db.Database.GetDbConnection(), db.Database.CurrentTransaction?.GetDbTransaction() ?? throw new InvalidOperationException("Deliveries are staged and recorded inside the caller's transaction."));

    /// <summary>The outcome of one attempt, recorded only where the worker still holds the lease.</summary>
    public readonly record struct Attempt(Guid Id, string Status, int Attempts, int? ResponseCode, string? ResponseExcerpt,
        DateTimeOffset NextAttemptAt, DateTimeOffset? DeliveredAt);

    /// <summary>
    /// Records attempts, clearing the lease, where <c>lease_owner</c> is still <paramref name="token"/>: a row whose
    /// lease ran out and was claimed by another worker keeps that worker's record. Returns how many rows were recorded.
    /// </summary>
    public static async Task<int> RecordAsync(PortalDbContext db, string token, DateTimeOffset attemptedAt, IReadOnlyList<Attempt> attempts, CancellationToken ct)
    {
        if (attempts.Count == 0) return 0;
        var (conn, tx) = Current(db);
        if (db.IsSqlite)
        {
            await using var cmd = SqlValues.PreparedSqlite(db, conn, tx,
                "UPDATE webhook_deliveries SET status = @s, attempts = @a, last_attempt_at = @at, response_code = @code, response_excerpt = @x, " +
                "next_attempt_at = @next, delivered_at = @done, lease_owner = NULL, lease_until = NULL WHERE id = @id AND lease_owner = @token",
                ["@s", "@a", "@at", "@code", "@x", "@next", "@done", "@id", "@token"], out var ps);
            ps[2].Value = SqlValues.Sqlite(attemptedAt);
            ps[8].Value = token;
            var recorded = 0;
            foreach (var a in attempts)
            {
                ps[0].Value = a.Status;
                ps[1].Value = (long)a.Attempts;
                ps[3].Value = a.ResponseCode is { } code ? (long)code : DBNull.Value;
                ps[4].Value = SqlValues.Sqlite(a.ResponseExcerpt);
                ps[5].Value = SqlValues.Sqlite(a.NextAttemptAt);
                ps[6].Value = SqlValues.Sqlite(a.DeliveredAt);
                ps[7].Value = SqlValues.Sqlite(a.Id);
                recorded += await cmd.ExecuteNonQueryAsync(ct);
            }
            return recorded;
        }
        await using var pg = new NpgsqlCommand(
            "UPDATE webhook_deliveries d SET status = v.s, attempts = v.a, last_attempt_at = @at, response_code = v.code, response_excerpt = v.x, " +
            "next_attempt_at = v.next, delivered_at = v.done, lease_owner = NULL, lease_until = NULL " +
            "FROM unnest(@id, @s, @a, @code, @x, @next, @done) AS v(id, s, a, code, x, next, done) WHERE d.id = v.id AND d.lease_owner = @token",
            (NpgsqlConnection)conn, (NpgsqlTransaction)tx);
        pg.Parameters.Add(Column("id", NpgsqlDbType.Uuid, attempts, a => a.Id));
        pg.Parameters.Add(Column("s", NpgsqlDbType.Varchar, attempts, a => a.Status));
        pg.Parameters.Add(Column("a", NpgsqlDbType.Integer, attempts, a => a.Attempts));
        pg.Parameters.Add(Column("code", NpgsqlDbType.Integer, attempts, a => a.ResponseCode));
        pg.Parameters.Add(Column("x", NpgsqlDbType.Varchar, attempts, a => a.ResponseExcerpt));
        pg.Parameters.Add(Column("next", NpgsqlDbType.TimestampTz, attempts, a => a.NextAttemptAt));
        pg.Parameters.Add(Column("done", NpgsqlDbType.TimestampTz, attempts, a => a.DeliveredAt));
        pg.Parameters.Add(new NpgsqlParameter("at", NpgsqlDbType.TimestampTz) { Value = attemptedAt });
        pg.Parameters.Add(new NpgsqlParameter("token", NpgsqlDbType.Varchar) { Value = token });
        return await pg.ExecuteNonQueryAsync(ct);
    }

    private static NpgsqlParameter Column<TRow, T>(string name, NpgsqlDbType type, IReadOnlyList<TRow> rows, Func<TRow, T> value)
    {
        var values = new T[rows.Count];
        for (var i = 0; i < values.Length; i++) values[i] = value(rows[i]);
        return new NpgsqlParameter<T[]>(name, NpgsqlDbType.Array | type) { TypedValue = values };
    }
}
