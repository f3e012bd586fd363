using System.Globalization;
using Microsoft.EntityFrameworkCore;
using Portal.Domain.Audit;
using Portal.Domain.Persistence;
using Portal.Domain.Security;

namespace Portal.Domain.Integrations;

public sealed record SiemDraft(string Name, string Kind, string Format, string Endpoint, string? Secret, string? EventTypes, int BatchSize = 500, bool UseTls = false);

public sealed record SiemRow(Guid Id, string Name, string Kind, string Format, string Endpoint, bool UseTls, string? EventTypes, int BatchSize, string Status,
    long CursorSeq, long EventsBehind, TimeSpan? OldestUnexportedAge, DateTimeOffset? LastSuccessAt, string? LastError, DateTimeOffset? LastErrorAt,
    long ExportedCount, int Attempts, DateTimeOffset NextAttemptAt, bool HasSecret);

/// <summary>SIEM integrations of a project: add, list with lag, pause/resume, test, delete. Tokens are encrypted and never shown again.</summary>
public sealed class SiemService(IDbContextFactory<PortalDbContext> dbFactory, SecretProtector secrets, SiemExporter exporter, PortalAudit audit, TimeProvider clock)
{
    public const int MaxPerProject = 20;

    public async Task<SiemRow> CreateAsync(Guid projectId, Guid actor, SiemDraft draft, CancellationToken ct = default)
    {
        var name = (draft.Name ?? "").Trim();
        if (name.Length is 0 or > 200) throw DomainException.Invalid("name", "Give the integration a name of 1 to 200 characters.");
        var kind = (draft.Kind ?? "").Trim().ToLowerInvariant();
        if (!SiemKinds.All.Contains(kind)) throw DomainException.Invalid("kind", "Choose Splunk HEC, Datadog or syslog.");
        var format = (draft.Format ?? "").Trim().ToLowerInvariant();
        if (!SiemFormats.All.Contains(format)) throw DomainException.Invalid("format", "Choose JSON, CEF or OCSF.");
        var endpoint = (draft.Endpoint ?? "").Trim();
        if (endpoint.Length is 0 or > 2000) throw DomainException.Invalid("endpoint", "Enter the receiver's address (at most 2000 characters).");
        if (kind == SiemKinds.Syslog) ParseHostPort(endpoint);
        else if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps) || !string.IsNullOrEmpty(uri.UserInfo))
            throw DomainException.Invalid("endpoint", "Enter an absolute http:// or https:// URL without credentials.");
        var secret = draft.Secret?.Trim();
        if (kind != SiemKinds.Syslog && string.IsNullOrEmpty(secret))
            throw DomainException.Invalid("secret", kind == SiemKinds.SplunkHec ? "Enter the HEC token." : "Enter the Datadog API key.");
        if (secret is { Length: > 500 }) throw DomainException.Invalid("secret", "The token is at most 500 characters.");
        if (draft.BatchSize is < 1 or > 5000) throw DomainException.Invalid("batchSize", "The batch size is 1 to 5000 events.");
        var types = string.IsNullOrWhiteSpace(draft.EventTypes) ? null
            : string.Join(',', draft.EventTypes.Split([',', '\n', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Distinct());
        if (types is { Length: > 1000 }) throw DomainException.Invalid("eventTypes", "The event-type filter is at most 1000 characters.");
        if (types is not null && types.Split(',').Any(t => t.Length > 64 || !t.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '.' or '_')))
            throw DomainException.Invalid("eventTypes", "Event types are lower-case names like gateway.query_executed, or prefixes ending in '.' like auth.");

        await using var db = await dbFactory.CreateDbContextAsync(ct);
        if (await db.Set<SiemIntegration>().CountAsync(i => i.ProjectId == projectId, ct) >= MaxPerProject)
            throw DomainException.Conflict($"A project can have at most {MaxPerProject} SIEM integrations.");
        var now = clock.GetUtcNow();
        var i = new SiemIntegration
        {
            ProjectId = projectId, Name = name, Kind = kind, Format = format, Endpoint = endpoint, UseTls = draft.UseTls && kind == SiemKinds.Syslog,
            EventTypes = types, BatchSize = kind == SiemKinds.Datadog ? Math.Min(draft.BatchSize, SiemExporter.MaxDatadogEntries) : draft.BatchSize,
            CreatedBy = actor, CreatedAt = now, NextAttemptAt = now,
        };
        if (!string.IsNullOrEmpty(secret)) i.SecretProtected = secrets.Protect(secret, SiemExporter.SecretPurpose(i.Id));
        db.Add(i);
        WebhookService.Change(db, projectId, i.Id, "created", null, Describe(i), actor, now, "siem");
        await db.SaveChangesAsync(ct);
        await RecordAsync(db, projectId, actor, "integration.siem_created", i.Id, null, Describe(i), ct);
        return (await ListAsync(projectId, 0, MaxPerProject, ct)).Items.First(r => r.Id == i.Id);
    }

    public static (string Host, int Port) ParseHostPort(string endpoint)
    {
        var colon = endpoint.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(endpoint[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
            throw DomainException.Invalid("endpoint", "Enter the syslog receiver as host:port, e.g. siem.example.com:6514.");
        var host = endpoint[..colon].Trim('[', ']');
        if (host.Length == 0 || host.Any(char.IsWhiteSpace)) throw DomainException.Invalid("endpoint", "Enter the syslog receiver as host:port.");
        return (host, port);
    }

    public async Task<Paged<SiemRow>> ListAsync(Guid projectId, int skip = 0, int take = 20, CancellationToken ct = default)
    {
        take = Math.Clamp(take, 1, 100);
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var q = db.Set<SiemIntegration>().AsNoTracking().Where(i => i.ProjectId == projectId);
        var total = await q.CountAsync(ct);
        var items = await q.OrderBy(i => i.CreatedAt).ThenBy(i => i.Id).Skip(Math.Max(0, skip)).Take(take).ToListAsync(ct);
        var head = await db.AuditChainHeads.Where(h => h.ProjectId == projectId).Select(h => (long?)h.Seq).FirstOrDefaultAsync(ct) ?? 0;
        var now = clock.GetUtcNow();
        var rows = new List<SiemRow>();
        foreach (var i in items)
        {
            var behind = Math.Max(0, head - i.CursorSeq);
            TimeSpan? age = null;
            if (behind > 0)
            {
                var oldest = await db.AuditEvents.Where(e => e.ProjectId == projectId && e.Seq > i.CursorSeq).OrderBy(e => e.Seq)
                    .Select(e => (DateTimeOffset?)e.OccurredAt).FirstOrDefaultAsync(ct);
                if (oldest is { } o) age = now - o > TimeSpan.Zero ? now - o : TimeSpan.Zero;
            }
            rows.Add(new SiemRow(i.Id, i.Name, i.Kind, i.Format, i.Endpoint, i.UseTls, i.EventTypes, i.BatchSize, i.Status, i.CursorSeq, behind, age,
                i.LastSuccessAt, i.LastError, i.LastErrorAt, i.ExportedCount, i.Attempts, i.NextAttemptAt, i.SecretProtected is not null));
        }
        return new Paged<SiemRow>(rows, total);
    }

    public Task PauseAsync(Guid projectId, Guid id, Guid actor, CancellationToken ct = default) => SetStatusAsync(projectId, id, false, actor, ct);
    /// <summary>Resumes a paused or stopped integration: it retries the batch that was refused at once.</summary>
    public Task ResumeAsync(Guid projectId, Guid id, Guid actor, CancellationToken ct = default) => SetStatusAsync(projectId, id, true, actor, ct);

    private async Task SetStatusAsync(Guid projectId, Guid id, bool resume, Guid actor, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var i = await Find(db, projectId, id, ct);
        var now = clock.GetUtcNow();
        var before = Describe(i);
        if (resume)
        {
            if (i.Status is SiemStatus.Active or SiemStatus.Retrying) return;
            i.Status = SiemStatus.Active;
            i.Attempts = 0;
            i.NextAttemptAt = now;
        }
        else
        {
            if (i.Status == SiemStatus.Paused) return;
            i.Status = SiemStatus.Paused;
        }
        WebhookService.Change(db, projectId, i.Id, resume ? "resumed" : "paused", before, Describe(i), actor, now, "siem");
        await db.SaveChangesAsync(ct);
        await RecordAsync(db, projectId, actor, resume ? "integration.siem_resumed" : "integration.siem_paused", i.Id, before, Describe(i), ct);
    }

    public async Task DeleteAsync(Guid projectId, Guid id, Guid actor, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var i = await Find(db, projectId, id, ct);
        var now = clock.GetUtcNow();
        var before = Describe(i);
        db.Remove(i);
        WebhookService.Change(db, projectId, i.Id, "deleted", before, null, actor, now, "siem");
        await db.SaveChangesAsync(ct);
        await RecordAsync(db, projectId, actor, "integration.siem_deleted", i.Id, before, null, ct);
    }

    /// <summary>Sends one test event to the receiver and reports its answer; the cursor does not move.</summary>
    public async Task<SiemSendResult> TestConnectionAsync(Guid projectId, Guid id, CancellationToken ct = default)
    {
        SiemIntegration i;
        await using (var db = await dbFactory.CreateDbContextAsync(ct)) i = await Find(db, projectId, id, ct);
        return await exporter.SendTestAsync(i, ct);
    }

    private static async Task<SiemIntegration> Find(PortalDbContext db, Guid projectId, Guid id, CancellationToken ct) =>
        await db.Set<SiemIntegration>().FirstOrDefaultAsync(i => i.Id == id && i.ProjectId == projectId, ct) ?? throw DomainException.NotFound("Integration");

    private static string Describe(SiemIntegration i) =>
        PortalAudit.Json(new { name = i.Name, kind = i.Kind, format = i.Format, endpoint = i.Endpoint, tls = i.UseTls, event_types = i.EventTypes, batch_size = i.BatchSize, status = i.Status })!;

    private async Task RecordAsync(PortalDbContext db, Guid projectId, Guid actor, string eventType, Guid subject, string? before, string? after, CancellationToken ct) =>
        await audit.RecordAsync(new AuditEventDraft
        {
            ProjectId = projectId, EventType = eventType, Actor = await PortalAudit.UserAsync(db, projectId, actor, ct),
            ResourceType = "siem_integration", ResourceId = subject.ToString(), BeforeState = before, AfterState = after,
        }, ct);
}
