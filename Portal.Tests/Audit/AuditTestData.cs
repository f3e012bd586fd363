using Microsoft.EntityFrameworkCore;
using Portal.Domain;
using Portal.Domain.Audit;
using Portal.Domain.Persistence;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Audit;

internal static class AuditTestData
{
    public static AuditActor Analyst { get; } = new("user", "u-42", "ana@example.com", "analyst", "sess-1", "10.0.0.7", "Mozilla/5.0 test", "req-1");

    public static AuditEventDraft Draft(Guid project, int i, string type = "query.executed") => new()
    {
        ProjectId = project,
        EventType = type,
        Actor = Analyst,
        ResourceType = "query",
        ResourceId = $"q-{i}",
        Action = "execute",
        Details = $$$"""{"params":{"limit":{{{i}}}},"response":{"rows":{{{i * 2}}}}}""",
        Prompt = "revenue by region",
        SqlText = "SELECT region, sum(amount) FROM sales GROUP BY region",
        TablesAccessed = ["sales"],
        DurationMs = i,
        RowsReturned = i * 2,
        DataClassifications = ["internal"],
    };

    public static PortalDatabase Database(TestDatabase db) => new(db.Provider, db.ConnectionString);

    public static AuditWriter Writer(TestDatabase db, TimeProvider? clock = null, AuditWriterOptions? options = null) =>
        new(Database(db), clock ?? TimeProvider.System, options: options);

    public static Task<AuditVerification> VerifyAsync(TestDatabase db, Guid project) => new AuditVerifier(Database(db)).VerifyAsync(project);

    public static async Task ExecAsync(TestDatabase db, string sql)
    {
        await using var ctx = db.NewContext();
        await ctx.Database.ExecuteSqlRawAsync(sql);
    }

    public static async Task<List<AuditEvent>> EventsAsync(TestDatabase db, Guid project)
    {
        await using var ctx = db.NewContext();
        return await ctx.AuditEvents.AsNoTracking().Where(e => e.ProjectId == project).OrderBy(e => e.Seq).ToListAsync();
    }
}
