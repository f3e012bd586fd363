using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;
using Portal.Domain.Persistence;

namespace Portal.Domain.Audit;

/// <summary>
/// Raw ADO.NET access to audit rows for the verifier and the exporter: they stream millions of rows, which EF's
/// change-tracking-free queries still do several times slower, and they need the hashes as raw bytes.
/// </summary>
internal static class AuditReader
{
    public static DbConnection Open(PortalDatabase db)
    {
        DbConnection c = db.Provider == DatabaseProvider.Sqlite ? new SqliteConnection(db.ConnectionString) : new NpgsqlConnection(db.ConnectionString);
        c.Open();
        return c;
    }

    public static object Id(PortalDatabase db, Guid id) => db.Provider == DatabaseProvider.Sqlite ? id.ToString().ToUpperInvariant() : id;

    public static object Time(PortalDatabase db, DateTimeOffset t) => db.Provider == DatabaseProvider.Sqlite ? t.UtcTicks : t.ToUniversalTime();

    public static void Add(DbCommand cmd, string name, object value)
    {
        var p = cmd.CreateParameter();
        p.ParameterName = name;
        p.Value = value;
        cmd.Parameters.Add(p);
    }

    /// <summary>Reads the row at the reader's position (columns in <see cref="AuditWriter.Columns"/> order) into <paramref name="e"/>.</summary>
    public static void Fill(DbDataReader r, bool sqlite, AuditEvent e)
    {
        if (sqlite)
        {
            e.ProjectId = Guid.Parse(r.GetString(0));
            e.Id = Guid.Parse(r.GetString(2));
            e.OccurredAt = new DateTimeOffset(r.GetInt64(5), TimeSpan.Zero);
            e.Success = r.GetInt64(21) != 0;
        }
        else
        {
            e.ProjectId = r.GetGuid(0);
            e.Id = r.GetGuid(2);
            e.OccurredAt = r.GetFieldValue<DateTimeOffset>(5);
            e.Success = r.GetBoolean(21);
        }
        e.Seq = r.GetInt64(1);
        e.PrevHash = r.IsDBNull(3) ? [] : (byte[])r.GetValue(3);
        e.Hash = r.IsDBNull(4) ? [] : (byte[])r.GetValue(4);
        e.EventType = r.GetString(6);
        e.ResourceType = Str(r, 7);
        e.ResourceId = Str(r, 8);
        e.Action = Str(r, 9);
        e.ActorType = r.GetString(10);
        e.ActorId = Str(r, 11);
        e.ActorEmail = Str(r, 12);
        e.ActorRole = Str(r, 13);
        e.SessionId = Str(r, 14);
        e.Details = Str(r, 15);
        e.BeforeState = Str(r, 16);
        e.AfterState = Str(r, 17);
        e.Prompt = Str(r, 18);
        e.SqlText = Str(r, 19);
        e.TablesAccessed = Str(r, 20);
        e.ErrorMessage = Str(r, 22);
        e.DurationMs = r.IsDBNull(23) ? null : r.GetInt64(23);
        e.RowsReturned = r.IsDBNull(24) ? null : r.GetInt64(24);
        e.SecurityLevel = r.GetString(25);
        e.DataClassifications = Str(r, 26);
        e.ClientIp = Str(r, 27);
        e.UserAgent = Str(r, 28);
        e.RequestId = Str(r, 29);
    }

    private static string? Str(DbDataReader r, int i) => r.IsDBNull(i) ? null : r.GetString(i);
}
