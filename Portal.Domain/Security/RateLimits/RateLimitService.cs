using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Portal.Domain.Audit;
using Portal.Domain.Persistence;
using Portal.Domain.Tenancy;

namespace Portal.Domain.Security.RateLimits;

public sealed record RateLimitInput(string? Scope, string? Subject, int? MaxRequests, long? MaxRows, int WindowSeconds, bool Enabled = true);

/// <summary>
/// Creates, changes and deletes a project's rate limits. Each change is recorded in rate_limit_changes and tells
/// the <see cref="RateLimiter"/> on this node to reload the project's limits at once (other nodes within
/// <see cref="RateLimiter.CacheLifetime"/>), then is appended to the audit trail (see <see cref="PortalAudit"/>).
/// </summary>
public sealed class RateLimitService(IDbContextFactory<PortalDbContext> dbFactory, RateLimiter limiter, TimeProvider clock, PortalAudit audit)
{
    public const int MaxWindowSeconds = 86_400;

    public async Task<Page<RateLimit>> ListAsync(Guid projectId, int skip, int take, CancellationToken ct = default)
    {
        take = Math.Clamp(take, 1, 200);
        skip = Math.Max(0, skip);
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var q = db.RateLimits.AsNoTracking().Where(r => r.ProjectId == projectId);
        var total = await q.CountAsync(ct);
        var items = await q.OrderBy(r => r.Scope).ThenBy(r => r.Subject).ThenBy(r => r.WindowSeconds).ThenBy(r => r.Id).Skip(skip).Take(take).ToListAsync(ct);
        return new Page<RateLimit>(items, total, skip, take);
    }

    public async Task<RateLimit> GetAsync(Guid projectId, Guid id, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        return await db.RateLimits.AsNoTracking().FirstOrDefaultAsync(r => r.Id == id && r.ProjectId == projectId, ct) ?? throw DomainException.NotFound("Rate limit");
    }

    public async Task<RateLimit> CreateAsync(Guid projectId, RateLimitInput input, Guid actor, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        if (!await db.Projects.AnyAsync(p => p.Id == projectId, ct)) throw DomainException.NotFound("Project");
        var (scope, subject) = await ValidateAsync(db, projectId, input, ct);
        var now = clock.GetUtcNow();
        var limit = new RateLimit
        {
            ProjectId = projectId, Scope = scope, Subject = subject, MaxRequests = input.MaxRequests, MaxRows = input.MaxRows,
            WindowSeconds = input.WindowSeconds, Enabled = input.Enabled, CreatedBy = actor, CreatedAt = now, UpdatedBy = actor, UpdatedAt = now,
        };
        db.RateLimits.Add(limit);
        db.RateLimitChanges.Add(new RateLimitChange { ProjectId = projectId, RateLimitId = limit.Id, Action = "created", After = Describe(limit), ChangedBy = actor, ChangedAt = now });
        await db.SaveChangesAsync(ct);
        limiter.Invalidate(projectId);
        await RecordAsync(db, projectId, limit.Id, "created", actor, null, Describe(limit), AuditSecurityLevel.Normal, now, ct);
        return limit;
    }

    public async Task<RateLimit> UpdateAsync(Guid projectId, Guid id, RateLimitInput input, Guid actor, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var limit = await db.RateLimits.FirstOrDefaultAsync(r => r.Id == id && r.ProjectId == projectId, ct) ?? throw DomainException.NotFound("Rate limit");
        var (scope, subject) = await ValidateAsync(db, projectId, input, ct);
        var before = Describe(limit);
        var wasEnabled = limit.Enabled;
        var now = clock.GetUtcNow();
        limit.Scope = scope;
        limit.Subject = subject;
        limit.MaxRequests = input.MaxRequests;
        limit.MaxRows = input.MaxRows;
        limit.WindowSeconds = input.WindowSeconds;
        limit.Enabled = input.Enabled;
        limit.UpdatedBy = actor;
        limit.UpdatedAt = now;
        db.RateLimitChanges.Add(new RateLimitChange { ProjectId = projectId, RateLimitId = id, Action = "updated", Before = before, After = Describe(limit), ChangedBy = actor, ChangedAt = now });
        await db.SaveChangesAsync(ct);
        limiter.Invalidate(projectId);
        // Switching a limit off removes a protection against runaway or abusive use.
        await RecordAsync(db, projectId, id, "updated", actor, before, Describe(limit),
            wasEnabled && !limit.Enabled ? AuditSecurityLevel.Warning : AuditSecurityLevel.Normal, now, ct);
        return limit;
    }

    public async Task DeleteAsync(Guid projectId, Guid id, Guid actor, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var limit = await db.RateLimits.FirstOrDefaultAsync(r => r.Id == id && r.ProjectId == projectId, ct) ?? throw DomainException.NotFound("Rate limit");
        db.RateLimits.Remove(limit);
        var now = clock.GetUtcNow();
        db.RateLimitChanges.Add(new RateLimitChange { ProjectId = projectId, RateLimitId = id, Action = "deleted", Before = Describe(limit), ChangedBy = actor, ChangedAt = now });
        await db.SaveChangesAsync(ct);
        limiter.Invalidate(projectId);
        await RecordAsync(db, projectId, id, "deleted", actor, Describe(limit), null,
            limit.Enabled ? AuditSecurityLevel.Warning : AuditSecurityLevel.Normal, now, ct);
    }

    private async Task RecordAsync(PortalDbContext db, Guid projectId, Guid id, string action, Guid actor, string? before, string? after,
        AuditSecurityLevel level, DateTimeOffset now, CancellationToken ct) =>
        await audit.RecordAsync(new AuditEventDraft
        {
            ProjectId = projectId, EventType = "rate_limit." + action, Actor = await PortalAudit.UserAsync(db, projectId, actor, ct),
            ResourceType = "rate_limit", ResourceId = id.ToString(), Action = action switch { "created" => "create", "updated" => "update", _ => "delete" },
            BeforeState = before, AfterState = after, SecurityLevel = level, OccurredAt = now,
        }, ct);

    private static async Task<(string Scope, string? Subject)> ValidateAsync(PortalDbContext db, Guid projectId, RateLimitInput input, CancellationToken ct)
    {
        var scope = input.Scope?.Trim().ToLowerInvariant();
        if (scope is null || !RateLimitScopes.All.Contains(scope))
            throw DomainException.Invalid("scope", $"Scope must be one of {string.Join(", ", RateLimitScopes.All)}.");
        var raw = string.IsNullOrWhiteSpace(input.Subject) ? null : input.Subject.Trim();
        string? subject = null;
        if (raw is not null)
        {
            switch (scope)
            {
                case RateLimitScopes.Global:
                    throw DomainException.Invalid("subject", "A global limit applies to the whole project and has no subject.");
                case RateLimitScopes.Key:
                    if (!Guid.TryParse(raw, out var keyId) || !await db.ApiKeys.AnyAsync(k => k.Id == keyId && k.ProjectId == projectId, ct))
                        throw DomainException.Invalid("subject", "No API key with this id exists in this project.");
                    subject = keyId.ToString("D");
                    break;
                case RateLimitScopes.User:
                    if (!Guid.TryParse(raw, out var userId) || !await db.ProjectMembers.AnyAsync(m => m.UserId == userId && m.ProjectId == projectId, ct))
                        throw DomainException.Invalid("subject", "No member with this user id exists in this project.");
                    subject = userId.ToString("D");
                    break;
                case RateLimitScopes.Role:
                    subject = raw.ToLowerInvariant();
                    if (!Roles.IsValid(subject)) throw DomainException.Invalid("subject", $"Role must be one of {string.Join(", ", Roles.All)}.");
                    break;
                default:
                    if (raw.Length > 100 || !raw.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
                        throw DomainException.Invalid("subject", "A query id has letters, digits, '-', '_' and '.', up to 100 characters.");
                    subject = raw;
                    break;
            }
        }
        if (input.MaxRequests is null && input.MaxRows is null)
            throw DomainException.Invalid("maxRequests", "Set a maximum number of requests, of rows, or both.");
        if (input.MaxRequests is < 1) throw DomainException.Invalid("maxRequests", "The maximum number of requests must be at least 1.");
        if (input.MaxRows is < 1) throw DomainException.Invalid("maxRows", "The maximum number of rows must be at least 1.");
        if (input.WindowSeconds is < 1 or > MaxWindowSeconds)
            throw DomainException.Invalid("windowSeconds", $"The window must be between 1 and {MaxWindowSeconds} seconds (one day).");
        return (scope, subject);
    }

    private static string Describe(RateLimit r) => JsonSerializer.Serialize(new
    {
        scope = r.Scope, subject = r.Subject, maxRequests = r.MaxRequests, maxRows = r.MaxRows, windowSeconds = r.WindowSeconds, enabled = r.Enabled,
    });
}
