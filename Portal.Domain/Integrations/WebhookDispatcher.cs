using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Portal.Domain.Persistence;
using Portal.Domain.Security;

namespace Portal.Domain.Integrations;

public sealed record DispatchResult(int Staged, int Attempted, int Delivered, int Retrying, int Failed);

/// <summary>
/// Turns outbox messages (and the audit trail's gateway.query_executed events) into webhook deliveries and sends them.
/// <para>
/// Staging: unprocessed outbox messages are read under FOR UPDATE SKIP LOCKED (PostgreSQL) or the SQLite write lock,
/// one delivery per subscribed endpoint is inserted and the message marked processed in the same transaction, so a
/// message becomes deliveries exactly once however many workers run. query_executed uses a per-endpoint cursor over the
/// audit trail, advanced with a compare-and-set in the transaction that inserts the deliveries.
/// </para>
/// <para>
/// Sending: a worker claims due deliveries by setting a lease (owner token + expiry) in one UPDATE (SKIP LOCKED on
/// PostgreSQL), sends them, and records the outcomes only where it still holds the lease (lease_owner is a concurrency
/// token). A worker that dies between sending and recording leaves the lease to expire; the delivery is then sent again
/// with the same webhook-id, which is how receivers recognise the duplicate.
/// </para>
/// </summary>
public sealed class WebhookDispatcher(IDbContextFactory<PortalDbContext> dbFactory, SecretProtector secrets, IHttpClientFactory http,
    IntegrationsOptions options, TimeProvider clock, ILogger<WebhookDispatcher>? logger = null)
{
    public const string QueryExecutedAuditType = "gateway.query_executed";
    private readonly ILogger log = (ILogger?)logger ?? NullLogger.Instance;
    private readonly Random random = new();

    /// <summary>Tests only: runs after the HTTP calls of a claimed batch and before their outcomes are recorded (a crash there loses nothing).</summary>
    public Func<Task>? AfterSendBeforeRecord { get; set; }

    public static string WebhookId(Guid deliveryId) => "msg_" + deliveryId.ToString("N");

    /// <summary>The Standard Webhooks payload shape: type, timestamp, data.</summary>
    public static string Envelope(string type, DateTimeOffset at, string dataJson) =>
        $"{{\"type\":{JsonSerializer.Serialize(type)},\"timestamp\":\"{at.UtcDateTime:yyyy-MM-dd'T'HH:mm:ss.fff'Z'}\",\"data\":{dataJson}}}";

    /// <summary>Stages, then sends everything due, until nothing is left or <paramref name="maxBatches"/> claims were sent.</summary>
    public async Task<DispatchResult> RunOnceAsync(string worker, int batchSize = 500, int maxBatches = 20, CancellationToken ct = default)
    {
        var staged = 0;
        for (var i = 0; i < maxBatches; i++)
        {
            var n = await StageOutboxAsync(batchSize, ct);
            staged += n;
            if (n < batchSize) break;
        }
        staged += await StageQueryExecutedAsync(batchSize, ct);
        int attempted = 0, delivered = 0, retrying = 0, failed = 0;
        for (var i = 0; i < maxBatches; i++)
        {
            var r = await DeliverDueAsync(worker, batchSize, ct);
            attempted += r.Attempted; delivered += r.Delivered; retrying += r.Retrying; failed += r.Failed;
            if (r.Attempted < batchSize) break;
        }
        return new DispatchResult(staged, attempted, delivered, retrying, failed);
    }

    public async Task<int> StageOutboxAsync(int batchSize = 500, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var messages = await DeliveryRows.ClaimOutboxAsync(db, batchSize, ct);
        if (messages.Count == 0) return 0;
        var projects = messages.Select(m => m.ProjectId).Distinct().ToList();
        var endpoints = await db.Set<WebhookEndpoint>().AsNoTracking().Where(e => projects.Contains(e.ProjectId) && e.Enabled).ToListAsync(ct);
        var now = clock.GetUtcNow();
        var deliveries = new List<WebhookDelivery>(messages.Count);
        foreach (var m in messages)
        {
            foreach (var e in endpoints.Where(e => e.ProjectId == m.ProjectId && Subscribed(e, m.EventType)))
            {
                deliveries.Add(new WebhookDelivery
                {
                    ProjectId = m.ProjectId, EndpointId = e.Id, OutboxMessageId = m.Id, EventType = m.EventType,
                    Payload = Envelope(m.EventType, m.CreatedAt, m.PayloadJson), CreatedAt = now, NextAttemptAt = now,
                });
            }
        }
        await DeliveryRows.InsertAsync(db, deliveries, ct);
        // Inside the transaction that holds the rows (SKIP LOCKED / the SQLite write lock): the count must match.
        var marked = await DeliveryRows.MarkProcessedAsync(db, messages, now, ct);
        if (marked != messages.Count) throw new InvalidOperationException($"Outbox: {messages.Count - marked} message(s) were processed by another dispatcher meanwhile; nothing was staged.");
        await tx.CommitAsync(ct);
        return messages.Count;
    }

    private static bool Subscribed(WebhookEndpoint e, string eventType) =>
        e.EventTypes.Split(',', StringSplitOptions.RemoveEmptyEntries).Contains(eventType, StringComparer.Ordinal);

    /// <summary>Creates query_executed deliveries from the audit trail, per endpoint from its cursor.</summary>
    public async Task<int> StageQueryExecutedAsync(int batchSize = 500, CancellationToken ct = default)
    {
        List<WebhookEndpoint> endpoints;
        await using (var db = await dbFactory.CreateDbContextAsync(ct))
            endpoints = await db.Set<WebhookEndpoint>().AsNoTracking()
                .Where(e => e.Enabled && e.EventTypes.Contains(OutboxEvents.QueryExecuted)).ToListAsync(ct);
        var staged = 0;
        foreach (var endpoint in endpoints.Where(e => Subscribed(e, OutboxEvents.QueryExecuted)))
        {
            await using var db = await dbFactory.CreateDbContextAsync(ct);
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            var head = await db.AuditChainHeads.Where(h => h.ProjectId == endpoint.ProjectId).Select(h => (long?)h.Seq).FirstOrDefaultAsync(ct) ?? 0;
            if (head <= endpoint.QueryCursor) continue;
            var events = await db.AuditEvents.AsNoTracking()
                .Where(a => a.ProjectId == endpoint.ProjectId && a.Seq > endpoint.QueryCursor && a.Seq <= head && a.EventType == QueryExecutedAuditType)
                .OrderBy(a => a.Seq).Take(batchSize).ToListAsync(ct);
            var newCursor = events.Count == batchSize ? events[^1].Seq : head;
            var now = clock.GetUtcNow();
            var deliveries = new List<WebhookDelivery>(events.Count);
            foreach (var a in events)
            {
                var data = Portal.Domain.Audit.PortalAudit.Json(new
                {
                    audit_seq = a.Seq, audit_id = a.Id, query_id = a.ResourceId, actor_type = a.ActorType, actor_id = a.ActorId,
                    success = a.Success, rows_returned = a.RowsReturned, duration_ms = a.DurationMs, occurred_at = a.OccurredAt,
                })!;
                deliveries.Add(new WebhookDelivery
                {
                    ProjectId = a.ProjectId, EndpointId = endpoint.Id, EventType = OutboxEvents.QueryExecuted,
                    Payload = Envelope(OutboxEvents.QueryExecuted, a.OccurredAt, data), CreatedAt = now, NextAttemptAt = now,
                });
            }
            var moved = await db.Set<WebhookEndpoint>().Where(e => e.Id == endpoint.Id && e.QueryCursor == endpoint.QueryCursor)
                .ExecuteUpdateAsync(s => s.SetProperty(e => e.QueryCursor, newCursor), ct);
            if (moved != 1) continue; // another worker staged these; roll back
            await DeliveryRows.InsertAsync(db, deliveries, ct);
            await tx.CommitAsync(ct);
            staged += events.Count;
        }
        return staged;
    }

    private sealed record Outcome(int? Code, string? Excerpt, bool Gone);

    public async Task<DispatchResult> DeliverDueAsync(string worker, int batchSize = 500, CancellationToken ct = default)
    {
        var token = (worker.Length > 30 ? worker[..30] : worker) + ":" + Guid.NewGuid().ToString("N");
        var now = clock.GetUtcNow();
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var claimSql = db.IsSqlite
            ? "UPDATE webhook_deliveries SET lease_owner = @o, lease_until = @u WHERE id IN (SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id " +
              "WHERE d.status IN ('pending', 'retrying') AND d.next_attempt_at <= @now AND (d.lease_until IS NULL OR d.lease_until < @now) AND e.enabled = 1 " +
              "ORDER BY d.next_attempt_at, d.id LIMIT @n)"
            : "UPDATE webhook_deliveries SET lease_owner = @o, lease_until = @u WHERE id IN (SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id " +
              "WHERE d.status IN ('pending', 'retrying') AND d.next_attempt_at <= @now AND (d.lease_until IS NULL OR d.lease_until < @now) AND e.enabled " +
              "ORDER BY d.next_attempt_at, d.id LIMIT @n FOR UPDATE OF d SKIP LOCKED)";
        var claimed = await db.Database.ExecuteSqlRawAsync(claimSql,
            [SqlValues.P(db, "@o", token), SqlValues.P(db, "@u", now + options.Lease), SqlValues.P(db, "@now", now), SqlValues.P(db, "@n", batchSize)], ct);
        if (claimed == 0) return new DispatchResult(0, 0, 0, 0, 0);

        var rows = await db.Set<WebhookDelivery>().AsNoTracking().Where(d => d.LeaseOwner == token).OrderBy(d => d.CreatedAt).ThenBy(d => d.Id).ToListAsync(ct);
        var endpointIds = rows.Select(r => r.EndpointId).Distinct().ToList();
        var endpoints = await db.Set<WebhookEndpoint>().AsNoTracking().Where(e => endpointIds.Contains(e.Id)).ToDictionaryAsync(e => e.Id, ct);
        var keys = endpoints.Values.ToDictionary(e => e.Id, e => Secrets(e, now));

        var outcomes = new Outcome[rows.Count];
        var client = http.CreateClient(IntegrationsOptions.HttpClientName);
        await Parallel.ForEachAsync(Enumerable.Range(0, rows.Count), new ParallelOptions { MaxDegreeOfParallelism = options.Parallelism, CancellationToken = ct },
            async (i, c) => outcomes[i] = await SendAsync(client, rows[i], endpoints[rows[i].EndpointId], keys[rows[i].EndpointId], c));
        if (AfterSendBeforeRecord is { } hook) await hook();

        var after = clock.GetUtcNow();
        int delivered = 0, retrying = 0, failed = 0;
        var attempts = new DeliveryRows.Attempt[rows.Count];
        var gone = new HashSet<Guid>();
        for (var i = 0; i < rows.Count; i++)
        {
            var d = rows[i];
            var o = outcomes[i];
            var attempt = d.Attempts + 1;
            string status;
            var next = d.NextAttemptAt;
            DateTimeOffset? deliveredAt = null;
            if (o.Code is >= 200 and < 300)
            {
                status = DeliveryStatus.Delivered;
                deliveredAt = after;
                delivered++;
            }
            else if (o.Gone)
            {
                status = DeliveryStatus.Failed;
                gone.Add(d.EndpointId);
                failed++;
            }
            else if (attempt > options.RetrySchedule.Length)
            {
                status = DeliveryStatus.Failed;
                failed++;
            }
            else
            {
                status = DeliveryStatus.Retrying;
                next = after + options.Backoff(attempt, random);
                retrying++;
            }
            attempts[i] = new DeliveryRows.Attempt(d.Id, status, attempt, o.Code, o.Excerpt, next, deliveredAt);
        }
        await using (var tx = await db.Database.BeginTransactionAsync(ct))
        {
            var recorded = await DeliveryRows.RecordAsync(db, token, after, attempts, ct);
            // Our lease ran out and another worker took these rows over: its record wins.
            if (recorded < attempts.Length)
                log.LogWarning("Webhook lease {Token} expired before {Count} outcome(s) were recorded", token, attempts.Length - recorded);
            foreach (var id in gone)
            {
                var reason = $"The receiver answered 410 Gone at {after:yyyy-MM-dd HH:mm} UTC; resume it once the URL is fixed.";
                await db.Set<WebhookEndpoint>().Where(e => e.Id == id && e.Enabled)
                    .ExecuteUpdateAsync(s => s.SetProperty(e => e.Enabled, false).SetProperty(e => e.DisabledReason, reason).SetProperty(e => e.UpdatedAt, after), ct);
            }
            await tx.CommitAsync(ct);
        }
        return new DispatchResult(0, rows.Count, delivered, retrying, failed);
    }

    private List<string> Secrets(WebhookEndpoint e, DateTimeOffset now)
    {
        var list = new List<string> { secrets.Unprotect(e.SecretProtected, WebhookService.SecretPurpose(e.Id)) };
        if (e.Kind == EndpointKinds.Webhook && e.PreviousSecretProtected is { } prev && e.PreviousSecretUntil > now)
            list.Add(secrets.Unprotect(prev, WebhookService.SecretPurpose(e.Id)));
        return list;
    }

    private async Task<Outcome> SendAsync(HttpClient client, WebhookDelivery d, WebhookEndpoint e, List<string> keys, CancellationToken ct)
    {
        string url, body;
        if (e.Kind == EndpointKinds.Webhook) { url = e.Url; body = d.Payload; }
        else { url = keys[0]; body = e.Kind == EndpointKinds.Slack ? ChannelMessages.Slack(d.Payload, options.PortalBaseUrl, d.ProjectId) : ChannelMessages.Teams(d.Payload, options.PortalBaseUrl, d.ProjectId); }
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        if (e.Kind == EndpointKinds.Webhook)
        {
            var id = WebhookId(d.Id);
            var ts = clock.GetUtcNow().ToUnixTimeSeconds();
            request.Headers.TryAddWithoutValidation("webhook-id", id);
            request.Headers.TryAddWithoutValidation("webhook-timestamp", ts.ToString(System.Globalization.CultureInfo.InvariantCulture));
            request.Headers.TryAddWithoutValidation("webhook-signature", StandardWebhooks.SignatureHeader(keys, id, ts, body));
        }
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(options.Timeout);
        try
        {
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            var text = await ReadExcerptAsync(response, timeout.Token);
            return new Outcome((int)response.StatusCode, text, response.StatusCode == HttpStatusCode.Gone);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return new Outcome(null, $"No answer within {options.Timeout.TotalSeconds:0.#} s", false);
        }
        catch (HttpRequestException ex)
        {
            return new Outcome(null, WebhookService.Cut("Network error: " + (ex.InnerException?.Message ?? ex.Message), 500), false);
        }
    }

    internal static async Task<string?> ReadExcerptAsync(HttpResponseMessage response, CancellationToken ct)
    {
        try
        {
            await using var s = await response.Content.ReadAsStreamAsync(ct);
            var buffer = new byte[500];
            var n = 0;
            int read;
            while (n < buffer.Length && (read = await s.ReadAsync(buffer.AsMemory(n), ct)) > 0) n += read;
            return n == 0 ? null : WebhookService.Cut(Encoding.UTF8.GetString(buffer, 0, n), 500);
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            return null;
        }
    }
}

/// <summary>Readable Slack and Microsoft Teams messages for alerts and approvals: severity, title, link into the portal.</summary>
public static class ChannelMessages
{
    public sealed record Summary(string Type, string Severity, string Title, string Link);

    public static Summary Summarize(string envelope, string portalBaseUrl, Guid projectId)
    {
        using var doc = JsonDocument.Parse(envelope);
        var root = doc.RootElement;
        var type = root.TryGetProperty("type", out var t) ? t.GetString() ?? "event" : "event";
        var data = root.TryGetProperty("data", out var dd) ? dd : default;
        string? Get(string name) => data.ValueKind == JsonValueKind.Object && data.TryGetProperty(name, out var v) && v.ValueKind is JsonValueKind.String or JsonValueKind.Number ? v.ToString() : null;
        var severity = (Get("severity") ?? (type.StartsWith("alert.", StringComparison.Ordinal) ? "alert" : "info")).ToUpperInvariant();
        var title = Get("title") ?? Get("name") ?? Get("message") ?? type;
        var link = Get("link") ?? Get("url");
        var baseUrl = portalBaseUrl.TrimEnd('/');
        if (link is null || !link.StartsWith('/')) link = type switch
        {
            _ when type.StartsWith("alert.", StringComparison.Ordinal) => $"/p/{projectId}/alerts",
            _ when type.StartsWith("suggestion.", StringComparison.Ordinal) => $"/p/{projectId}/approvals",
            _ when type.StartsWith("report.", StringComparison.Ordinal) => $"/p/{projectId}/reports",
            _ => $"/p/{projectId}",
        };
        return new Summary(type, severity, title.Length > 300 ? title[..300] : title, baseUrl + link);
    }

    private static string Label(string type) => type switch
    {
        "alert.created" => "New alert", "alert.updated" => "Alert updated", "suggestion.created" => "Approval needed",
        "suggestion.approved" => "Query approved", "suggestion.rejected" => "Query rejected", "report.ready" => "Report ready",
        "webhook.test" => "Test message", _ => type,
    };

    /// <summary>Slack incoming-webhook body (mrkdwn); &lt;, &gt; and &amp; escaped as Slack requires.</summary>
    public static string Slack(string envelope, string portalBaseUrl, Guid projectId)
    {
        var s = Summarize(envelope, portalBaseUrl, projectId);
        static string Esc(string v) => v.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;");
        var text = $"*[{Esc(s.Severity)}] {Esc(Label(s.Type))}:* {Esc(s.Title)}\n<{s.Link}|Open in the governance portal>";
        return JsonSerializer.Serialize(new { text, blocks = new object[] { new { type = "section", text = new { type = "mrkdwn", text } } } });
    }

    /// <summary>Microsoft Teams incoming-webhook body (MessageCard with an Open button).</summary>
    public static string Teams(string envelope, string portalBaseUrl, Guid projectId)
    {
        var s = Summarize(envelope, portalBaseUrl, projectId);
        var color = s.Severity is "CRITICAL" or "HIGH" or "ALERT" ? "D13438" : s.Severity is "MEDIUM" or "WARNING" ? "FFB900" : "0078D7";
        return JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["@type"] = "MessageCard", ["@context"] = "https://schema.org/extensions", ["summary"] = $"{Label(s.Type)}: {s.Title}",
            ["themeColor"] = color, ["title"] = $"[{s.Severity}] {Label(s.Type)}", ["text"] = s.Title,
            ["potentialAction"] = new object[] { new Dictionary<string, object> { ["@type"] = "OpenUri", ["name"] = "Open in the governance portal", ["targets"] = new object[] { new { os = "default", uri = s.Link } } } },
        });
    }
}
