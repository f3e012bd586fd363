using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.Options;
using Portal.Domain.Audit;
using Portal.Domain.Tenancy;

namespace Portal.Hosting;

/// <summary>
/// Identity's sign-in manager, with every credential check and sign-out written to the audit trail
/// (<see cref="SignInAudit"/>). Overriding the manager rather than adding calls to the account pages covers the
/// password, authenticator and recovery-code paths alike, and keeps pages free of audit rules. Only the HTTP facts
/// (client IP, user agent, request id) are gathered here.
/// </summary>
public sealed class AuditingSignInManager(
    UserManager<PortalUser> userManager,
    IHttpContextAccessor contextAccessor,
    IUserClaimsPrincipalFactory<PortalUser> claimsFactory,
    IOptions<IdentityOptions> optionsAccessor,
    ILogger<SignInManager<PortalUser>> logger,
    IAuthenticationSchemeProvider schemes,
    IUserConfirmation<PortalUser> confirmation,
    SignInAudit audit)
    : SignInManager<PortalUser>(userManager, contextAccessor, claimsFactory, optionsAccessor, logger, schemes, confirmation)
{
    public override async Task<SignInResult> PasswordSignInAsync(string userName, string password, bool isPersistent, bool lockoutOnFailure)
    {
        // Same lookup the base class makes; done here so an unknown e-mail is still recorded (brute-force detection needs it).
        var user = await UserManager.FindByNameAsync(userName);
        if (user is null)
        {
            await RecordAsync(SignInOutcome.Failed, "password", userName, null, "unknown_user");
            return SignInResult.Failed;
        }
        var result = await PasswordSignInAsync(user, password, isPersistent, lockoutOnFailure);
        await RecordResultAsync(result, "password", userName, user, "wrong_password");
        return result;
    }

    public override async Task<SignInResult> TwoFactorAuthenticatorSignInAsync(string code, bool isPersistent, bool rememberClient)
    {
        // Read before the base call: a successful sign-in clears the two-factor cookie that names the user.
        var user = await GetTwoFactorAuthenticationUserAsync();
        var result = await base.TwoFactorAuthenticatorSignInAsync(code, isPersistent, rememberClient);
        await RecordResultAsync(result, "two_factor", user?.Email, user, "invalid_code");
        return result;
    }

    public override async Task<SignInResult> TwoFactorRecoveryCodeSignInAsync(string recoveryCode)
    {
        var user = await GetTwoFactorAuthenticationUserAsync();
        var result = await base.TwoFactorRecoveryCodeSignInAsync(recoveryCode);
        await RecordResultAsync(result, "recovery_code", user?.Email, user, "invalid_code");
        return result;
    }

    public override async Task SignOutAsync()
    {
        var user = Context.User.Identity?.IsAuthenticated == true ? await UserManager.GetUserAsync(Context.User) : null;
        await base.SignOutAsync();
        if (user is not null) await RecordAsync(SignInOutcome.SignedOut, "cookie", null, user, null);
    }

    private async Task RecordResultAsync(SignInResult result, string method, string? attempted, PortalUser? user, string failureReason)
    {
        // A password accepted pending a second factor is not a sign-in yet; the second step records the outcome.
        if (result.RequiresTwoFactor) return;
        var (outcome, reason) = result.Succeeded ? (SignInOutcome.Succeeded, (string?)null)
            : result.IsLockedOut ? (SignInOutcome.LockedOut, "locked_out")
            : result.IsNotAllowed ? (SignInOutcome.Failed, "not_allowed")
            : (SignInOutcome.Failed, failureReason);
        try
        {
            await RecordAsync(outcome, method, attempted, user, reason);
        }
        catch when (result.Succeeded)
        {
            // An unrecorded sign-in is refused: take the cookie back before the error reaches the page.
            await base.SignOutAsync();
            throw;
        }
    }

    private Task RecordAsync(SignInOutcome outcome, string method, string? attempted, PortalUser? user, string? reason)
    {
        var http = Context;
        return audit.RecordAsync(new SignInEvent(
            outcome, method, attempted, user?.Id, user?.Email, user?.IsOrganizationAdmin == true, reason,
            http.Connection.RemoteIpAddress?.ToString(), http.Request.Headers.UserAgent.ToString() is { Length: > 0 } ua ? ua : null,
            http.TraceIdentifier));
    }
}
