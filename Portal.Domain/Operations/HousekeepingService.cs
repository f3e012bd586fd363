using Microsoft.EntityFrameworkCore;
using Portal.Domain.Persistence;

namespace Portal.Domain.Operations;

public sealed record HousekeepingResult(int SetupTokensDeleted, int JobRunsDeleted);

/// <summary>Removes rows that no longer serve anyone: dead setup tokens and old job-run history.</summary>
public sealed class HousekeepingService(IDbContextFactory<PortalDbContext> dbFactory, TimeProvider clock)
{
    /// <summary>A used or expired setup token is kept this long so an admin looking into a failed setup still finds it.</summary>
    public static readonly TimeSpan SetupTokenGrace = TimeSpan.FromDays(1);

    public static readonly TimeSpan JobRunRetention = TimeSpan.FromDays(30);

    public async Task<HousekeepingResult> PurgeAsync(CancellationToken ct = default)
    {
        var now = clock.GetUtcNow();
        var tokenCutoff = now - SetupTokenGrace;
        var runCutoff = now - JobRunRetention;
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var tokens = await db.SetupTokens
            .Where(t => t.ExpiresAt <= tokenCutoff || (t.UsedAt != null && t.UsedAt <= tokenCutoff))
            .ExecuteDeleteAsync(ct);
        var runs = await db.JobRuns.Where(r => r.StartedAt <= runCutoff).ExecuteDeleteAsync(ct);
        await tx.CommitAsync(ct);
        return new HousekeepingResult(tokens, runs);
    }
}
