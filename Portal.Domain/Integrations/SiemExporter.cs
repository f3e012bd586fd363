using System.Buffers;
using System.IO.Compression;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Portal.Domain.Audit;
using Portal.Domain.Persistence;
using Portal.Domain.Security;

namespace Portal.Domain.Integrations;

/// <summary>What a receiver made of one batch.</summary>
public sealed record SiemSendResult(bool Accepted, bool Retryable, int? StatusCode, string Message);

public sealed record SiemRunResult(int Integrations, long Exported, int Failures);

/// <summary>
/// Ships each project's audit trail to its SIEM integrations: Splunk HEC, Datadog logs, syslog (RFC 5424 over TCP with
/// RFC 6587 octet counting, optionally TLS) as JSON, CEF or OCSF.
/// <para>
/// At-least-once and in order: a worker claims an integration with a lease (a conditional UPDATE, so two workers never
/// export the same integration at once), sends the events after the cursor in seq order, and advances the cursor with a
/// compare-and-set only after the receiver accepted the batch. A crash between sending and advancing re-sends that one
/// batch after the lease expires. 408, 429, 5xx and network errors retry with exponential backoff and jitter; any other
/// 4xx stops the integration with the receiver's answer as its visible error until someone resumes it.
/// </para>
/// </summary>
public sealed class SiemExporter(IDbContextFactory<PortalDbContext> dbFactory, PortalDatabase database, SecretProtector secrets, IHttpClientFactory http,
    IntegrationsOptions options, TimeProvider clock, ILogger<SiemExporter>? logger = null)
{
    public const int MaxDatadogEntries = 1000;
    public const int MaxDatadogBytes = 5 * 1024 * 1024;
    private readonly ILogger log = (ILogger?)logger ?? NullLogger.Instance;
    private readonly Random random = new();

    /// <summary>Tests only: runs after a batch was accepted and before the cursor moves (a crash there re-sends one batch).</summary>
    public Func<Task>? AfterSendBeforeAdvance { get; set; }

    public static string SecretPurpose(Guid integrationId) => $"siem-secret:{integrationId}";

    public TimeSpan Backoff(int failures)
    {
        var seconds = Math.Min(3600, 5 * Math.Pow(2, Math.Max(0, failures - 1)));
        return TimeSpan.FromSeconds(seconds * (1 + (random.NextDouble() * 2 - 1) * options.Jitter));
    }

    public async Task<SiemRunResult> RunOnceAsync(string worker, int maxBatches = 200, CancellationToken ct = default)
    {
        List<Guid> due;
        var now = clock.GetUtcNow();
        await using (var db = await dbFactory.CreateDbContextAsync(ct))
            due = await db.Set<SiemIntegration>().AsNoTracking()
                .Where(i => (i.Status == SiemStatus.Active || i.Status == SiemStatus.Retrying) && i.NextAttemptAt <= now)
                .OrderBy(i => i.NextAttemptAt).Select(i => i.Id).ToListAsync(ct);
        long exported = 0;
        int count = 0, failures = 0;
        foreach (var id in due)
        {
            var (n, failed, claimed) = await ExportAsync(id, worker, maxBatches, ct);
            if (!claimed) continue;
            count++;
            exported += n;
            if (failed) failures++;
        }
        return new SiemRunResult(count, exported, failures);
    }

    /// <summary>Exports one integration until it is caught up, fails, or <paramref name="maxBatches"/> were sent.</summary>
    public async Task<(long Exported, bool Failed, bool Claimed)> ExportAsync(Guid integrationId, string worker, int maxBatches = 200, CancellationToken ct = default)
    {
        var token = (worker.Length > 30 ? worker[..30] : worker) + ":" + Guid.NewGuid().ToString("N");
        var now = clock.GetUtcNow();
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var claimed = await db.Set<SiemIntegration>()
            .Where(i => i.Id == integrationId && (i.Status == SiemStatus.Active || i.Status == SiemStatus.Retrying) && i.NextAttemptAt <= now
                && (i.LeaseUntil == null || i.LeaseUntil < now))
            .ExecuteUpdateAsync(s => s.SetProperty(i => i.LeaseOwner, token).SetProperty(i => i.LeaseUntil, now + options.Lease), ct);
        if (claimed != 1) return (0, false, false);
        var integration = await db.Set<SiemIntegration>().AsNoTracking().FirstAsync(i => i.Id == integrationId, ct);
        var secret = integration.SecretProtected is null ? null : secrets.Unprotect(integration.SecretProtected, SecretPurpose(integration.Id));
        var filter = Filter(integration.EventTypes);
        var cursor = integration.CursorSeq;
        long exported = 0;
        var batchSize = Math.Max(1, integration.BatchSize);
        // One query for the whole run, read one batch ahead: the next batch is read and formatted while the receiver
        // takes the current one. Two batch buffers alternate, so a batch is never overwritten while it is being sent.
        SiemEventSource? source = null;
        Task<PreparedBatch>? next = null;
        try
        {
            source = SiemEventSource.Open(database, integration.ProjectId, cursor, (long)batchSize * Math.Max(1, maxBatches));
            var buffers = new[] { new PreparedBatch(batchSize), new PreparedBatch(batchSize) };
            var src = source;
            Task<PreparedBatch> Prepare(PreparedBatch b) => Task.Run(() => b.Fill(src, integration, filter, options.Hostname), ct);
            next = Prepare(buffers[0]);
            for (var b = 0; b < maxBatches; b++)
            {
                var batch = await next!;
                next = null;
                if (batch.Read == 0) break;
                if (batch.Read == batchSize && b + 1 < maxBatches) next = Prepare(buffers[(b + 1) & 1]);
                var result = batch.Selected == 0 ? new SiemSendResult(true, false, null, "nothing selected") : await SendPreparedAsync(integration, secret, batch, ct);
                if (!result.Accepted)
                {
                    await FailAsync(db, integration, token, result, ct);
                    return (exported, true, true);
                }
                if (AfterSendBeforeAdvance is { } hook) await hook();
                var newCursor = batch.LastSeq;
                var at = clock.GetUtcNow();
                var old = cursor;
                var selectedCount = batch.Selected;
                var moved = await db.Set<SiemIntegration>().Where(i => i.Id == integrationId && i.LeaseOwner == token && i.CursorSeq == old)
                    .ExecuteUpdateAsync(s => s.SetProperty(i => i.CursorSeq, newCursor).SetProperty(i => i.ExportedCount, i => i.ExportedCount + selectedCount)
                        .SetProperty(i => i.LastSuccessAt, at).SetProperty(i => i.Attempts, 0).SetProperty(i => i.Status, SiemStatus.Active)
                        .SetProperty(i => i.LeaseUntil, at + options.Lease), ct);
                if (moved != 1)
                {
                    log.LogWarning("SIEM integration {Id}: lease lost before the cursor moved; another worker continues", integrationId);
                    return (exported, false, true);
                }
                cursor = newCursor;
                exported += selectedCount;
                if (batch.Read < batchSize) break;
            }
        }
        finally
        {
            // The read-ahead still uses the cursor: let it finish before the cursor is closed.
            if (next is not null) { try { await next; } catch (Exception e) when (e is not OutOfMemoryException) { } }
            source?.Dispose();
            await db.Set<SiemIntegration>().Where(i => i.Id == integrationId && i.LeaseOwner == token)
                .ExecuteUpdateAsync(s => s.SetProperty(i => i.LeaseOwner, (string?)null).SetProperty(i => i.LeaseUntil, (DateTimeOffset?)null), CancellationToken.None);
        }
        return (exported, false, true);
    }

    /// <summary>
    /// One batch read from the cursor with its wire body already formatted (HEC and syslog; Datadog bodies are built
    /// at send time from <see cref="Events"/>). Reused from batch to batch.
    /// </summary>
    private sealed class PreparedBatch(int size)
    {
        public readonly AuditEvent[] Events = new AuditEvent[size];
        public readonly List<AuditEvent> SelectedEvents = new(size);
        public readonly ArrayBufferWriter<byte> Body = new(size * 512);
        private readonly ArrayBufferWriter<byte> scratch = new(4096);
        private Utf8JsonWriter? json;
        public int Read, Selected;
        public long LastSeq;

        public PreparedBatch Fill(SiemEventSource source, SiemIntegration integration, string[]? filter, string hostname)
        {
            Read = source.Read(Events);
            SelectedEvents.Clear();
            Body.ResetWrittenCount();
            if (Read == 0) { Selected = 0; return this; }
            LastSeq = Events[Read - 1].Seq;
            for (var i = 0; i < Read; i++)
                if (filter is null || Matches(filter, Events[i].EventType)) SelectedEvents.Add(Events[i]);
            Selected = SelectedEvents.Count;
            if (integration.Kind == SiemKinds.SplunkHec) WriteHec(Body, json ??= new Utf8JsonWriter(Body), integration, SelectedEvents, hostname);
            else if (integration.Kind == SiemKinds.Syslog) WriteSyslog(Body, scratch, integration.Format, SelectedEvents, hostname);
            return this;
        }
    }

    private async Task<SiemSendResult> SendPreparedAsync(SiemIntegration integration, string? secret, PreparedBatch batch, CancellationToken ct)
    {
        try
        {
            return integration.Kind switch
            {
                SiemKinds.SplunkHec => await PostAsync(integration, batch.Body.WrittenMemory, req => req.Headers.TryAddWithoutValidation("Authorization", "Splunk " + secret), false, ct),
                SiemKinds.Datadog => await DatadogAsync(integration, secret, batch.SelectedEvents, ct),
                SiemKinds.Syslog => await SyslogSendAsync(integration, batch.Body.WrittenMemory, batch.Selected, ct),
                _ => new SiemSendResult(false, false, null, $"Unknown integration type '{integration.Kind}'."),
            };
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return new SiemSendResult(false, true, null, $"No answer within {options.Timeout.TotalSeconds:0.#} s.");
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or SocketException or System.Security.Authentication.AuthenticationException)
        {
            return new SiemSendResult(false, true, null, "Network error: " + (ex.InnerException?.Message ?? ex.Message));
        }
    }

    private async Task FailAsync(PortalDbContext db, SiemIntegration integration, string token, SiemSendResult result, CancellationToken ct)
    {
        var at = clock.GetUtcNow();
        var message = WebhookService.Cut(result.Message, 2000);
        if (result.Retryable)
        {
            var attempts = integration.Attempts + 1;
            var next = at + Backoff(attempts);
            await db.Set<SiemIntegration>().Where(i => i.Id == integration.Id && i.LeaseOwner == token)
                .ExecuteUpdateAsync(s => s.SetProperty(i => i.Attempts, attempts).SetProperty(i => i.Status, SiemStatus.Retrying).SetProperty(i => i.NextAttemptAt, next)
                    .SetProperty(i => i.LastError, message).SetProperty(i => i.LastErrorAt, at), ct);
            log.LogWarning("SIEM integration {Id} failed (attempt {Attempts}), retrying at {Next}: {Message}", integration.Id, attempts, next, message);
        }
        else
        {
            await db.Set<SiemIntegration>().Where(i => i.Id == integration.Id && i.LeaseOwner == token)
                .ExecuteUpdateAsync(s => s.SetProperty(i => i.Status, SiemStatus.Stopped).SetProperty(i => i.LastError, message).SetProperty(i => i.LastErrorAt, at), ct);
            log.LogError("SIEM integration {Id} stopped: the receiver refused a batch for good: {Message}", integration.Id, message);
        }
    }

    private static string[]? Filter(string? eventTypes) =>
        string.IsNullOrWhiteSpace(eventTypes) ? null : eventTypes.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static bool Matches(string[] filter, string eventType)
    {
        foreach (var f in filter)
            if (f.EndsWith('.') ? eventType.StartsWith(f, StringComparison.Ordinal) : eventType == f) return true;
        return false;
    }

    /// <summary>Sends one synthetic "integration.test" event; the cursor does not move.</summary>
    public async Task<SiemSendResult> SendTestAsync(SiemIntegration integration, CancellationToken ct = default)
    {
        var secret = integration.SecretProtected is null ? null : secrets.Unprotect(integration.SecretProtected, SecretPurpose(integration.Id));
        var e = new AuditEvent
        {
            ProjectId = integration.ProjectId, Seq = 0, Id = Guid.CreateVersion7(), OccurredAt = clock.GetUtcNow(), EventType = "integration.test",
            ActorType = "system", Success = true, SecurityLevel = "normal", Hash = new byte[32], PrevHash = new byte[32],
        };
        return await SendAsync(integration, secret, [e], ct);
    }

    public async Task<SiemSendResult> SendAsync(SiemIntegration integration, string? secret, IReadOnlyList<AuditEvent> events, CancellationToken ct)
    {
        try
        {
            return integration.Kind switch
            {
                SiemKinds.SplunkHec => await PostAsync(integration, HecBody(integration, events), req => req.Headers.TryAddWithoutValidation("Authorization", "Splunk " + secret), false, ct),
                SiemKinds.Datadog => await DatadogAsync(integration, secret, events, ct),
                SiemKinds.Syslog => await SyslogAsync(integration, events, ct),
                _ => new SiemSendResult(false, false, null, $"Unknown integration type '{integration.Kind}'."),
            };
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return new SiemSendResult(false, true, null, $"No answer within {options.Timeout.TotalSeconds:0.#} s.");
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or SocketException or System.Security.Authentication.AuthenticationException)
        {
            return new SiemSendResult(false, true, null, "Network error: " + (ex.InnerException?.Message ?? ex.Message));
        }
    }

    private static Uri Url(string endpoint, string defaultPath)
    {
        var uri = new Uri(endpoint);
        return uri.AbsolutePath is "" or "/" ? new Uri(uri, defaultPath) : uri;
    }

    private async Task<SiemSendResult> PostAsync(SiemIntegration integration, ReadOnlyMemory<byte> body, Action<HttpRequestMessage> auth, bool gzip, CancellationToken ct,
        string defaultPath = "/services/collector/event")
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, Url(integration.Endpoint, defaultPath));
        HttpContent content;
        if (gzip)
        {
            var ms = new MemoryStream();
            await using (var gz = new GZipStream(ms, CompressionLevel.Fastest, leaveOpen: true)) await gz.WriteAsync(body, ct);
            content = new ByteArrayContent(ms.GetBuffer(), 0, (int)ms.Length);
            content.Headers.ContentEncoding.Add("gzip");
        }
        else content = new ReadOnlyMemoryContent(body);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        request.Content = content;
        auth(request);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(options.Timeout);
        using var response = await http.CreateClient(IntegrationsOptions.HttpClientName).SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        var code = (int)response.StatusCode;
        var excerpt = await WebhookDispatcher.ReadExcerptAsync(response, timeout.Token);
        if (code is >= 200 and < 300) return new SiemSendResult(true, false, code, $"Accepted ({code}).");
        var retryable = code is 408 or 429 || code >= 500;
        return new SiemSendResult(false, retryable, code, $"The receiver answered {code} {response.ReasonPhrase}{(excerpt is null ? "" : ": " + excerpt)}");
    }

    /// <summary>Splunk HEC: event objects concatenated in one body.</summary>
    public byte[] HecBody(SiemIntegration integration, IReadOnlyList<AuditEvent> events)
    {
        var buffer = new ArrayBufferWriter<byte>(events.Count * 512);
        using var w = new Utf8JsonWriter(buffer);
        WriteHec(buffer, w, integration, events, options.Hostname);
        return buffer.WrittenSpan.ToArray();
    }

    private static void WriteHec(ArrayBufferWriter<byte> buffer, Utf8JsonWriter w, SiemIntegration integration, IReadOnlyList<AuditEvent> events, string hostname)
    {
        var sourcetype = integration.Format == SiemFormats.Ocsf ? "ocsf" : integration.Format == SiemFormats.Cef ? "cef" : "governance:audit";
        var scratch = integration.Format == SiemFormats.Cef ? new ArrayBufferWriter<byte>(512) : null;
        foreach (var e in events)
        {
            w.Reset(buffer);
            w.WriteStartObject();
            w.WriteNumber("time"u8, Math.Round(e.OccurredAt.ToUnixTimeMilliseconds() / 1000.0, 3));
            w.WriteString("host"u8, hostname);
            w.WriteString("source"u8, "governance-portal"u8);
            w.WriteString("sourcetype"u8, sourcetype);
            w.WritePropertyName("event"u8);
            if (scratch is not null)
            {
                scratch.ResetWrittenCount();
                SiemFormatting.WriteCef(scratch, e);
                w.WriteStringValue(scratch.WrittenSpan);
            }
            else if (integration.Format == SiemFormats.Ocsf) SiemFormatting.WriteOcsf(w, e);
            else SiemFormatting.WriteJson(w, e);
            w.WriteEndObject();
            w.Flush();
        }
    }

    /// <summary>The syslog MSG of an event (CEF, OCSF or JSON) as UTF-8.</summary>
    private static void WriteEventText(ArrayBufferWriter<byte> o, string format, AuditEvent e)
    {
        if (format == SiemFormats.Cef) { SiemFormatting.WriteCef(o, e); return; }
        using var w = new Utf8JsonWriter(o);
        if (format == SiemFormats.Ocsf) SiemFormatting.WriteOcsf(w, e); else SiemFormatting.WriteJson(w, e);
    }

    private static void WriteSyslog(ArrayBufferWriter<byte> body, ArrayBufferWriter<byte> scratch, string format, IReadOnlyList<AuditEvent> events, string hostname)
    {
        foreach (var e in events)
        {
            scratch.ResetWrittenCount();
            SiemFormatting.WriteSyslogHeader(scratch, e, hostname);
            WriteEventText(scratch, format, e);
            SiemFormatting.Frame(body, scratch.WrittenSpan);
        }
    }

    /// <summary>Datadog logs intake v2: JSON arrays of at most 1000 entries and 5 MB, gzip-compressed, key in DD-API-KEY.</summary>
    public IEnumerable<byte[]> DatadogBodies(SiemIntegration integration, IReadOnlyList<AuditEvent> events)
    {
        var entry = new ArrayBufferWriter<byte>(1024);
        var text = new ArrayBufferWriter<byte>(1024);
        using var w = new Utf8JsonWriter(entry);
        var tags = new StringBuilder(128);
        var chunk = new MemoryStream();
        var count = 0;
        foreach (var e in events)
        {
            entry.ResetWrittenCount();
            text.ResetWrittenCount();
            WriteEventText(text, integration.Format, e);
            tags.Clear().Append("project:").Append(e.ProjectId).Append(",event_type:").Append(e.EventType).Append(",level:").Append(e.SecurityLevel);
            w.Reset(entry);
            w.WriteStartObject();
            w.WriteString("ddsource"u8, "governance-portal"u8);
            w.WriteString("service"u8, "governance-portal"u8);
            w.WriteString("hostname"u8, options.Hostname);
            w.WriteString("ddtags"u8, tags.ToString());
            w.WriteString("message"u8, text.WrittenSpan);
            w.WriteEndObject();
            w.Flush();
            if (count > 0 && (count == MaxDatadogEntries || chunk.Length + entry.WrittenCount + 2 > MaxDatadogBytes))
            {
                chunk.WriteByte((byte)']');
                yield return chunk.ToArray();
                chunk = new MemoryStream();
                count = 0;
            }
            chunk.WriteByte(count == 0 ? (byte)'[' : (byte)',');
            chunk.Write(entry.WrittenSpan);
            count++;
        }
        if (count > 0)
        {
            chunk.WriteByte((byte)']');
            yield return chunk.ToArray();
        }
    }

    private async Task<SiemSendResult> DatadogAsync(SiemIntegration integration, string? secret, IReadOnlyList<AuditEvent> events, CancellationToken ct)
    {
        SiemSendResult last = new(true, false, null, "nothing to send");
        foreach (var body in DatadogBodies(integration, events))
        {
            last = await PostAsync(integration, body, req => req.Headers.TryAddWithoutValidation("DD-API-KEY", secret), true, ct, "/api/v2/logs");
            if (!last.Accepted) return last;
        }
        return last;
    }

    /// <summary>
    /// Syslog over TCP: one connection per batch, octet-counted frames, then a half-close; the batch counts as accepted
    /// once the receiver has read everything and closed its side (TCP syslog has no application-level acknowledgement).
    /// </summary>
    private async Task<SiemSendResult> SyslogAsync(SiemIntegration integration, IReadOnlyList<AuditEvent> events, CancellationToken ct)
    {
        var buffer = new ArrayBufferWriter<byte>(events.Count * 400);
        WriteSyslog(buffer, new ArrayBufferWriter<byte>(1024), integration.Format, events, options.Hostname);
        return await SyslogSendAsync(integration, buffer.WrittenMemory, events.Count, ct);
    }

    private async Task<SiemSendResult> SyslogSendAsync(SiemIntegration integration, ReadOnlyMemory<byte> frames, int count, CancellationToken ct)
    {
        var (host, port) = SiemService.ParseHostPort(integration.Endpoint);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(options.Timeout);
        using var client = new TcpClient();
        await client.ConnectAsync(host, port, timeout.Token);
        Stream stream = client.GetStream();
        if (integration.UseTls)
        {
            var ssl = new SslStream(stream, false, options.AllowUntrustedSyslogCertificates ? (_, _, _, _) => true : null);
            await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = host }, timeout.Token);
            stream = ssl;
        }
        await stream.WriteAsync(frames, timeout.Token);
        await stream.FlushAsync(timeout.Token);
        if (stream is SslStream s) await s.ShutdownAsync();
        client.Client.Shutdown(SocketShutdown.Send);
        var sink = new byte[256];
        while (await stream.ReadAsync(sink, timeout.Token) > 0) { }
        return new SiemSendResult(true, false, null, $"Sent {count} frame(s).");
    }
}
