using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;
using Portal.Domain.Persistence;

namespace Portal.Domain.Audit;

/// <summary>
/// Small ADO.NET helpers for the audit services' non-EF queries (the bulk row streams are in <see cref="AuditRows"/>).
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

}
