using Microsoft.EntityFrameworkCore;
using Portal.Domain.Persistence;
using Portal.Domain.Security.ApiKeys;
using Portal.Domain.Security.RateLimits;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Security;

public class SecuritySchemaTests
{
    /// <summary>The 0003 scripts and the EF model agree on every column and its nullability, on both providers.</summary>
    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Key_and_rate_limit_tables_match_the_model(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var ctx = db.NewContext();
        var conn = ctx.Database.GetDbConnection();
        await conn.OpenAsync();
        foreach (var type in new[] { typeof(ApiKey), typeof(ApiKeyChange), typeof(RateLimit), typeof(RateLimitChange) })
        {
            var entity = ctx.Model.FindEntityType(type)!;
            var table = entity.GetTableName()!;
            var expected = entity.GetProperties().Select(p => $"{p.GetColumnName()}:{(p.IsNullable ? "null" : "not null")}").Order().ToList();
            await using var cmd = conn.CreateCommand();
            cmd.CommandText = ctx.IsSqlite
                ? $"SELECT name, CASE WHEN \"notnull\" = 1 OR pk = 1 THEN 'not null' ELSE 'null' END FROM pragma_table_info('{table}')"
                : $"SELECT column_name, CASE WHEN is_nullable = 'NO' THEN 'not null' ELSE 'null' END FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = '{table}'";
            var actual = new List<string>();
            await using (var reader = await cmd.ExecuteReaderAsync())
                while (await reader.ReadAsync()) actual.Add($"{reader.GetString(0)}:{reader.GetString(1)}");
            Assert.Equal(expected, actual.Order().ToList());
        }
    }
}
