using System.Data;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Portal.Domain.Audit;
using Portal.Domain.Integrations;
using Portal.Domain.Persistence;
using Portal.Domain.Security.ApiKeys;
using Portal.Domain.Security.RateLimits;
using Portal.Domain.Tenancy;

namespace Portal.Domain.Security.Alerts;

/// <summary>
/// Something a detector found. Findings with the same fingerprint (type + rule + subject) within
/// <see cref="AlertService.DedupeWindow"/> of an active alert update that alert instead of opening another one.
/// </summary>
public sealed record AlertFinding(
    Guid ProjectId, string Type, string Rule, string Severity, string Source,
    string SubjectType, string SubjectId, string? SubjectLabel, Guid? KeyId, Guid? UserId,
    string Title, string Description, object Evidence, IReadOnlyList<Guid> EventIds,
    DateTimeOffset FirstSeenAt, DateTimeOffset LastSeenAt, int Count = 1)
{
    public string Fingerprint => $"{Type}|{Rule}|{SubjectType}:{SubjectId}";
}

/// <summary>What staging a batch of findings did.</summary>
public sealed record RaiseResult(int Created, int Updated, int Suppressed, int AlreadyKnown)
{
    public static readonly RaiseResult None = new(0, 0, 0, 0);
    public RaiseResult Add(RaiseResult o) => new(Created + o.Created, Updated + o.Updated, Suppressed + o.Suppressed, AlreadyKnown + o.AlreadyKnown);
}

public sealed record AlertFilter(string? Status = null, string? Type = null, string? Severity = null, Guid? Assignee = null,
    DateTimeOffset? From = null, DateTimeOffset? To = null, bool ActiveOnly = false);

public sealed record AlertRow(Guid Id, string Type, string Rule, string Severity, string Status, string Title, string SubjectType, string SubjectId,
    string? SubjectLabel, int Occurrences, DateTimeOffset FirstSeenAt, DateTimeOffset LastSeenAt, DateTimeOffset CreatedAt, Guid? AssigneeId, string? AssigneeEmail, string Source);

public sealed record AlertCounters(int Open, int Acknowledged, int OpenCritical, TimeSpan? MeanTimeToAcknowledge, TimeSpan? MeanTimeToResolve, int ResolvedLast30Days)
{
    public int Active => Open + Acknowledged;
}

public sealed record AlertTimelineEvent(Guid Id, Guid ChainId, long Seq, DateTimeOffset OccurredAt, string EventType, string ActorType, string? ActorId, string? ActorEmail,
    string? ClientIp, bool Success, string? ErrorMessage, string SecurityLevel, string? Details, long? RowsReturned);

public sealed record AlertDetail(SecurityAlert Alert, string? AssigneeEmail, IReadOnlyList<SecurityAlertChangeRow> Changes, IReadOnlyList<AlertTimelineEvent> Timeline,
    IReadOnlyList<AlertTimelineEvent> SubjectActivity, string? KeyName, string? KeyPrefix, bool KeyRevoked, Guid? MemberId, bool MemberSuspended);

public sealed record SecurityAlertChangeRow(Guid Id, string Action, string? Before, string? After, string? Note, Guid ChangedBy, string? ChangedByEmail, DateTimeOffset ChangedAt);

public sealed record TriageMember(Guid UserId, string Email, string Role);

/// <summary>
/// Security alerts: raising (de-duplicated, suppressible, with their outbox message and in-portal notifications in the
/// same transaction), the triage queue and its state machine (open → acknowledged → resolved | dismissed, reopen), and
/// containment from an alert (revoke the key, suspend the member, tighten a rate limit) through the owning services.
/// Every triage action is recorded in security_alert_changes and then in the audit trail (see <see cref="PortalAudit"/>).
/// </summary>
public sealed class AlertService(IDbContextFactory<PortalDbContext> dbFactory, TimeProvider clock, PortalAudit audit, ApiKeyService keys, RateLimitService limits,
    IServiceScopeFactory scopes)
{
    public const int MaxEventIds = 50;
    public const int MaxNote = 2000;
    public const int MaxSuppressDays = 365;
    /// <summary>A finding this close after an active alert's last sighting is the same incident.</summary>
    public static readonly TimeSpan DedupeWindow = TimeSpan.FromHours(1);

    // Raising is serialized in this process so two gateway requests of one burst cannot both open an alert.
    private static readonly SemaphoreSlim RaiseGate = new(1, 1);

    // ---------------------------------------------------------------- raising

    /// <summary>Raises findings in their own transaction (the gateway's real-time path).</summary>
    public async Task<RaiseResult> RaiseAsync(IReadOnlyList<AlertFinding> findings, CancellationToken ct = default)
    {
        if (findings.Count == 0) return RaiseResult.None;
        await RaiseGate.WaitAsync(ct);
        try
        {
            for (var attempt = 1; ; attempt++)
            {
                await using var db = await dbFactory.CreateDbContextAsync(ct);
                try
                {
                    await using var tx = await db.Database.BeginTransactionAsync(db.IsSqlite ? IsolationLevel.Serializable : IsolationLevel.RepeatableRead, ct);
                    var result = await StageAsync(db, findings, clock.GetUtcNow(), ct);
                    await db.SaveChangesAsync(ct);
                    await tx.CommitAsync(ct);
                    return result;
                }
                catch (Exception e) when (attempt < 4 && IsConflict(e)) { await Task.Delay(20 * attempt, ct); }
            }
        }
        finally { RaiseGate.Release(); }
    }

    /// <summary>
    /// Stages findings on the caller's context (the scan commits them with its watermark). De-duplication: a finding no
    /// later than the latest alert with its fingerprint is already known (so re-running a scan raises nothing); one within
    /// <see cref="DedupeWindow"/> of an active alert updates it; otherwise a new alert opens, unless suppressed.
    /// </summary>
    public static async Task<RaiseResult> StageAsync(PortalDbContext db, IReadOnlyList<AlertFinding> findings, DateTimeOffset now, CancellationToken ct)
    {
        int created = 0, updated = 0, suppressed = 0, known = 0;
        var batch = new Dictionary<(Guid, string), SecurityAlert>();
        var suppressions = new Dictionary<Guid, List<SecuritySuppression>>();
        foreach (var f in findings.OrderBy(f => f.LastSeenAt))
        {
            if (!suppressions.TryGetValue(f.ProjectId, out var active))
                suppressions[f.ProjectId] = active = await db.Set<SecuritySuppression>().AsNoTracking()
                    .Where(s => s.ProjectId == f.ProjectId && s.ExpiresAt > now).ToListAsync(ct);
            var fingerprint = Cut(f.Fingerprint, 300);
            if (!batch.TryGetValue((f.ProjectId, fingerprint), out var latest))
                latest = await db.SecurityAlerts.Where(a => a.ProjectId == f.ProjectId && a.Fingerprint == fingerprint)
                    .OrderByDescending(a => a.LastSeenAt).ThenByDescending(a => a.Id).FirstOrDefaultAsync(ct);
            if (latest is not null && latest.LastSeenAt >= f.LastSeenAt) { known++; continue; }
            if (active.Any(s => s.Type == f.Type && s.Rule == f.Rule && s.SubjectType == f.SubjectType && s.SubjectId == f.SubjectId)) { suppressed++; continue; }

            if (latest is not null && AlertStatuses.IsActive(latest.Status) && f.FirstSeenAt - latest.LastSeenAt <= DedupeWindow)
            {
                var escalated = AlertSeverities.Rank(f.Severity) < AlertSeverities.Rank(latest.Severity);
                latest.Occurrences += Math.Max(1, f.Count);
                latest.LastSeenAt = f.LastSeenAt;
                if (f.FirstSeenAt < latest.FirstSeenAt) latest.FirstSeenAt = f.FirstSeenAt;
                if (escalated) latest.Severity = f.Severity;
                latest.EvidenceJson = PortalAudit.Json(f.Evidence) ?? "{}";
                latest.AuditEventIds = MergeIds(latest.AuditEventIds, f.EventIds);
                latest.UpdatedAt = now;
                Outbox.Add(db, f.ProjectId, OutboxEvents.AlertUpdated, Payload(latest, "occurred_again"), now, "security_alert", latest.Id.ToString());
                if (escalated)
                    await NotificationService.AddForPermissionAsync(db, f.ProjectId, Permissions.AlertsTriage, OutboxEvents.AlertUpdated,
                        $"Alert escalated to {latest.Severity}: {latest.Title}", latest.Description, Link(latest), now, ct);
                updated++;
                batch[(f.ProjectId, fingerprint)] = latest;
                continue;
            }

            var alert = new SecurityAlert
            {
                ProjectId = f.ProjectId, Type = f.Type, Rule = f.Rule, Severity = f.Severity, Source = f.Source, Fingerprint = fingerprint,
                Title = Cut(f.Title, 300), Description = Cut(f.Description, 2000), SubjectType = f.SubjectType, SubjectId = Cut(f.SubjectId, 200),
                SubjectLabel = f.SubjectLabel is null ? null : Cut(f.SubjectLabel, 256), KeyId = f.KeyId, UserId = f.UserId,
                EvidenceJson = PortalAudit.Json(f.Evidence) ?? "{}", AuditEventIds = MergeIds("[]", f.EventIds), Occurrences = Math.Max(1, f.Count),
                FirstSeenAt = f.FirstSeenAt, LastSeenAt = f.LastSeenAt, CreatedAt = now, UpdatedAt = now,
            };
            db.SecurityAlerts.Add(alert);
            Outbox.Add(db, f.ProjectId, OutboxEvents.AlertCreated, Payload(alert, "created"), now, "security_alert", alert.Id.ToString());
            await NotificationService.AddForPermissionAsync(db, f.ProjectId, Permissions.AlertsTriage, OutboxEvents.AlertCreated,
                $"{Capitalize(alert.Severity)} alert: {alert.Title}", alert.Description, Link(alert), now, ct);
            batch[(f.ProjectId, fingerprint)] = alert;
            created++;
        }
        return new RaiseResult(created, updated, suppressed, known);
    }

    private static object Payload(SecurityAlert a, string change) => new
    {
        id = a.Id, project_id = a.ProjectId, change, type = a.Type, rule = a.Rule, severity = a.Severity, status = a.Status, title = a.Title,
        subject_type = a.SubjectType, subject_id = a.SubjectId, occurrences = a.Occurrences, first_seen_at = a.FirstSeenAt, last_seen_at = a.LastSeenAt,
    };

    private static string Link(SecurityAlert a) => $"/p/{a.ProjectId}/alerts/{a.Id}";

    private static string MergeIds(string json, IReadOnlyList<Guid> add)
    {
        var ids = ParseIds(json);
        foreach (var id in add) if (!ids.Contains(id)) ids.Add(id);
        // Keep the first evidence and the most recent: the start of an incident and where it is now.
        if (ids.Count > MaxEventIds) ids = [.. ids.Take(10), .. ids.Skip(ids.Count - (MaxEventIds - 10))];
        return JsonSerializer.Serialize(ids);
    }

    public static List<Guid> ParseIds(string json)
    {
        try { return JsonSerializer.Deserialize<List<Guid>>(json) ?? []; }
        catch (JsonException) { return []; }
    }

    // ---------------------------------------------------------------- reading

    public async Task<Page<AlertRow>> ListAsync(Guid projectId, AlertFilter filter, int skip, int take, CancellationToken ct = default)
    {
        take = Math.Clamp(take, 1, 200);
        skip = Math.Max(0, skip);
        if (filter.Status is { } st && !AlertStatuses.All.Contains(st)) throw DomainException.Invalid("status", $"Status must be one of {string.Join(", ", AlertStatuses.All)}.");
        if (filter.Type is { } ty && !AlertTypes.All.Contains(ty)) throw DomainException.Invalid("type", $"Type must be one of {string.Join(", ", AlertTypes.All)}.");
        if (filter.Severity is { } sv && !AlertSeverities.All.Contains(sv)) throw DomainException.Invalid("severity", $"Severity must be one of {string.Join(", ", AlertSeverities.All)}.");
        if (filter.From is { } f && filter.To is { } t && t <= f) throw DomainException.Invalid("to", "The end of the date range must be after its start.");
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var q = db.SecurityAlerts.AsNoTracking().Where(a => a.ProjectId == projectId);
        if (filter.Status is { } status) q = q.Where(a => a.Status == status);
        else if (filter.ActiveOnly) q = q.Where(a => a.Status == AlertStatuses.Open || a.Status == AlertStatuses.Acknowledged);
        if (filter.Type is { } type) q = q.Where(a => a.Type == type);
        if (filter.Severity is { } severity) q = q.Where(a => a.Severity == severity);
        if (filter.Assignee is { } assignee) q = q.Where(a => a.AssigneeId == assignee);
        if (filter.From is { } from) q = q.Where(a => a.LastSeenAt >= from);
        if (filter.To is { } to) q = q.Where(a => a.FirstSeenAt < to);
        var total = await q.CountAsync(ct);
        var items = await q
            .OrderBy(a => a.Severity == AlertSeverities.Critical ? 0 : a.Severity == AlertSeverities.Warning ? 1 : 2)
            .ThenBy(a => a.CreatedAt).ThenBy(a => a.Id)
            .Skip(skip).Take(take)
            .Select(a => new AlertRow(a.Id, a.Type, a.Rule, a.Severity, a.Status, a.Title, a.SubjectType, a.SubjectId, a.SubjectLabel, a.Occurrences,
                a.FirstSeenAt, a.LastSeenAt, a.CreatedAt, a.AssigneeId, db.Users.Where(u => u.Id == a.AssigneeId).Select(u => u.Email).FirstOrDefault(), a.Source))
            .ToListAsync(ct);
        return new Page<AlertRow>(items, total, skip, take);
    }

    /// <summary>Counts for the nav badge and the Enterprise tile, and mean times to acknowledge and resolve (alerts of the last 30 days).</summary>
    public async Task<AlertCounters> CountersAsync(Guid projectId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var q = db.SecurityAlerts.AsNoTracking().Where(a => a.ProjectId == projectId);
        var open = await q.CountAsync(a => a.Status == AlertStatuses.Open, ct);
        var acked = await q.CountAsync(a => a.Status == AlertStatuses.Acknowledged, ct);
        var critical = await q.CountAsync(a => a.Status == AlertStatuses.Open && a.Severity == AlertSeverities.Critical, ct);
        var since = clock.GetUtcNow().AddDays(-30);
        var times = await q.Where(a => a.CreatedAt >= since && (a.AcknowledgedAt != null || a.ResolvedAt != null))
            .Select(a => new { a.CreatedAt, a.AcknowledgedAt, a.ResolvedAt, a.Status }).ToListAsync(ct);
        var ack = times.Where(t => t.AcknowledgedAt is not null).Select(t => (t.AcknowledgedAt!.Value - t.CreatedAt).Ticks).ToList();
        var res = times.Where(t => t.ResolvedAt is not null && t.Status is AlertStatuses.Resolved or AlertStatuses.Dismissed)
            .Select(t => (t.ResolvedAt!.Value - t.CreatedAt).Ticks).ToList();
        return new AlertCounters(open, acked, critical,
            ack.Count == 0 ? null : TimeSpan.FromTicks((long)ack.Average()), res.Count == 0 ? null : TimeSpan.FromTicks((long)res.Average()), res.Count);
    }

    public async Task<int> ActiveCountAsync(Guid projectId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        return await db.SecurityAlerts.CountAsync(a => a.ProjectId == projectId && (a.Status == AlertStatuses.Open || a.Status == AlertStatuses.Acknowledged), ct);
    }

    public async Task<AlertDetail> GetAsync(Guid projectId, Guid alertId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var alert = await db.SecurityAlerts.AsNoTracking().FirstOrDefaultAsync(a => a.Id == alertId && a.ProjectId == projectId, ct)
                    ?? throw DomainException.NotFound("Alert");
        var assignee = alert.AssigneeId is { } aid ? await db.Users.Where(u => u.Id == aid).Select(u => u.Email).FirstOrDefaultAsync(ct) : null;
        var changes = await db.Set<SecurityAlertChange>().AsNoTracking().Where(c => c.ProjectId == projectId && c.AlertId == alertId)
            .OrderBy(c => c.ChangedAt).ThenBy(c => c.Id)
            .Select(c => new SecurityAlertChangeRow(c.Id, c.Action, c.Before, c.After, c.Note, c.ChangedBy, db.Users.Where(u => u.Id == c.ChangedBy).Select(u => u.Email).FirstOrDefault(), c.ChangedAt))
            .ToListAsync(ct);
        var ids = ParseIds(alert.AuditEventIds);
        // Brute-force alerts may cite organization-chain events (sign-in failures); every other event is this project's.
        var chains = new[] { projectId, AuditEventDraft.OrganizationChain };
        var timeline = await db.AuditEvents.AsNoTracking().Where(e => chains.Contains(e.ProjectId) && ids.Contains(e.Id))
            .OrderBy(e => e.OccurredAt).ThenBy(e => e.Seq).Select(Timeline()).ToListAsync(ct);
        var activity = new List<AlertTimelineEvent>();
        if (alert.SubjectType is "api_key" or "user")
            activity = await db.AuditEvents.AsNoTracking().Where(e => e.ProjectId == projectId && e.ActorId == alert.SubjectId)
                .OrderByDescending(e => e.OccurredAt).ThenByDescending(e => e.Seq).Take(20).Select(Timeline()).ToListAsync(ct);
        string? keyName = null, keyPrefix = null;
        var keyRevoked = false;
        if (alert.KeyId is { } kid && await db.ApiKeys.AsNoTracking().FirstOrDefaultAsync(k => k.Id == kid && k.ProjectId == projectId, ct) is { } key)
        {
            keyName = key.Name; keyPrefix = key.Prefix; keyRevoked = key.RevokedAt is not null;
        }
        Guid? memberId = null;
        var suspended = false;
        if (alert.UserId is { } uid && await db.ProjectMembers.AsNoTracking().FirstOrDefaultAsync(m => m.ProjectId == projectId && m.UserId == uid, ct) is { } member)
        {
            memberId = member.Id; suspended = member.Suspended;
        }
        return new AlertDetail(alert, assignee, changes, timeline, activity, keyName, keyPrefix, keyRevoked, memberId, suspended);
    }

    private static System.Linq.Expressions.Expression<Func<AuditEvent, AlertTimelineEvent>> Timeline() => e =>
        new AlertTimelineEvent(e.Id, e.ProjectId, e.Seq, e.OccurredAt, e.EventType, e.ActorType, e.ActorId, e.ActorEmail, e.ClientIp, e.Success, e.ErrorMessage,
            e.SecurityLevel, e.Details, e.RowsReturned);

    /// <summary>Members who may be assigned alerts (their role holds alerts.triage).</summary>
    public async Task<IReadOnlyList<TriageMember>> AssigneesAsync(Guid projectId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var roles = Roles.All.Where(r => Permissions.RoleHas(r, Permissions.AlertsTriage)).ToList();
        var members = await db.ProjectMembers.AsNoTracking().Where(m => m.ProjectId == projectId && !m.Suspended && roles.Contains(m.Role))
            .Select(m => new { m.UserId, m.Role }).ToListAsync(ct);
        var ids = members.Select(m => m.UserId).ToList();
        var emails = await db.Users.AsNoTracking().Where(u => ids.Contains(u.Id)).Select(u => new { u.Id, u.Email }).ToDictionaryAsync(u => u.Id, u => u.Email ?? "", ct);
        return members.Select(m => new TriageMember(m.UserId, emails.GetValueOrDefault(m.UserId, ""), m.Role)).OrderBy(m => m.Email, StringComparer.Ordinal).ToList();
    }

    public async Task<IReadOnlyList<SecuritySuppression>> SuppressionsAsync(Guid projectId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var now = clock.GetUtcNow();
        return await db.Set<SecuritySuppression>().AsNoTracking().Where(s => s.ProjectId == projectId && s.ExpiresAt > now)
            .OrderBy(s => s.ExpiresAt).Take(500).ToListAsync(ct);
    }

    // ---------------------------------------------------------------- triage

    public Task AcknowledgeAsync(Guid projectId, Guid alertId, Guid actor, CancellationToken ct = default) =>
        TransitionAsync(projectId, [alertId], actor, "acknowledged", null, (a, now) =>
        {
            if (a.Status != AlertStatuses.Open) throw DomainException.Conflict($"Only an open alert can be acknowledged; this one is {a.Status}.", "status");
            a.Status = AlertStatuses.Acknowledged;
            a.AcknowledgedAt = now;
            a.AcknowledgedBy = actor;
            a.AssigneeId ??= actor;
        }, ct);

    public Task ResolveAsync(Guid projectId, Guid alertId, string? note, Guid actor, CancellationToken ct = default) =>
        BulkResolveAsync(projectId, [alertId], note, actor, ct);

    public Task BulkAcknowledgeAsync(Guid projectId, IReadOnlyList<Guid> alertIds, Guid actor, CancellationToken ct = default) =>
        TransitionAsync(projectId, alertIds, actor, "acknowledged", null, (a, now) =>
        {
            if (a.Status != AlertStatuses.Open) throw DomainException.Conflict($"Only open alerts can be acknowledged; \"{a.Title}\" is {a.Status}.", "status");
            a.Status = AlertStatuses.Acknowledged;
            a.AcknowledgedAt = now;
            a.AcknowledgedBy = actor;
            a.AssigneeId ??= actor;
        }, ct);

    public Task BulkResolveAsync(Guid projectId, IReadOnlyList<Guid> alertIds, string? note, Guid actor, CancellationToken ct = default)
    {
        var text = RequireNote(note, "A resolution note is required: say what was found and what was done.");
        return TransitionAsync(projectId, alertIds, actor, "resolved", text, (a, now) =>
        {
            if (!AlertStatuses.IsActive(a.Status)) throw DomainException.Conflict($"Only open or acknowledged alerts can be resolved; \"{a.Title}\" is {a.Status}.", "status");
            a.AcknowledgedAt ??= now;
            a.AcknowledgedBy ??= actor;
            a.Status = AlertStatuses.Resolved;
            a.ResolutionNote = text;
            a.ResolvedAt = now;
            a.ResolvedBy = actor;
        }, ct);
    }

    /// <summary>Dismisses as a false positive; with <paramref name="suppressDays"/> &gt; 0, similar alerts (same type, rule and subject) are suppressed that long.</summary>
    public async Task DismissAsync(Guid projectId, Guid alertId, string? note, int suppressDays, Guid actor, CancellationToken ct = default)
    {
        var text = RequireNote(note, "Say why this is a false positive; the note goes to the audit trail.");
        if (suppressDays is < 0 or > MaxSuppressDays) throw DomainException.Invalid("suppressDays", $"Suppress for 0 to {MaxSuppressDays} days.");
        await TransitionAsync(projectId, [alertId], actor, "dismissed", text, (a, now) =>
        {
            if (!AlertStatuses.IsActive(a.Status)) throw DomainException.Conflict($"Only open or acknowledged alerts can be dismissed; this one is {a.Status}.", "status");
            a.AcknowledgedAt ??= now;
            a.AcknowledgedBy ??= actor;
            a.Status = AlertStatuses.Dismissed;
            a.ResolutionNote = text;
            a.ResolvedAt = now;
            a.ResolvedBy = actor;
        }, ct, (db, a, now) =>
        {
            if (suppressDays > 0)
                db.Add(new SecuritySuppression
                {
                    ProjectId = projectId, Type = a.Type, Rule = a.Rule, SubjectType = a.SubjectType, SubjectId = a.SubjectId, Reason = text,
                    AlertId = a.Id, CreatedBy = actor, CreatedAt = now, ExpiresAt = now.AddDays(suppressDays),
                });
            return suppressDays > 0 ? new { suppress_days = suppressDays } : null;
        });
    }

    public Task ReopenAsync(Guid projectId, Guid alertId, string? note, Guid actor, CancellationToken ct = default) =>
        TransitionAsync(projectId, [alertId], actor, "reopened", string.IsNullOrWhiteSpace(note) ? null : CheckNote(note), (a, now) =>
        {
            if (AlertStatuses.IsActive(a.Status)) throw DomainException.Conflict($"Only a resolved or dismissed alert can be reopened; this one is {a.Status}.", "status");
            a.Status = AlertStatuses.Open;
            a.ResolvedAt = null;
            a.ResolvedBy = null;
            a.AcknowledgedAt = null;
            a.AcknowledgedBy = null;
        }, ct);

    public async Task AssignAsync(Guid projectId, Guid alertId, Guid? assignee, Guid actor, CancellationToken ct = default)
    {
        if (assignee is { } who)
        {
            await using var db = await dbFactory.CreateDbContextAsync(ct);
            var role = await db.ProjectMembers.Where(m => m.ProjectId == projectId && m.UserId == who && !m.Suspended).Select(m => m.Role).FirstOrDefaultAsync(ct);
            if (!Permissions.RoleHas(role, Permissions.AlertsTriage))
                throw DomainException.Invalid("assignee", "Alerts can be assigned only to active members whose role may triage alerts.");
        }
        await TransitionAsync(projectId, [alertId], actor, "assigned", null, (a, _) =>
        {
            if (!AlertStatuses.IsActive(a.Status)) throw DomainException.Conflict($"Only open or acknowledged alerts can be assigned; this one is {a.Status}.", "status");
            a.AssigneeId = assignee;
        }, ct);
    }

    public async Task RemoveSuppressionAsync(Guid projectId, Guid suppressionId, Guid actor, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        await RequireTriageAsync(db, projectId, actor, ct);
        var s = await db.Set<SecuritySuppression>().FirstOrDefaultAsync(x => x.Id == suppressionId && x.ProjectId == projectId, ct)
                ?? throw DomainException.NotFound("Suppression");
        var now = clock.GetUtcNow();
        var before = PortalAudit.Json(new { type = s.Type, rule = s.Rule, subject_type = s.SubjectType, subject_id = s.SubjectId, expires_at = s.ExpiresAt, reason = s.Reason });
        db.Remove(s);
        if (s.AlertId is { } alertId)
            db.Add(new SecurityAlertChange { ProjectId = projectId, AlertId = alertId, Action = "suppression_removed", Before = before, ChangedBy = actor, ChangedAt = now });
        await db.SaveChangesAsync(ct);
        await audit.RecordAsync(new AuditEventDraft
        {
            ProjectId = projectId, EventType = "alert.suppression_removed", Actor = await PortalAudit.UserAsync(db, projectId, actor, ct),
            ResourceType = "alert_suppression", ResourceId = s.Id.ToString(), Action = "delete", BeforeState = before, OccurredAt = now,
        }, ct);
    }

    private static string RequireNote(string? note, string message)
    {
        if (string.IsNullOrWhiteSpace(note)) throw DomainException.Invalid("note", message);
        return CheckNote(note);
    }

    private static string CheckNote(string note)
    {
        var t = note.Trim();
        if (t.Length > MaxNote) throw DomainException.Invalid("note", $"The note is limited to {MaxNote} characters.");
        return t;
    }

    /// <summary>
    /// Applies one state change to each alert in one transaction (all or none: a bulk action with one invalid alert
    /// changes nothing and names it), then appends one audit event per alert.
    /// </summary>
    private async Task TransitionAsync(Guid projectId, IReadOnlyList<Guid> alertIds, Guid actor, string action, string? note,
        Action<SecurityAlert, DateTimeOffset> change, CancellationToken ct, Func<PortalDbContext, SecurityAlert, DateTimeOffset, object?>? extra = null)
    {
        if (alertIds.Count == 0) throw DomainException.Invalid("alerts", "Select at least one alert.");
        if (alertIds.Count > 200) throw DomainException.Invalid("alerts", "At most 200 alerts can be changed at once.");
        var ids = alertIds.Distinct().ToList();
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        await RequireTriageAsync(db, projectId, actor, ct);
        var now = clock.GetUtcNow();
        var drafts = new List<AuditEventDraft>();
        var auditActor = await PortalAudit.UserAsync(db, projectId, actor, ct);
        await using (var tx = await db.Database.BeginTransactionAsync(ct))
        {
            var alerts = await db.SecurityAlerts.Where(a => a.ProjectId == projectId && ids.Contains(a.Id)).ToListAsync(ct);
            // Another project's id answers exactly like a missing one.
            if (alerts.Count != ids.Count) throw DomainException.NotFound(ids.Count == 1 ? "Alert" : "One of the selected alerts");
            foreach (var a in alerts)
            {
                var before = State(a);
                change(a, now);
                a.UpdatedAt = now;
                var details = extra?.Invoke(db, a, now);
                var after = State(a);
                db.Add(new SecurityAlertChange { ProjectId = projectId, AlertId = a.Id, Action = action, Before = before, After = after, Note = note, ChangedBy = actor, ChangedAt = now });
                Outbox.Add(db, projectId, OutboxEvents.AlertUpdated, Payload(a, action), now, "security_alert", a.Id.ToString());
                drafts.Add(new AuditEventDraft
                {
                    ProjectId = projectId, EventType = "alert." + action, Actor = auditActor, ResourceType = "security_alert", ResourceId = a.Id.ToString(),
                    Action = action, BeforeState = before, AfterState = after,
                    Details = PortalAudit.Json(new { title = a.Title, type = a.Type, rule = a.Rule, note, extra = details }), OccurredAt = now,
                });
            }
            await db.SaveChangesAsync(ct);
            await tx.CommitAsync(ct);
        }
        foreach (var d in drafts) await audit.RecordAsync(d, ct);
    }

    private static string State(SecurityAlert a) => PortalAudit.Json(new { status = a.Status, severity = a.Severity, assignee = a.AssigneeId })!;

    /// <summary>The actor must be an active member whose role holds alerts.triage.</summary>
    public static async Task RequireTriageAsync(PortalDbContext db, Guid projectId, Guid actor, CancellationToken ct)
    {
        if (!await db.Projects.AnyAsync(p => p.Id == projectId, ct)) throw DomainException.NotFound("Project");
        var role = await db.ProjectMembers.Where(m => m.ProjectId == projectId && m.UserId == actor && !m.Suspended).Select(m => m.Role).FirstOrDefaultAsync(ct);
        if (!Permissions.RoleHas(role, Permissions.AlertsTriage)) throw DomainException.Forbidden("Your role in this project cannot triage security alerts.");
    }

    // ---------------------------------------------------------------- containment

    /// <summary>Revokes the alert's API key (through <see cref="ApiKeyService"/>, which audits the revocation) and records the containment.</summary>
    public async Task RevokeKeyAsync(Guid projectId, Guid alertId, string? reason, Guid actor, CancellationToken ct = default)
    {
        var alert = await ContainmentTargetAsync(projectId, alertId, actor, ct);
        if (alert.KeyId is not { } keyId) throw DomainException.Invalid("action", "This alert is not about an API key.");
        var why = string.IsNullOrWhiteSpace(reason) ? $"Contained from security alert: {alert.Title}" : reason.Trim();
        await keys.RevokeAsync(projectId, keyId, Cut(why, 500), actor, ct);
        await RecordContainmentAsync(projectId, alert, "revoke_key", new { key_id = keyId, reason = why }, actor, ct);
    }

    /// <summary>Suspends the alert's user in this project (through <see cref="MembershipService"/>, which audits it).</summary>
    public async Task SuspendMemberAsync(Guid projectId, Guid alertId, Guid actor, CancellationToken ct = default)
    {
        var alert = await ContainmentTargetAsync(projectId, alertId, actor, ct);
        if (alert.UserId is not { } userId) throw DomainException.Invalid("action", "This alert is not about a portal user.");
        if (userId == actor) throw DomainException.Invalid("action", "You cannot suspend yourself.");
        Guid memberId;
        await using (var db = await dbFactory.CreateDbContextAsync(ct))
            memberId = await db.ProjectMembers.Where(m => m.ProjectId == projectId && m.UserId == userId).Select(m => m.Id).FirstOrDefaultAsync(ct);
        if (memberId == Guid.Empty) throw DomainException.Conflict("This user is no longer a member of the project.");
        await using var scope = scopes.CreateAsyncScope();
        await scope.ServiceProvider.GetRequiredService<MembershipService>().SetSuspendedAsync(projectId, memberId, true, actor, ct);
        await RecordContainmentAsync(projectId, alert, "suspend_member", new { user_id = userId, member_id = memberId }, actor, ct);
    }

    /// <summary>
    /// Puts a tighter request limit on the alert's key or user (through <see cref="RateLimitService"/>, which audits it):
    /// updates the subject's own limit when one exists, otherwise adds one.
    /// </summary>
    public async Task TightenLimitAsync(Guid projectId, Guid alertId, int maxRequests, int windowSeconds, Guid actor, CancellationToken ct = default)
    {
        var alert = await ContainmentTargetAsync(projectId, alertId, actor, ct);
        var (scope, subject) = alert.KeyId is { } k ? (RateLimitScopes.Key, k.ToString("D"))
            : alert.UserId is { } u ? (RateLimitScopes.User, u.ToString("D"))
            : throw DomainException.Invalid("action", "This alert names no key or user to limit.");
        Guid? existing;
        await using (var db = await dbFactory.CreateDbContextAsync(ct))
            existing = await db.RateLimits.Where(r => r.ProjectId == projectId && r.Scope == scope && r.Subject == subject).Select(r => (Guid?)r.Id).FirstOrDefaultAsync(ct);
        var input = new RateLimitInput(scope, subject, maxRequests, null, windowSeconds);
        var limit = existing is { } id ? await limits.UpdateAsync(projectId, id, input, actor, ct) : await limits.CreateAsync(projectId, input, actor, ct);
        await RecordContainmentAsync(projectId, alert, "tighten_limit", new { rate_limit_id = limit.Id, scope, subject, max_requests = maxRequests, window_seconds = windowSeconds }, actor, ct);
    }

    private async Task<SecurityAlert> ContainmentTargetAsync(Guid projectId, Guid alertId, Guid actor, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        await RequireTriageAsync(db, projectId, actor, ct);
        return await db.SecurityAlerts.AsNoTracking().FirstOrDefaultAsync(a => a.Id == alertId && a.ProjectId == projectId, ct) ?? throw DomainException.NotFound("Alert");
    }

    private async Task RecordContainmentAsync(Guid projectId, SecurityAlert alert, string action, object details, Guid actor, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var now = clock.GetUtcNow();
        var json = PortalAudit.Json(details);
        db.Add(new SecurityAlertChange { ProjectId = projectId, AlertId = alert.Id, Action = "contained:" + action, After = json, ChangedBy = actor, ChangedAt = now });
        await db.SaveChangesAsync(ct);
        await audit.RecordAsync(new AuditEventDraft
        {
            ProjectId = projectId, EventType = "alert.contained", Actor = await PortalAudit.UserAsync(db, projectId, actor, ct),
            ResourceType = "security_alert", ResourceId = alert.Id.ToString(), Action = action, AfterState = json,
            Details = PortalAudit.Json(new { title = alert.Title, containment = action }), SecurityLevel = AuditSecurityLevel.Warning, OccurredAt = now,
        }, ct);
    }

    // ---------------------------------------------------------------- helpers

    private static string Cut(string s, int max) => s.Length <= max ? s : s[..(max - 1)] + "…";
    private static string Capitalize(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..];

    private static bool IsConflict(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
            if (e is Npgsql.PostgresException { SqlState: "40001" or "40P01" } or Microsoft.Data.Sqlite.SqliteException { SqliteErrorCode: 5 or 6 }) return true;
        return false;
    }
}
