using Microsoft.EntityFrameworkCore;
using Portal.Domain.Persistence;

namespace Portal.Domain.Compliance.Retention;

/// <summary>
/// What compliance reports need to know about retention: up to when the trail has been moved to archive files (so a
/// report over an archived period says so instead of silently counting less), and the policies in force.
/// </summary>
public sealed class RetentionHorizon(IDbContextFactory<PortalDbContext> dbFactory, RetentionService policies) : IRetentionHorizon
{
    public async Task<DateTimeOffset?> ArchivedBeforeAsync(Guid projectId, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        // Archive files hold whole UTC days; events of the newest archived day and earlier may have left the database.
        var days = await db.Set<AuditArchive>().AsNoTracking().Where(a => a.ProjectId == projectId).Select(a => a.Day).ToListAsync(ct);
        return days.Count == 0 ? null : days.Max().AddDays(1);
    }

    public async Task<IReadOnlyList<string>> DescribeAsync(Guid projectId, CancellationToken ct)
    {
        var rows = await policies.GetAsync(projectId, ct);
        return rows.Select(r => $"{r.Label}: kept {r.Days:N0} days{Years(r.Days)} in the live trail, then archived{(r.IsDefault ? " (default)" : "")}.").ToList();
    }

    private static string Years(int days) => days < 365 ? "" : days % 365 <= 2 ? $" ({days / 365} year{(days / 365 == 1 ? "" : "s")})" : $" (about {days / 365.25:0.#} years)";
}
