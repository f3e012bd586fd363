using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Portal.Domain.Persistence;

namespace Portal.Domain.Audit;

/// <summary>
/// Writes portal actions (member, suite, API key and rate-limit changes) to the tamper-evident audit trail.
/// <para>
/// Ordering, and why: each change is committed first (with its row in the feature's *_changes table, in the same
/// transaction as the change), then its audit event is appended. Writing both in one transaction is not practical:
/// the <see cref="AuditWriter"/> group-commits on its own connection and serializes each project's chain under a
/// lock, so taking that lock inside a feature's (serializable) transaction would stall every gateway query of the
/// project and, on SQLite, deadlock against the writer's own connection. Appending first is worse: an event would
/// claim a change that a later check (last admin, concurrent rotation) then refuses.
/// </para>
/// <para>
/// So the *_changes row is the transactional record, and the caller learns of the change only once its audit event
/// is durable: if the append fails, <see cref="RecordAsync"/> throws <see cref="ErrorKind.Unavailable"/> and the
/// change is not reported as done (the message says it may have been saved, so the user checks before retrying),
/// and the failure is logged with the change's identity so an operator can reconcile it from the *_changes table.
/// </para>
/// </summary>
public sealed class PortalAudit(AuditWriter writer, ILogger<PortalAudit>? logger = null)
{
    private readonly ILogger log = (ILogger?)logger ?? NullLogger.Instance;

    // The JSON is stored and exported, never written into HTML unencoded (pages encode on output), so keep non-ASCII
    // text and characters such as < and ' readable instead of \u-escaping them.
    private static readonly JsonSerializerOptions JsonOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Sanitized JSON for before/after states and details (callers pass no secrets).</summary>
    public static string? Json(object? value) => value is null ? null : JsonSerializer.Serialize(value, JsonOptions);

    /// <summary>
    /// The portal user who acted, with their e-mail and their role in the project at the time (or "org_admin" for an
    /// organization admin who is not a member). <see cref="Guid.Empty"/> is the portal itself.
    /// </summary>
    public static async Task<AuditActor> UserAsync(PortalDbContext db, Guid projectId, Guid userId, CancellationToken ct)
    {
        if (userId == Guid.Empty) return AuditActor.System;
        var user = await db.Users.AsNoTracking().Where(u => u.Id == userId)
            .Select(u => new { u.Email, u.IsOrganizationAdmin }).FirstOrDefaultAsync(ct);
        var role = await db.ProjectMembers.AsNoTracking().Where(m => m.ProjectId == projectId && m.UserId == userId)
            .Select(m => m.Role).FirstOrDefaultAsync(ct);
        return new AuditActor("user", userId.ToString(), user?.Email, role ?? (user?.IsOrganizationAdmin == true ? "org_admin" : null));
    }

    /// <summary>Appends the event of a change that has just been committed; see the class remarks for failure.</summary>
    public async Task RecordAsync(AuditEventDraft draft, CancellationToken ct = default)
    {
        try
        {
            await writer.AppendAsync(draft, ct);
        }
        catch (DomainException e) when (e.Kind == ErrorKind.Unavailable)
        {
            log.LogError("Portal change {EventType} on {ResourceType} {ResourceId} in project {ProjectId} was committed but its audit event could not be written",
                draft.EventType, draft.ResourceType, draft.ResourceId, draft.ProjectId);
            throw new DomainException(ErrorKind.Unavailable,
                "The audit trail could not record this change, so it is not confirmed. It may have been saved: reload to check before trying again.");
        }
    }
}
