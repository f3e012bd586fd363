using Microsoft.EntityFrameworkCore;
using Portal.Domain.Persistence;
using Portal.Domain.Tenancy;

namespace Portal.Domain.Integrations;

/// <summary>An in-portal notification for one user (the bell in the header).</summary>
public sealed class Notification
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    public Guid UserId { get; set; }
    /// <summary>What it is about, e.g. <c>suggestion.approved</c>, <c>alert.created</c>, <c>report.ready</c>.</summary>
    public required string Kind { get; set; }
    public required string Title { get; set; }
    public string? Body { get; set; }
    /// <summary>A portal-relative link such as <c>/p/{projectId}/alerts/{id}</c>.</summary>
    public string? Link { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? ReadAt { get; set; }
}

public sealed record NotificationRow(Guid Id, Guid ProjectId, string ProjectName, string Kind, string Title, string? Body, string? Link, DateTimeOffset CreatedAt, bool Read);

public sealed record NotificationPage(IReadOnlyList<NotificationRow> Items, int Total, int Unread);

/// <summary>
/// In-portal notifications. The Add* methods only stage rows on the caller's context so they commit (or not) with the
/// change that caused them; reading and marking read are the service's own short transactions, scoped to the user.
/// </summary>
public sealed class NotificationService(IDbContextFactory<PortalDbContext> dbFactory, TimeProvider clock)
{
    public const int MaxTitle = 300;
    public const int MaxBody = 2000;

    public static Notification AddForUser(PortalDbContext db, Guid projectId, Guid userId, string kind, string title, string? body, string? link, DateTimeOffset now)
    {
        var n = new Notification
        {
            ProjectId = projectId, UserId = userId, Kind = kind, Title = Cut(title, MaxTitle), Body = body is null ? null : Cut(body, MaxBody),
            Link = link, CreatedAt = now,
        };
        db.Add(n);
        return n;
    }

    /// <summary>Stages one notification for every active (not suspended) member whose role holds <paramref name="permission"/>.</summary>
    public static async Task<int> AddForPermissionAsync(PortalDbContext db, Guid projectId, string permission, string kind, string title, string? body, string? link,
        DateTimeOffset now, CancellationToken ct = default, Guid? except = null)
    {
        var roles = Roles.All.Where(r => Permissions.RoleHas(r, permission)).ToList();
        var users = await db.ProjectMembers.AsNoTracking()
            .Where(m => m.ProjectId == projectId && !m.Suspended && roles.Contains(m.Role))
            .Select(m => m.UserId).ToListAsync(ct);
        var count = 0;
        foreach (var user in users.Where(u => u != except))
        {
            AddForUser(db, projectId, user, kind, title, body, link, now);
            count++;
        }
        return count;
    }

    public async Task<NotificationPage> ListAsync(Guid userId, bool unreadOnly = false, int skip = 0, int take = 20, CancellationToken ct = default)
    {
        take = Math.Clamp(take, 1, 100);
        skip = Math.Max(0, skip);
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        // Only projects the user is still a member of: a removed member's old notifications must not leak titles.
        var mine = db.Set<Notification>().AsNoTracking()
            .Where(n => n.UserId == userId && db.ProjectMembers.Any(m => m.ProjectId == n.ProjectId && m.UserId == userId));
        var filtered = unreadOnly ? mine.Where(n => n.ReadAt == null) : mine;
        var total = await filtered.CountAsync(ct);
        var unread = unreadOnly ? total : await mine.CountAsync(n => n.ReadAt == null, ct);
        var items = await filtered.OrderByDescending(n => n.CreatedAt).ThenByDescending(n => n.Id).Skip(skip).Take(take)
            .Join(db.Projects, n => n.ProjectId, p => p.Id, (n, p) => new NotificationRow(n.Id, n.ProjectId, p.Name, n.Kind, n.Title, n.Body, n.Link, n.CreatedAt, n.ReadAt != null))
            .ToListAsync(ct);
        return new NotificationPage(items, total, unread);
    }

    public async Task<int> UnreadCountAsync(Guid userId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        return await db.Set<Notification>().CountAsync(n => n.UserId == userId && n.ReadAt == null
            && db.ProjectMembers.Any(m => m.ProjectId == n.ProjectId && m.UserId == userId), ct);
    }

    /// <summary>Marks one of the user's notifications read; another user's id answers NotFound.</summary>
    public async Task MarkReadAsync(Guid userId, Guid notificationId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var now = clock.GetUtcNow();
        var n = await db.Set<Notification>().FirstOrDefaultAsync(x => x.Id == notificationId && x.UserId == userId, ct)
            ?? throw DomainException.NotFound("Notification");
        n.ReadAt ??= now;
        await db.SaveChangesAsync(ct);
    }

    public async Task<int> MarkAllReadAsync(Guid userId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var now = clock.GetUtcNow();
        return await db.Set<Notification>().Where(n => n.UserId == userId && n.ReadAt == null)
            .ExecuteUpdateAsync(s => s.SetProperty(n => n.ReadAt, now), ct);
    }

    private static string Cut(string s, int max) => s.Length <= max ? s : s[..(max - 1)] + "…";
}
