using System.Text;
using Microsoft.EntityFrameworkCore;

namespace Portal.Domain.Persistence;

/// <summary>
/// snake_case names for tables, columns, keys and indexes so the hand-written SQL in Database/ reads naturally
/// on PostgreSQL. Written by hand: EFCore.NamingConventions is not on our feed.
/// </summary>
public static class SnakeCase
{
    public static string From(string name)
    {
        if (string.IsNullOrEmpty(name)) return name;
        var sb = new StringBuilder(name.Length + 8);
        for (var i = 0; i < name.Length; i++)
        {
            var c = name[i];
            if (char.IsUpper(c))
            {
                var prevLower = i > 0 && (char.IsLower(name[i - 1]) || char.IsDigit(name[i - 1]));
                var nextLower = i > 0 && i + 1 < name.Length && char.IsLower(name[i + 1]) && char.IsUpper(name[i - 1]);
                if (prevLower || nextLower) sb.Append('_');
                sb.Append(char.ToLowerInvariant(c));
            }
            else sb.Append(c);
        }
        return sb.ToString();
    }

    public static void Apply(ModelBuilder model)
    {
        foreach (var entity in model.Model.GetEntityTypes())
        {
            if (entity.GetTableName() is { } table && !entity.IsOwned())
                entity.SetTableName(From(table.StartsWith("AspNet", StringComparison.Ordinal) ? "identity_" + table[6..] : table));
            foreach (var p in entity.GetProperties()) p.SetColumnName(From(p.Name));
            foreach (var k in entity.GetKeys()) k.SetName(From(k.GetName() ?? "pk_" + entity.GetTableName()));
            foreach (var fk in entity.GetForeignKeys()) fk.SetConstraintName(From(fk.GetConstraintName() ?? "fk").Replace("asp_net_", "identity_"));
            foreach (var ix in entity.GetIndexes()) ix.SetDatabaseName(From(ix.GetDatabaseName() ?? "ix"));
        }
    }
}
