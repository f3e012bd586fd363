using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Portal.Domain;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Tenancy;

public class MembershipServiceTests
{
    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Add_validates_input_and_gives_new_accounts_a_policy_password(string provider)
    {
        await using var w = await TenancyWorld.CreateAsync(provider);
        var (admin, projectId) = await w.SetupAsync();
        var members = w.Get<MembershipService>();

        await DomainAssert.RefusedAsync(ErrorKind.Validation, "email", () => members.AddAsync(projectId, "", Roles.User, admin.Id));
        await DomainAssert.RefusedAsync(ErrorKind.Validation, "email", () => members.AddAsync(projectId, "not-an-email", Roles.User, admin.Id));
        await DomainAssert.RefusedAsync(ErrorKind.Validation, "email", () => members.AddAsync(projectId, "Bob <bob@bank.test>", Roles.User, admin.Id));
        await DomainAssert.RefusedAsync(ErrorKind.Validation, "role", () => members.AddAsync(projectId, "bob@bank.test", "owner", admin.Id));
        await DomainAssert.RefusedAsync(ErrorKind.Validation, "role", () => members.AddAsync(projectId, "bob@bank.test", null, admin.Id));
        await DomainAssert.RefusedAsync(ErrorKind.NotFound, null, () => members.AddAsync(Guid.NewGuid(), "bob@bank.test", Roles.User, admin.Id));
        Assert.Equal(1, await w.QueryAsync(ctx => ctx.Users.CountAsync()));

        var added = await members.AddAsync(projectId, "bob@bank.test", Roles.Data, admin.Id, "Bob Data");
        Assert.Equal((Roles.Data, "bob@bank.test"), (added.Member.Role, added.Member.Email));
        Assert.NotNull(added.TemporaryPassword);
        var users = w.Get<UserManager<PortalUser>>();
        var bob = (await users.FindByEmailAsync("bob@bank.test"))!;
        foreach (var validator in users.PasswordValidators)
            Assert.True((await validator.ValidateAsync(users, bob, added.TemporaryPassword)).Succeeded);
        Assert.True(await users.CheckPasswordAsync(bob, added.TemporaryPassword));

        await DomainAssert.RefusedAsync(ErrorKind.Conflict, "email", () => members.AddAsync(projectId, "bob@bank.test", Roles.User, admin.Id));
        await DomainAssert.RefusedAsync(ErrorKind.Conflict, "email", () => members.AddAsync(projectId, "BOB@bank.test", Roles.User, admin.Id));

        // An existing account joins another project without a new password.
        var cards = await w.Get<ProjectService>().CreateAsync(admin.Id, "Cards", null);
        var again = await members.AddAsync(cards.Id, "bob@bank.test", Roles.User, admin.Id);
        Assert.Null(again.TemporaryPassword);
        Assert.Equal(bob.Id, again.Member.UserId);

        var change = (await w.ChangesAsync(projectId)).Single(c => c.UserId == bob.Id);
        Assert.Equal((null, Roles.Data, admin.Id, admin.Email), (change.OldRole, change.NewRole, change.ChangedBy, change.ChangedByEmail));
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Change_remove_and_suspend_are_recorded_with_old_and_new_role(string provider)
    {
        await using var w = await TenancyWorld.CreateAsync(provider);
        var (admin, projectId) = await w.SetupAsync();
        var members = w.Get<MembershipService>();
        var bob = (await members.AddAsync(projectId, "bob@bank.test", Roles.User, admin.Id)).Member;

        w.Clock.Advance(TimeSpan.FromMinutes(1));
        await members.ChangeRoleAsync(projectId, bob.MemberId, Roles.Compliance, admin.Id);
        Assert.Equal(Roles.Compliance, (await w.MemberAsync(bob.MemberId))!.Role);
        await DomainAssert.RefusedAsync(ErrorKind.Validation, "role", () => members.ChangeRoleAsync(projectId, bob.MemberId, "root", admin.Id));
        await members.ChangeRoleAsync(projectId, bob.MemberId, Roles.Compliance, admin.Id); // no change, no record

        w.Clock.Advance(TimeSpan.FromMinutes(1));
        await members.SetSuspendedAsync(projectId, bob.MemberId, true, admin.Id);
        Assert.True((await w.MemberAsync(bob.MemberId))!.Suspended);
        var access = w.Get<ProjectAccess>();
        Assert.False((await access.CheckAsync(projectId, bob.UserId, Permissions.ProjectView)).Allowed);
        w.Clock.Advance(TimeSpan.FromMinutes(1));
        await members.SetSuspendedAsync(projectId, bob.MemberId, false, admin.Id);
        Assert.True((await access.CheckAsync(projectId, bob.UserId, Permissions.ProjectView)).Allowed);

        w.Clock.Advance(TimeSpan.FromMinutes(1));
        await members.RemoveAsync(projectId, bob.MemberId, admin.Id);
        Assert.Null(await w.MemberAsync(bob.MemberId));
        Assert.Equal(AccessDecision.NotMember, await access.CheckAsync(projectId, bob.UserId, Permissions.ProjectView));

        var history = (await w.ChangesAsync(projectId)).Where(c => c.UserId == bob.UserId).OrderBy(c => c.ChangedAt)
            .Select(c => (c.OldRole, c.NewRole, c.ChangedBy, c.UserEmail)).ToList();
        Assert.Equal(
        [
            (null, Roles.User, admin.Id, "bob@bank.test"),
            (Roles.User, Roles.Compliance, admin.Id, "bob@bank.test"),
            (Roles.Compliance, "suspended", admin.Id, "bob@bank.test"),
            (Roles.Compliance, Roles.Compliance, admin.Id, "bob@bank.test"),
            (Roles.Compliance, null, admin.Id, "bob@bank.test"),
        ], history);
        Assert.Equal(history.Count, (await members.ChangesAsync(projectId, 0, 50)).Items.Count(c => c.UserId == bob.UserId));
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task The_last_active_admin_cannot_be_removed_demoted_or_suspended(string provider)
    {
        await using var w = await TenancyWorld.CreateAsync(provider);
        var (admin, projectId) = await w.SetupAsync();
        var members = w.Get<MembershipService>();
        var self = (await members.ListAsync(projectId, 0, 10)).Items.Single();
        var before = (await w.ChangesAsync(projectId)).Count;

        await DomainAssert.RefusedAsync(ErrorKind.Conflict, "role", () => members.ChangeRoleAsync(projectId, self.MemberId, Roles.User, admin.Id));
        await DomainAssert.RefusedAsync(ErrorKind.Conflict, "role", () => members.RemoveAsync(projectId, self.MemberId, admin.Id));
        await DomainAssert.RefusedAsync(ErrorKind.Conflict, "role", () => members.SetSuspendedAsync(projectId, self.MemberId, true, admin.Id));
        var row = (await w.MemberAsync(self.MemberId))!;
        Assert.Equal((Roles.Admin, false), (row.Role, row.Suspended));
        Assert.Equal(before, (await w.ChangesAsync(projectId)).Count);

        // A suspended admin does not count: with the only other admin suspended, the last active one stays.
        var other = (await members.AddAsync(projectId, "second@bank.test", Roles.Admin, admin.Id)).Member;
        await members.SetSuspendedAsync(projectId, other.MemberId, true, admin.Id);
        await DomainAssert.RefusedAsync(ErrorKind.Conflict, "role", () => members.ChangeRoleAsync(projectId, self.MemberId, Roles.Data, admin.Id));
        await members.SetSuspendedAsync(projectId, other.MemberId, false, admin.Id);
        await members.ChangeRoleAsync(projectId, self.MemberId, Roles.Data, other.UserId);
        Assert.Equal(Roles.Data, (await w.MemberAsync(self.MemberId))!.Role);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Two_admins_demoting_each_other_at_once_leave_exactly_one_admin(string provider)
    {
        await using var w = await TenancyWorld.CreateAsync(provider);
        var (admin, projectId) = await w.SetupAsync();
        var members = w.Get<MembershipService>();
        var first = (await members.ListAsync(projectId, 0, 10)).Items.Single();
        for (var round = 0; round < 4; round++)
        {
            var second = (await members.AddAsync(projectId, $"second{round}@bank.test", Roles.Admin, admin.Id)).Member;
            var one = w.Fresh<MembershipService>();
            var two = w.Fresh<MembershipService>();
            var results = await Task.WhenAll(
                Outcome(() => one.ChangeRoleAsync(projectId, second.MemberId, Roles.User, first.UserId)),
                Outcome(() => two.ChangeRoleAsync(projectId, first.MemberId, Roles.User, second.UserId)));

            Assert.Equal(1, results.Count(r => r is null));
            Assert.All(results.OfType<DomainException>(), e => Assert.Equal(ErrorKind.Conflict, e.Kind));
            var admins = (await members.ListAsync(projectId, 0, 50)).Items.Where(m => m.Role == Roles.Admin).ToList();
            var survivor = Assert.Single(admins);
            // Exactly one demotion happened and was recorded.
            var demotions = (await w.ChangesAsync(projectId)).Count(c => c.OldRole == Roles.Admin && c.NewRole == Roles.User);
            Assert.Equal(round + 1, demotions);

            // Next round: the survivor plays "first" and the demoted one leaves.
            var loser = survivor.MemberId == first.MemberId ? second : first;
            await members.RemoveAsync(projectId, loser.MemberId, survivor.UserId);
            first = survivor;
        }
    }

    private static async Task<DomainException?> Outcome(Func<Task> action)
    {
        try { await Task.Run(action); return null; }
        catch (DomainException e) { return e; }
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task A_member_of_another_project_is_not_found_and_nothing_changes(string provider)
    {
        await using var w = await TenancyWorld.CreateAsync(provider);
        var (admin, projectA) = await w.SetupAsync();
        var projectB = (await w.Get<ProjectService>().CreateAsync(admin.Id, "Cards", null)).Id;
        var members = w.Get<MembershipService>();
        var inB = (await members.AddAsync(projectB, "bob@bank.test", Roles.User, admin.Id)).Member;
        var changesBefore = (await w.QueryAsync(ctx => ctx.MembershipChanges.CountAsync()));

        await DomainAssert.RefusedAsync(ErrorKind.NotFound, null, () => members.ChangeRoleAsync(projectA, inB.MemberId, Roles.Admin, admin.Id));
        await DomainAssert.RefusedAsync(ErrorKind.NotFound, null, () => members.RemoveAsync(projectA, inB.MemberId, admin.Id));
        await DomainAssert.RefusedAsync(ErrorKind.NotFound, null, () => members.SetSuspendedAsync(projectA, inB.MemberId, true, admin.Id));
        await DomainAssert.RefusedAsync(ErrorKind.NotFound, null, () => members.ChangeRoleAsync(projectA, Guid.NewGuid(), Roles.Admin, admin.Id));

        var row = (await w.MemberAsync(inB.MemberId))!;
        Assert.Equal((projectB, Roles.User, false), (row.ProjectId, row.Role, row.Suspended));
        Assert.Equal(changesBefore, await w.QueryAsync(ctx => ctx.MembershipChanges.CountAsync()));
        Assert.DoesNotContain((await members.ListAsync(projectA, 0, 50)).Items, m => m.UserId == inB.UserId);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task An_organization_admin_resets_a_password_which_ends_sessions_lifts_a_lockout_and_is_audited(string provider)
    {
        await using var w = await TenancyWorld.CreateAsync(provider);
        var (admin, projectA) = await w.SetupAsync();
        var members = w.Get<MembershipService>();
        var users = w.Get<UserManager<PortalUser>>();
        var bob = await members.AddAsync(projectA, "bob@bank.test", Roles.User, admin.Id);
        var carol = await members.AddAsync(projectA, "carol@bank.test", Roles.Admin, admin.Id); // project admin only
        var adminMember = (await members.ListAsync(projectA, 0, 50)).Items.Single(m => m.UserId == admin.Id);
        var projectB = (await w.Get<ProjectService>().CreateAsync(admin.Id, "Cards", null)).Id;
        var inB = (await members.AddAsync(projectB, "erin@bank.test", Roles.User, admin.Id)).Member;

        var bobUser = (await users.FindByEmailAsync("bob@bank.test"))!;
        for (var i = 0; i < 5; i++) await users.AccessFailedAsync(bobUser);
        Assert.True(await users.IsLockedOutAsync(bobUser));
        var stampBefore = bobUser.SecurityStamp;

        await DomainAssert.RefusedAsync(ErrorKind.Forbidden, null, () => members.ResetPasswordAsync(projectA, bob.Member.MemberId, carol.Member.UserId));
        await DomainAssert.RefusedAsync(ErrorKind.Conflict, null, () => members.ResetPasswordAsync(projectA, adminMember.MemberId, admin.Id));
        await DomainAssert.RefusedAsync(ErrorKind.NotFound, null, () => members.ResetPasswordAsync(projectA, Guid.NewGuid(), admin.Id));
        await DomainAssert.RefusedAsync(ErrorKind.NotFound, null, () => members.ResetPasswordAsync(projectA, inB.MemberId, admin.Id));
        Assert.True(await users.CheckPasswordAsync((await users.FindByEmailAsync("bob@bank.test"))!, bob.TemporaryPassword!));

        var fresh = await members.ResetPasswordAsync(projectA, bob.Member.MemberId, admin.Id);
        var after = (await w.Fresh<UserManager<PortalUser>>().FindByEmailAsync("bob@bank.test"))!;
        Assert.False(await users.CheckPasswordAsync(after, bob.TemporaryPassword!));
        Assert.True(await users.CheckPasswordAsync(after, fresh));
        foreach (var validator in users.PasswordValidators) Assert.True((await validator.ValidateAsync(users, after, fresh)).Succeeded);
        Assert.False(await users.IsLockedOutAsync(after));
        Assert.Equal(0, after.AccessFailedCount);
        Assert.NotEqual(stampBefore, after.SecurityStamp); // cookies carrying the old stamp are rejected

        var events = await w.QueryAsync(ctx => ctx.AuditEvents.Where(e => e.ProjectId == projectA && e.EventType == "member.password_reset").ToListAsync());
        var e = Assert.Single(events);
        Assert.Equal("warning", e.SecurityLevel);
        Assert.Equal(admin.Id.ToString(), e.ActorId);
        Assert.Contains("bob@bank.test", e.Details);
        Assert.Contains("\"lockout_lifted\":true", e.Details);
        Assert.DoesNotContain(fresh, e.Details + e.BeforeState + e.AfterState);

        // An account of another organization that joined this project is not this organization's to reset.
        var otherOrg = new Organization { Name = "Other Bank", CreatedAt = w.Clock.GetUtcNow() };
        await w.QueryAsync(async ctx => { ctx.Organizations.Add(otherOrg); return await ctx.SaveChangesAsync(); });
        var dave = new PortalUser { UserName = "dave@other.test", Email = "dave@other.test", EmailConfirmed = true, OrganizationId = otherOrg.Id, LockoutEnabled = true };
        Assert.True((await users.CreateAsync(dave, TestUsers.Password)).Succeeded);
        var daveMember = (await members.AddAsync(projectA, "dave@other.test", Roles.User, admin.Id)).Member;
        await DomainAssert.RefusedAsync(ErrorKind.Forbidden, null, () => members.ResetPasswordAsync(projectA, daveMember.MemberId, admin.Id));
        Assert.True(await users.CheckPasswordAsync((await w.Fresh<UserManager<PortalUser>>().FindByEmailAsync("dave@other.test"))!, TestUsers.Password));
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task An_organization_admin_turns_off_a_lost_authenticator_which_ends_sessions_and_is_audited(string provider)
    {
        await using var w = await TenancyWorld.CreateAsync(provider);
        var (admin, projectId) = await w.SetupAsync();
        var members = w.Get<MembershipService>();
        var users = w.Get<UserManager<PortalUser>>();
        var bob = await members.AddAsync(projectId, "bob@bank.test", Roles.User, admin.Id);
        var carol = await members.AddAsync(projectId, "carol@bank.test", Roles.Admin, admin.Id);
        await DomainAssert.RefusedAsync(ErrorKind.Conflict, null, () => members.ResetTwoFactorAsync(projectId, bob.Member.MemberId, admin.Id)); // not on yet

        var bobUser = (await users.FindByEmailAsync("bob@bank.test"))!;
        await users.ResetAuthenticatorKeyAsync(bobUser);
        var oldKey = await users.GetAuthenticatorKeyAsync(bobUser);
        await users.SetTwoFactorEnabledAsync(bobUser, true);
        var codes = (await users.GenerateNewTwoFactorRecoveryCodesAsync(bobUser, 10))!.ToList();
        var stampBefore = (await w.Fresh<UserManager<PortalUser>>().FindByEmailAsync("bob@bank.test"))!.SecurityStamp;

        await DomainAssert.RefusedAsync(ErrorKind.Forbidden, null, () => members.ResetTwoFactorAsync(projectId, bob.Member.MemberId, carol.Member.UserId));
        await DomainAssert.RefusedAsync(ErrorKind.NotFound, null, () => members.ResetTwoFactorAsync(projectId, Guid.NewGuid(), admin.Id));
        Assert.True((await w.Fresh<UserManager<PortalUser>>().FindByEmailAsync("bob@bank.test"))!.TwoFactorEnabled);

        await members.ResetTwoFactorAsync(projectId, bob.Member.MemberId, admin.Id);
        var fresh = w.Fresh<UserManager<PortalUser>>();
        var after = (await fresh.FindByEmailAsync("bob@bank.test"))!;
        Assert.False(after.TwoFactorEnabled);
        Assert.NotEqual(stampBefore, after.SecurityStamp);
        Assert.NotEqual(oldKey, await fresh.GetAuthenticatorKeyAsync(after));
        Assert.Equal(0, await fresh.CountRecoveryCodesAsync(after));
        Assert.False((await fresh.RedeemTwoFactorRecoveryCodeAsync(after, codes[0])).Succeeded);
        Assert.True(await fresh.CheckPasswordAsync(after, bob.TemporaryPassword!)); // the password is untouched

        var e = Assert.Single(await w.QueryAsync(ctx => ctx.AuditEvents.Where(x => x.ProjectId == projectId && x.EventType == "member.two_factor_reset").ToListAsync()));
        Assert.Equal("warning", e.SecurityLevel);
        Assert.Contains("bob@bank.test", e.Details);
        await DomainAssert.RefusedAsync(ErrorKind.Conflict, null, () => members.ResetTwoFactorAsync(projectId, bob.Member.MemberId, admin.Id));
    }
}
