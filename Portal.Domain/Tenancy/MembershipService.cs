using System.Data;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Portal.Domain.Audit;
using Portal.Domain.Persistence;

namespace Portal.Domain.Tenancy;

public sealed record MemberRow(Guid MemberId, Guid UserId, string Email, string? DisplayName, string Role, bool Suspended, DateTimeOffset AddedAt, bool TwoFactorEnabled);

public sealed record AddMemberResult(MemberRow Member, string? TemporaryPassword);

/// <summary>
/// Adds, changes and removes project members; every change is recorded in membership_changes (same transaction) and
/// then appended to the audit trail (see <see cref="PortalAudit"/> for why in that order).
/// </summary>
public sealed class MembershipService(IDbContextFactory<PortalDbContext> dbFactory, UserManager<PortalUser> users, TimeProvider clock, PortalAudit audit)
{
    public async Task<Page<MemberRow>> ListAsync(Guid projectId, int skip, int take, string? search = null, CancellationToken ct = default)
    {
        take = Math.Clamp(take, 1, 200);
        skip = Math.Max(0, skip);
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var q = db.ProjectMembers.AsNoTracking().Where(m => m.ProjectId == projectId)
            .Join(db.Users, m => m.UserId, u => u.Id, (m, u) => new { m, u });
        if (!string.IsNullOrWhiteSpace(search))
        {
            var s = search.Trim().ToUpperInvariant();
            q = q.Where(x => x.u.NormalizedEmail!.Contains(s) || (x.u.DisplayName != null && x.u.DisplayName.ToUpper().Contains(s)) || x.m.Role.ToUpper() == s);
        }
        var total = await q.CountAsync(ct);
        var items = await q.OrderBy(x => x.u.NormalizedEmail).Skip(skip).Take(take)
            .Select(x => new MemberRow(x.m.Id, x.u.Id, x.u.Email!, x.u.DisplayName, x.m.Role, x.m.Suspended, x.m.AddedAt, x.u.TwoFactorEnabled))
            .ToListAsync(ct);
        return new Page<MemberRow>(items, total, skip, take);
    }

    public async Task<Page<MembershipChange>> ChangesAsync(Guid projectId, int skip, int take, CancellationToken ct = default)
    {
        take = Math.Clamp(take, 1, 200);
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var q = db.MembershipChanges.AsNoTracking().Where(c => c.ProjectId == projectId);
        var total = await q.CountAsync(ct);
        var items = await q.OrderByDescending(c => c.ChangedAt).Skip(Math.Max(0, skip)).Take(take).ToListAsync(ct);
        return new Page<MembershipChange>(items, total, skip, take);
    }

    /// <summary>
    /// Adds a user by e-mail. An unknown e-mail gets a new local account with a one-time password that is returned
    /// once (the portal sends no e-mail) and must be changed at first sign-in.
    /// </summary>
    public async Task<AddMemberResult> AddAsync(Guid projectId, string? email, string? role, Guid actor, string? displayName = null, CancellationToken ct = default)
    {
        email = email?.Trim();
        if (string.IsNullOrEmpty(email)) throw DomainException.Invalid("email", "E-mail is required.");
        if (email.Length > 256 || !System.Net.Mail.MailAddress.TryCreate(email, out var parsed) || parsed.Address != email)
            throw DomainException.Invalid("email", $"'{Truncate(email)}' is not a valid e-mail address.");
        if (!Roles.IsValid(role)) throw DomainException.Invalid("role", $"Role must be one of {string.Join(", ", Roles.All)}.");
        if (displayName is { Length: > 200 }) throw DomainException.Invalid("displayName", "Display name is limited to 200 characters.");

        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var project = await db.Projects.AsNoTracking().FirstOrDefaultAsync(p => p.Id == projectId, ct) ?? throw DomainException.NotFound("Project");
        var actorUser = await db.Users.AsNoTracking().FirstOrDefaultAsync(u => u.Id == actor, ct);
        string? tempPassword = null;
        var user = await users.FindByEmailAsync(email);
        if (user is null)
        {
            tempPassword = GeneratePassword();
            user = new PortalUser
            {
                UserName = email, Email = email, EmailConfirmed = true, DisplayName = string.IsNullOrWhiteSpace(displayName) ? null : displayName.Trim(),
                OrganizationId = project.OrganizationId, CreatedAt = clock.GetUtcNow(), LockoutEnabled = true,
            };
            var created = await users.CreateAsync(user, tempPassword);
            if (!created.Succeeded) throw DomainException.Invalid("email", string.Join(" ", created.Errors.Select(e => e.Description)));
        }
        if (await db.ProjectMembers.AnyAsync(m => m.ProjectId == projectId && m.UserId == user.Id, ct))
            throw DomainException.Conflict($"{email} is already a member of this project.", "email");

        var now = clock.GetUtcNow();
        var member = new ProjectMember { ProjectId = projectId, UserId = user.Id, Role = role!, AddedAt = now, AddedBy = actor };
        db.ProjectMembers.Add(member);
        db.MembershipChanges.Add(new MembershipChange
        {
            ProjectId = projectId, UserId = user.Id, UserEmail = email, NewRole = role, ChangedBy = actor, ChangedByEmail = actorUser?.Email, ChangedAt = now,
        });
        await db.SaveChangesAsync(ct);
        await audit.RecordAsync(new AuditEventDraft
        {
            ProjectId = projectId, EventType = "member.added", Actor = await PortalAudit.UserAsync(db, projectId, actor, ct),
            ResourceType = "member", ResourceId = member.Id.ToString(), Action = "add",
            AfterState = PortalAudit.Json(new { user_id = user.Id, email, display_name = user.DisplayName, role, suspended = false }),
            Details = PortalAudit.Json(new { new_account = tempPassword is not null }),
            SecurityLevel = role == Roles.Admin ? AuditSecurityLevel.Warning : AuditSecurityLevel.Normal,
            OccurredAt = now,
        }, ct);
        return new AddMemberResult(new MemberRow(member.Id, user.Id, email, user.DisplayName, member.Role, false, now, user.TwoFactorEnabled), tempPassword);
    }

    public async Task ChangeRoleAsync(Guid projectId, Guid memberId, string? role, Guid actor, CancellationToken ct = default)
    {
        if (!Roles.IsValid(role)) throw DomainException.Invalid("role", $"Role must be one of {string.Join(", ", Roles.All)}.");
        await MutateAsync(projectId, memberId, actor, "member.role_changed", (db, m) =>
        {
            if (m.Role == role) return null;
            var old = m.Role;
            m.Role = role!;
            return (old, role);
        }, ct);
    }

    /// <summary>Active (not suspended) admins of the project; the page protects the last one from removal and demotion.</summary>
    public async Task<int> ActiveAdminCountAsync(Guid projectId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        return await db.ProjectMembers.AsNoTracking().CountAsync(m => m.ProjectId == projectId && m.Role == Roles.Admin && !m.Suspended, ct);
    }

    public async Task RemoveAsync(Guid projectId, Guid memberId, Guid actor, CancellationToken ct = default)
    {
        await MutateAsync(projectId, memberId, actor, "member.removed", (db, m) =>
        {
            db.ProjectMembers.Remove(m);
            return (m.Role, null);
        }, ct);
    }

    public async Task SetSuspendedAsync(Guid projectId, Guid memberId, bool suspended, Guid actor, CancellationToken ct = default)
    {
        await MutateAsync(projectId, memberId, actor, suspended ? "member.suspended" : "member.reinstated", (db, m) =>
        {
            if (m.Suspended == suspended) return null;
            m.Suspended = suspended;
            return (m.Role, suspended ? "suspended" : m.Role);
        }, ct);
    }

    /// <summary>
    /// Gives a member a new one-time password (the portal sends no e-mail, so the admin hands it over). Only organization
    /// admins may do it, only for accounts of their own organization and not for themselves (they change their own on
    /// the account page). The old password stops working, every signed-in session of the user ends (new security
    /// stamp) and a lockout is lifted. Audited as member.password_reset; the password itself is never recorded.
    /// </summary>
    public async Task<string> ResetPasswordAsync(Guid projectId, Guid memberId, Guid actor, CancellationToken ct = default)
    {
        var (user, auditActor) = await ResettableAsync(projectId, memberId, actor, "password", ct);
        var password = GeneratePassword();
        Check(await users.ResetPasswordAsync(user, await users.GeneratePasswordResetTokenAsync(user), password));
        var wasLockedOut = await users.IsLockedOutAsync(user);
        await users.SetLockoutEndDateAsync(user, null);
        await users.ResetAccessFailedCountAsync(user);
        await audit.RecordAsync(new AuditEventDraft
        {
            ProjectId = projectId, EventType = "member.password_reset", Actor = auditActor,
            ResourceType = "member", ResourceId = memberId.ToString(), Action = "password_reset",
            Details = PortalAudit.Json(new { user_id = user.Id, email = user.Email, sessions_ended = true, lockout_lifted = wasLockedOut, two_factor_kept = user.TwoFactorEnabled }),
            SecurityLevel = AuditSecurityLevel.Warning,
            OccurredAt = clock.GetUtcNow(),
        }, ct);
        return password;
    }

    /// <summary>
    /// Turns off two-factor sign-in for a member who lost their authenticator and recovery codes: the authenticator key
    /// and recovery codes are replaced, every signed-in session ends, and the user can set up an authenticator again
    /// from their account page. Same rules as <see cref="ResetPasswordAsync"/>; audited as member.two_factor_reset.
    /// </summary>
    public async Task ResetTwoFactorAsync(Guid projectId, Guid memberId, Guid actor, CancellationToken ct = default)
    {
        var (user, auditActor) = await ResettableAsync(projectId, memberId, actor, "two-factor sign-in", ct);
        if (!user.TwoFactorEnabled) throw DomainException.Conflict($"{user.Email} does not use two-factor sign-in.");
        Check(await users.SetTwoFactorEnabledAsync(user, false));
        Check(await users.ResetAuthenticatorKeyAsync(user)); // also a new security stamp: open sessions end
        await users.GenerateNewTwoFactorRecoveryCodesAsync(user, 0);
        await audit.RecordAsync(new AuditEventDraft
        {
            ProjectId = projectId, EventType = "member.two_factor_reset", Actor = auditActor,
            ResourceType = "member", ResourceId = memberId.ToString(), Action = "two_factor_reset",
            Details = PortalAudit.Json(new { user_id = user.Id, email = user.Email, sessions_ended = true }),
            SecurityLevel = AuditSecurityLevel.Warning,
            OccurredAt = clock.GetUtcNow(),
        }, ct);
    }

    private static void Check(IdentityResult result)
    {
        if (!result.Succeeded) throw new InvalidOperationException("Identity update failed: " + string.Join(" ", result.Errors.Select(e => e.Code)));
    }

    /// <summary>
    /// The checks both admin resets share: the member is in this project, the actor is an organization admin, not
    /// resetting themself, and the account belongs to the actor's organization. Returns the account and the actor as the
    /// audit event names them.
    /// </summary>
    private async Task<(PortalUser User, AuditActor Actor)> ResettableAsync(Guid projectId, Guid memberId, Guid actor, string what, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var member = await db.ProjectMembers.AsNoTracking().FirstOrDefaultAsync(m => m.Id == memberId && m.ProjectId == projectId, ct)
                     ?? throw DomainException.NotFound("Member");
        var actorUser = await db.Users.AsNoTracking().FirstOrDefaultAsync(u => u.Id == actor, ct);
        if (actorUser is not { IsOrganizationAdmin: true })
            throw DomainException.Forbidden($"Only organization admins can reset a member's {what}.");
        if (member.UserId == actor)
            throw DomainException.Conflict($"You cannot reset your own {what} here; change it on your account page.");
        var user = await users.FindByIdAsync(member.UserId.ToString()) ?? throw DomainException.NotFound("Member");
        if (user.OrganizationId != actorUser.OrganizationId)
            throw DomainException.Forbidden($"{user.Email}'s account belongs to another organization; an admin there can reset it.");
        return (user, await PortalAudit.UserAsync(db, projectId, actor, ct));
    }

    /// <summary>
    /// Applies one change under a serializable transaction and refuses it when the project would be left without an
    /// active admin, so two admins demoting each other at once cannot both succeed. The audit event follows the commit.
    /// </summary>
    private async Task MutateAsync(Guid projectId, Guid memberId, Guid actor, string eventType,
        Func<PortalDbContext, ProjectMember, (string? Old, string? New)?> change, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var strategy = db.Database.CreateExecutionStrategy();
        AuditEventDraft? recorded = null;
        try
        {
            await strategy.ExecuteAsync(async () =>
            {
                recorded = null;
                await using var tx = await db.Database.BeginTransactionAsync(IsolationLevel.Serializable, ct);
                var member = await db.ProjectMembers.FirstOrDefaultAsync(m => m.Id == memberId && m.ProjectId == projectId, ct)
                             ?? throw DomainException.NotFound("Member");
                var email = await db.Users.Where(u => u.Id == member.UserId).Select(u => u.Email).FirstOrDefaultAsync(ct);
                // The actor's role before the change: an admin demoting themself acted as admin.
                var auditActor = await PortalAudit.UserAsync(db, projectId, actor, ct);
                var before = new { user_id = member.UserId, email, role = member.Role, suspended = member.Suspended };
                var result = change(db, member);
                if (result is null) return;
                await db.SaveChangesAsync(ct);
                var admins = await db.ProjectMembers.CountAsync(m => m.ProjectId == projectId && m.Role == Roles.Admin && !m.Suspended, ct);
                if (admins == 0)
                    throw DomainException.Conflict("A project needs at least one active admin. Make another member an admin first.", "role");
                var now = clock.GetUtcNow();
                db.MembershipChanges.Add(new MembershipChange
                {
                    ProjectId = projectId, UserId = member.UserId, UserEmail = email, OldRole = result.Value.Old, NewRole = result.Value.New,
                    ChangedBy = actor, ChangedByEmail = auditActor.Email, ChangedAt = now,
                });
                await db.SaveChangesAsync(ct);
                await tx.CommitAsync(ct);
                var removed = eventType == "member.removed";
                recorded = new AuditEventDraft
                {
                    ProjectId = projectId, EventType = eventType, Actor = auditActor, ResourceType = "member", ResourceId = memberId.ToString(),
                    Action = eventType["member.".Length..],
                    BeforeState = PortalAudit.Json(before),
                    AfterState = removed ? null : PortalAudit.Json(new { user_id = member.UserId, email, role = member.Role, suspended = member.Suspended }),
                    // Anything that grants, takes away or pauses admin rights is privilege-relevant.
                    SecurityLevel = before.role == Roles.Admin || member.Role == Roles.Admin ? AuditSecurityLevel.Warning : AuditSecurityLevel.Normal,
                    OccurredAt = now,
                };
            });
        }
        catch (Exception e) when (IsSerializationFailure(e))
        {
            throw DomainException.Conflict("Another change to this project's members happened at the same time. Reload and try again.");
        }
        if (recorded is not null) await audit.RecordAsync(recorded, ct);
    }

    // The provider's execution strategy wraps the failure twice (InvalidOperationException > DbUpdateException > driver), so walk the chain.
    private static bool IsSerializationFailure(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
            if (e is Npgsql.PostgresException { SqlState: "40001" or "40P01" } or Microsoft.Data.Sqlite.SqliteException { SqliteErrorCode: 5 }) return true;
        return false;
    }

    private static string Truncate(string s) => s.Length <= 60 ? s : s[..60] + "…";

    /// <summary>A random password that satisfies the portal's password policy.</summary>
    public static string GeneratePassword()
    {
        const string upper = "ABCDEFGHJKLMNPQRSTUVWXYZ", lower = "abcdefghijkmnopqrstuvwxyz", digits = "23456789", symbols = "!#%+-=?@";
        var chars = new List<char>
        {
            upper[RandomNumberGenerator.GetInt32(upper.Length)], lower[RandomNumberGenerator.GetInt32(lower.Length)],
            digits[RandomNumberGenerator.GetInt32(digits.Length)], symbols[RandomNumberGenerator.GetInt32(symbols.Length)],
        };
        const string all = upper + lower + digits + symbols;
        while (chars.Count < 18) chars.Add(all[RandomNumberGenerator.GetInt32(all.Length)]);
        return new string(chars.OrderBy(_ => RandomNumberGenerator.GetInt32(1000)).ToArray());
    }
}
