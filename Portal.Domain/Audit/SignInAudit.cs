using System.Text;

namespace Portal.Domain.Audit;

public enum SignInOutcome { Succeeded, Failed, LockedOut, SignedOut }

/// <summary>
/// One sign-in attempt or sign-out as the host saw it. <see cref="UserId"/> is null when the e-mail matched no account;
/// <see cref="AttemptedEmail"/> is what was typed (untrusted). <see cref="Method"/> is "password", "two_factor" or
/// "recovery_code"; <see cref="Reason"/> says why a failure failed ("wrong_password", "unknown_user", "invalid_code",
/// "not_allowed").
/// </summary>
public sealed record SignInEvent(
    SignInOutcome Outcome,
    string Method,
    string? AttemptedEmail,
    Guid? UserId,
    string? UserEmail,
    bool OrganizationAdmin,
    string? Reason,
    string? ClientIp,
    string? UserAgent,
    string? RequestId);

/// <summary>
/// Records sign-ins, failed sign-ins, lockouts and sign-outs in the organization chain
/// (<see cref="AuditEventDraft.OrganizationChain"/>).
/// <para>
/// Why one organization-level chain and not the user's project chains: a sign-in belongs to no project, and a failure
/// for an unknown e-mail has no projects at all, yet brute-force detection must see it. Copying a sign-in into every
/// project of the user would also let a project admin see members' activity in other projects' context and multiply
/// writes. The organization chain is verified and exported like any project chain (its key is Guid.Empty), and only
/// organization-level readers may see it.
/// </para>
/// <para>
/// Failure: the append is awaited; when the trail cannot be written the caller gets <see cref="ErrorKind.Unavailable"/>
/// and must not complete the sign-in (an unrecorded sign-in is refused like an unrecorded query).
/// </para>
/// </summary>
public sealed class SignInAudit(AuditWriter writer)
{
    public const int MaxAttemptedEmail = 256;

    public Task<AuditReceipt> RecordAsync(SignInEvent e, CancellationToken ct = default)
    {
        var actor = e.UserId is { } id
            ? new AuditActor("user", id.ToString(), e.UserEmail, e.OrganizationAdmin ? "org_admin" : null,
                ClientIp: e.ClientIp, UserAgent: e.UserAgent, RequestId: e.RequestId)
            : AuditActor.Anonymous(e.ClientIp, e.UserAgent, e.RequestId);
        var (type, level) = e.Outcome switch
        {
            SignInOutcome.Succeeded => ("auth.sign_in_succeeded", AuditSecurityLevel.Normal),
            SignInOutcome.Failed => ("auth.sign_in_failed", AuditSecurityLevel.Normal),
            // A lockout means repeated failures on one account: worth a look even before any detector runs.
            SignInOutcome.LockedOut => ("auth.locked_out", AuditSecurityLevel.Warning),
            SignInOutcome.SignedOut => ("auth.signed_out", AuditSecurityLevel.Normal),
            _ => throw new ArgumentOutOfRangeException(nameof(e), e.Outcome, "Unknown sign-in outcome."),
        };
        return writer.AppendAsync(new AuditEventDraft
        {
            ProjectId = AuditEventDraft.OrganizationChain,
            EventType = type,
            Actor = actor,
            ResourceType = "user",
            ResourceId = e.UserId?.ToString(),
            Action = e.Outcome == SignInOutcome.SignedOut ? "sign_out" : "sign_in",
            Details = PortalAudit.Json(new { method = e.Method, attempted_email = SanitizeEmail(e.AttemptedEmail), reason = e.Reason }),
            Success = e.Outcome is SignInOutcome.Succeeded or SignInOutcome.SignedOut,
            ErrorMessage = e.Reason,
            SecurityLevel = level,
        }, ct);
    }

    /// <summary>
    /// What a client typed as e-mail, made safe to keep: trimmed, control characters (line breaks that could fake
    /// extra lines in an export, NUL, escape sequences) replaced with U+FFFD, and cut to 256 characters.
    /// </summary>
    public static string? SanitizeEmail(string? typed)
    {
        if (typed is null) return null;
        var s = typed.Trim();
        if (s.Length > MaxAttemptedEmail) s = s[..(char.IsHighSurrogate(s[MaxAttemptedEmail - 1]) ? MaxAttemptedEmail - 1 : MaxAttemptedEmail)];
        var b = new StringBuilder(s.Length);
        foreach (var c in s) b.Append(char.IsControl(c) ? '\uFFFD' : c);
        return b.ToString();
    }
}
