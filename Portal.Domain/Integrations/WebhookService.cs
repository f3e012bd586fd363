using Microsoft.EntityFrameworkCore;
using Portal.Domain.Audit;
using Portal.Domain.Persistence;
using Portal.Domain.Security;

namespace Portal.Domain.Integrations;

public sealed record WebhookDraft(string Name, string Kind, string Url, IReadOnlyList<string> EventTypes);

public sealed record WebhookRow(Guid Id, string Name, string Kind, string Url, IReadOnlyList<string> EventTypes, bool Enabled, string? DisabledReason,
    DateTimeOffset CreatedAt, int Delivered, int Failed, int Waiting, double? SuccessRate, bool RotationOverlap);

/// <summary>The secret of a new or rotated webhook: shown once, never again.</summary>
public sealed record WebhookCreated(WebhookRow Endpoint, string? Secret);

public sealed record DeliveryRow(Guid Id, Guid EndpointId, string EndpointName, string EventType, string Status, int Attempts, DateTimeOffset CreatedAt,
    DateTimeOffset NextAttemptAt, DateTimeOffset? LastAttemptAt, int? ResponseCode, string? ResponseExcerpt, string Payload)
{
    public string WebhookId => WebhookDispatcher.WebhookId(Id);
}

public sealed record Paged<T>(IReadOnlyList<T> Items, int Total);

/// <summary>
/// Webhook endpoints and Slack/Teams channels of a project, and their deliveries. Secrets (whsec_ signing secrets, the
/// Slack/Teams incoming-webhook URLs) are encrypted with <see cref="SecretProtector"/> under a purpose bound to the
/// endpoint id and returned only once. Every change is recorded in integration_changes and then audited.
/// </summary>
public sealed class WebhookService(IDbContextFactory<PortalDbContext> dbFactory, SecretProtector secrets, PortalAudit audit, TimeProvider clock)
{
    public const int MaxEndpointsPerProject = 50;

    /// <summary>Every event type an endpoint can subscribe to.</summary>
    public static readonly IReadOnlyList<string> EventTypes =
    [
        OutboxEvents.AlertCreated, OutboxEvents.AlertUpdated, OutboxEvents.SuggestionCreated, OutboxEvents.SuggestionApproved,
        OutboxEvents.SuggestionRejected, OutboxEvents.ReportReady, OutboxEvents.QueryExecuted,
    ];

    public static string SecretPurpose(Guid endpointId) => $"webhook-secret:{endpointId}";

    public async Task<WebhookCreated> CreateAsync(Guid projectId, Guid actor, WebhookDraft draft, CancellationToken ct = default)
    {
        var (name, kind, url, types) = Validate(draft);
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        if (await db.Set<WebhookEndpoint>().CountAsync(e => e.ProjectId == projectId, ct) >= MaxEndpointsPerProject)
            throw DomainException.Conflict($"A project can have at most {MaxEndpointsPerProject} webhooks and channels.");
        var now = clock.GetUtcNow();
        var e = new WebhookEndpoint
        {
            ProjectId = projectId, Name = name, Kind = kind, EventTypes = string.Join(',', types), CreatedBy = actor, CreatedAt = now, UpdatedAt = now,
        };
        string? secret = null;
        if (kind == EndpointKinds.Webhook)
        {
            secret = StandardWebhooks.NewSecret();
            e.Url = url;
            e.SecretProtected = secrets.Protect(secret, SecretPurpose(e.Id));
        }
        else
        {
            // The incoming-webhook URL is the credential: keep it encrypted and show only its host.
            e.Url = RedactedUrl(url);
            e.SecretProtected = secrets.Protect(url, SecretPurpose(e.Id));
        }
        // A new endpoint receives query_executed events from now on, not the whole history.
        e.QueryCursor = await db.AuditChainHeads.Where(h => h.ProjectId == projectId).Select(h => (long?)h.Seq).FirstOrDefaultAsync(ct) ?? 0;
        db.Add(e);
        Change(db, projectId, e.Id, "created", null, Describe(e), actor, now);
        await db.SaveChangesAsync(ct);
        await RecordAsync(db, projectId, actor, "integration.webhook_created", e.Id, null, Describe(e), ct);
        return new WebhookCreated(Row(e, []), secret);
    }

    private static (string Name, string Kind, string Url, List<string> Types) Validate(WebhookDraft d)
    {
        var name = (d.Name ?? "").Trim();
        if (name.Length is 0 or > 200) throw DomainException.Invalid("name", "Give the endpoint a name of 1 to 200 characters.");
        var kind = (d.Kind ?? "").Trim().ToLowerInvariant();
        if (!EndpointKinds.All.Contains(kind)) throw DomainException.Invalid("kind", "Choose webhook, Slack or Teams.");
        var url = (d.Url ?? "").Trim();
        if (url.Length > 2000 || !Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp))
            throw DomainException.Invalid("url", "Enter an absolute http:// or https:// URL of at most 2000 characters.");
        if (!string.IsNullOrEmpty(uri.UserInfo)) throw DomainException.Invalid("url", "Do not put credentials in the URL.");
        var types = (d.EventTypes ?? []).Select(t => t.Trim()).Where(t => t.Length > 0).Distinct().ToList();
        if (types.Count == 0) throw DomainException.Invalid("eventTypes", "Choose at least one event type.");
        var unknown = types.FirstOrDefault(t => !EventTypes.Contains(t));
        if (unknown is not null) throw DomainException.Invalid("eventTypes", $"Unknown event type '{Cut(unknown, 64)}'.");
        return (name, kind, url, types);
    }

    public static string RedactedUrl(string url)
    {
        var uri = new Uri(url);
        return $"{uri.Scheme}://{uri.Authority}/…";
    }

    public async Task<Paged<WebhookRow>> ListAsync(Guid projectId, int skip = 0, int take = 20, CancellationToken ct = default)
    {
        take = Math.Clamp(take, 1, 100);
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var q = db.Set<WebhookEndpoint>().AsNoTracking().Where(e => e.ProjectId == projectId);
        var total = await q.CountAsync(ct);
        var items = await q.OrderBy(e => e.CreatedAt).ThenBy(e => e.Id).Skip(Math.Max(0, skip)).Take(take).ToListAsync(ct);
        var ids = items.Select(i => i.Id).ToList();
        var counts = await db.Set<WebhookDelivery>().AsNoTracking().Where(d => ids.Contains(d.EndpointId))
            .GroupBy(d => new { d.EndpointId, d.Status }).Select(g => new { g.Key.EndpointId, g.Key.Status, N = g.Count() }).ToListAsync(ct);
        var now = clock.GetUtcNow();
        return new Paged<WebhookRow>(items.Select(e => Row(e, counts.Where(c => c.EndpointId == e.Id).Select(c => (c.Status, c.N)).ToList(), now)).ToList(), total);
    }

    private static WebhookRow Row(WebhookEndpoint e, List<(string Status, int N)> counts, DateTimeOffset? now = null)
    {
        int Count(string s) => counts.Where(c => c.Status == s).Sum(c => c.N);
        var delivered = Count(DeliveryStatus.Delivered);
        var failed = Count(DeliveryStatus.Failed);
        var waiting = Count(DeliveryStatus.Pending) + Count(DeliveryStatus.Retrying);
        return new WebhookRow(e.Id, e.Name, e.Kind, e.Url, e.EventTypes.Split(',', StringSplitOptions.RemoveEmptyEntries), e.Enabled, e.DisabledReason,
            e.CreatedAt, delivered, failed, waiting, delivered + failed == 0 ? null : (double)delivered / (delivered + failed),
            e.PreviousSecretUntil is { } until && until > (now ?? DateTimeOffset.MinValue));
    }

    public async Task SetEnabledAsync(Guid projectId, Guid endpointId, bool enabled, Guid actor, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var e = await Find(db, projectId, endpointId, ct);
        if (e.Enabled == enabled) return;
        var now = clock.GetUtcNow();
        var before = Describe(e);
        e.Enabled = enabled;
        e.DisabledReason = enabled ? null : "Paused by a user";
        e.UpdatedAt = now;
        Change(db, projectId, e.Id, enabled ? "enabled" : "disabled", before, Describe(e), actor, now);
        await db.SaveChangesAsync(ct);
        await RecordAsync(db, projectId, actor, enabled ? "integration.webhook_enabled" : "integration.webhook_disabled", e.Id, before, Describe(e), ct);
    }

    /// <summary>
    /// Issues a new signing secret. For <paramref name="overlap"/> both secrets sign every delivery (two v1 signatures),
    /// so the receiver can switch without losing a message.
    /// </summary>
    public async Task<string> RotateSecretAsync(Guid projectId, Guid endpointId, TimeSpan overlap, Guid actor, CancellationToken ct = default)
    {
        if (overlap < TimeSpan.Zero || overlap > TimeSpan.FromDays(7)) throw DomainException.Invalid("overlap", "The overlap is 0 to 7 days.");
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var e = await Find(db, projectId, endpointId, ct);
        if (e.Kind != EndpointKinds.Webhook) throw DomainException.Invalid("kind", "Only signed webhooks have a secret to rotate.");
        var now = clock.GetUtcNow();
        var secret = StandardWebhooks.NewSecret();
        e.PreviousSecretProtected = overlap > TimeSpan.Zero ? e.SecretProtected : null;
        e.PreviousSecretUntil = overlap > TimeSpan.Zero ? now + overlap : null;
        e.SecretProtected = secrets.Protect(secret, SecretPurpose(e.Id));
        e.UpdatedAt = now;
        Change(db, projectId, e.Id, "secret_rotated", null, PortalAudit.Json(new { overlap_hours = overlap.TotalHours }), actor, now);
        await db.SaveChangesAsync(ct);
        await RecordAsync(db, projectId, actor, "integration.webhook_secret_rotated", e.Id, null, PortalAudit.Json(new { overlap_hours = overlap.TotalHours }), ct);
        return secret;
    }

    public async Task DeleteAsync(Guid projectId, Guid endpointId, Guid actor, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var e = await Find(db, projectId, endpointId, ct);
        var now = clock.GetUtcNow();
        var before = Describe(e);
        db.Remove(e);
        Change(db, projectId, e.Id, "deleted", before, null, actor, now);
        await db.SaveChangesAsync(ct);
        await RecordAsync(db, projectId, actor, "integration.webhook_deleted", e.Id, before, null, ct);
    }

    /// <summary>Queues a "webhook.test" delivery to the endpoint, sent by the next dispatcher run.</summary>
    public async Task<Guid> SendTestAsync(Guid projectId, Guid endpointId, Guid actor, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var e = await Find(db, projectId, endpointId, ct);
        if (!e.Enabled) throw DomainException.Conflict("The endpoint is paused; resume it before sending a test.");
        var now = clock.GetUtcNow();
        var d = new WebhookDelivery
        {
            ProjectId = projectId, EndpointId = e.Id, EventType = "webhook.test", CreatedAt = now, NextAttemptAt = now,
            Payload = WebhookDispatcher.Envelope("webhook.test", now, PortalAudit.Json(new { message = "Test delivery from the governance portal", endpoint = e.Name })!),
        };
        db.Add(d);
        await db.SaveChangesAsync(ct);
        return d.Id;
    }

    public async Task<Paged<DeliveryRow>> DeliveriesAsync(Guid projectId, Guid? endpointId = null, string? status = null, int skip = 0, int take = 20, CancellationToken ct = default)
    {
        take = Math.Clamp(take, 1, 100);
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var q = db.Set<WebhookDelivery>().AsNoTracking().Where(d => d.ProjectId == projectId);
        if (endpointId is { } id) q = q.Where(d => d.EndpointId == id);
        if (!string.IsNullOrEmpty(status)) q = q.Where(d => d.Status == status);
        var total = await q.CountAsync(ct);
        var items = await q.OrderByDescending(d => d.CreatedAt).ThenByDescending(d => d.Id).Skip(Math.Max(0, skip)).Take(take)
            .Join(db.Set<WebhookEndpoint>(), d => d.EndpointId, e => e.Id, (d, e) => new DeliveryRow(d.Id, d.EndpointId, e.Name, d.EventType, d.Status, d.Attempts,
                d.CreatedAt, d.NextAttemptAt, d.LastAttemptAt, d.ResponseCode, d.ResponseExcerpt, d.Payload))
            .ToListAsync(ct);
        return new Paged<DeliveryRow>(items, total);
    }

    /// <summary>Sends a delivery again (same webhook-id, so receivers can de-duplicate), whatever its status.</summary>
    public async Task RedeliverAsync(Guid projectId, Guid deliveryId, Guid actor, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var d = await db.Set<WebhookDelivery>().FirstOrDefaultAsync(x => x.Id == deliveryId && x.ProjectId == projectId, ct)
            ?? throw DomainException.NotFound("Delivery");
        if (d.Status is DeliveryStatus.Pending or DeliveryStatus.Retrying && d.LeaseOwner is not null && d.LeaseUntil > clock.GetUtcNow())
            throw DomainException.Conflict("The delivery is being sent right now.");
        var now = clock.GetUtcNow();
        d.Status = DeliveryStatus.Pending;
        d.NextAttemptAt = now;
        d.LeaseOwner = null;
        d.LeaseUntil = null;
        Change(db, projectId, d.Id, "redelivered", null, PortalAudit.Json(new { endpoint_id = d.EndpointId, event_type = d.EventType }), actor, now);
        await db.SaveChangesAsync(ct);
        await RecordAsync(db, projectId, actor, "integration.webhook_redelivered", d.Id, null, PortalAudit.Json(new { endpoint_id = d.EndpointId, event_type = d.EventType }), ct);
    }

    private static async Task<WebhookEndpoint> Find(PortalDbContext db, Guid projectId, Guid id, CancellationToken ct) =>
        await db.Set<WebhookEndpoint>().FirstOrDefaultAsync(e => e.Id == id && e.ProjectId == projectId, ct) ?? throw DomainException.NotFound("Webhook");

    private static string Describe(WebhookEndpoint e) =>
        PortalAudit.Json(new { name = e.Name, kind = e.Kind, url = e.Url, event_types = e.EventTypes, enabled = e.Enabled })!;

    internal static void Change(PortalDbContext db, Guid projectId, Guid subject, string action, string? before, string? after, Guid actor, DateTimeOffset now, string subjectType = "webhook") =>
        db.Add(new IntegrationChange
        {
            ProjectId = projectId, SubjectType = subjectType, SubjectId = subject.ToString(), Action = action,
            Before = before is null ? null : Cut(before, 4000), After = after is null ? null : Cut(after, 4000), ChangedBy = actor, ChangedAt = now,
        });

    private async Task RecordAsync(PortalDbContext db, Guid projectId, Guid actor, string eventType, Guid subject, string? before, string? after, CancellationToken ct) =>
        await audit.RecordAsync(new AuditEventDraft
        {
            ProjectId = projectId, EventType = eventType, Actor = await PortalAudit.UserAsync(db, projectId, actor, ct),
            ResourceType = "webhook", ResourceId = subject.ToString(), BeforeState = before, AfterState = after,
        }, ct);

    internal static string Cut(string s, int max) => s.Length <= max ? s : s[..max];
}
