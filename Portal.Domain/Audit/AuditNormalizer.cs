using System.Text;
using System.Text.Json;

namespace Portal.Domain.Audit;

/// <summary>
/// Turns a draft into the exact values that are stored and hashed. Bounded text is cut to the column size instead of
/// refusing the event: an over-long user agent from a client must never make the audit (and so the request) fail.
/// NUL characters and unpaired surrogates are replaced with U+FFFD, because PostgreSQL text cannot hold NUL and UTF-8
/// cannot hold a lone surrogate — otherwise the stored text would differ from the hashed text.
/// </summary>
internal static class AuditNormalizer
{
    private static readonly HashSet<string> ActorTypes = ["user", "api_key", "agent", "system", "anonymous"];

    public static AuditEvent ToEvent(AuditEventDraft d, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(d);
        if (string.IsNullOrWhiteSpace(d.EventType)) throw DomainException.Invalid(nameof(d.EventType), "An audit event needs an event type.");
        if (d.ProjectId == AuditEventDraft.OrganizationChain && !d.EventType.TrimStart().StartsWith("auth.", StringComparison.Ordinal))
            throw DomainException.Invalid(nameof(d.ProjectId), "An audit event needs the project it belongs to.");
        if (d.Actor is null) throw DomainException.Invalid(nameof(d.Actor), "An audit event needs an actor (use AuditActor.System for the portal itself).");
        if (!ActorTypes.Contains(d.Actor.Type))
            throw DomainException.Invalid("Actor.Type", $"Actor type '{Cut(d.Actor.Type, 32)}' is not one of user, api_key, agent, system, anonymous.");
        var at = (d.OccurredAt ?? now).ToUniversalTime();
        // PostgreSQL keeps microseconds; hash what both providers give back.
        at = new DateTimeOffset(at.UtcTicks - at.UtcTicks % 10, TimeSpan.Zero);
        return new AuditEvent
        {
            ProjectId = d.ProjectId,
            Id = Guid.CreateVersion7(at),
            OccurredAt = at,
            EventType = Cut(d.EventType.Trim(), 64)!,
            ResourceType = Cut(d.ResourceType, 64),
            ResourceId = Cut(d.ResourceId, 200),
            Action = Cut(d.Action, 64),
            ActorType = d.Actor.Type,
            ActorId = Cut(d.Actor.Id, 200),
            ActorEmail = Cut(d.Actor.Email, 256),
            ActorRole = Cut(d.Actor.Role, 32),
            SessionId = Cut(d.Actor.SessionId, 128),
            Details = Clean(d.Details),
            BeforeState = Clean(d.BeforeState),
            AfterState = Clean(d.AfterState),
            Prompt = Clean(d.Prompt),
            SqlText = Clean(d.SqlText),
            TablesAccessed = JsonList(d.TablesAccessed),
            Success = d.Success,
            ErrorMessage = Cut(d.ErrorMessage, 2000),
            DurationMs = d.DurationMs,
            RowsReturned = d.RowsReturned,
            SecurityLevel = Level(d.SecurityLevel),
            DataClassifications = JsonList(d.DataClassifications),
            ClientIp = Cut(d.Actor.ClientIp, 64),
            UserAgent = Cut(d.Actor.UserAgent, 512),
            RequestId = Cut(d.Actor.RequestId, 128),
        };
    }

    public static string Level(AuditSecurityLevel level) => level switch
    {
        AuditSecurityLevel.Normal => "normal",
        AuditSecurityLevel.Warning => "warning",
        AuditSecurityLevel.Alert => "alert",
        _ => throw DomainException.Invalid(nameof(AuditEventDraft.SecurityLevel), $"Security level {(int)level} is not normal, warning or alert."),
    };

    private static string? JsonList(IReadOnlyList<string>? items) =>
        items is null ? null : Clean(JsonSerializer.Serialize(items.Select(i => Clean(i) ?? "")));

    private static string? Cut(string? s, int max)
    {
        s = Clean(s);
        if (s is null || s.Length <= max) return s;
        var n = max;
        if (char.IsHighSurrogate(s[n - 1])) n--;
        return s[..n];
    }

    private static string? Clean(string? s)
    {
        if (s is null || !s.AsSpan().ContainsAnyInRange('\uD800', '\uDFFF') && !s.Contains('\0')) return s;
        // The UTF-8 round trip replaces unpaired surrogates with U+FFFD, as a database driver would.
        return Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(s)).Replace('\0', '\uFFFD');
    }
}
