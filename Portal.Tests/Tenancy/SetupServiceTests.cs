using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Portal.Domain;
using Portal.Domain.Suite;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Tenancy;

public class SetupServiceTests
{
    private static SetupRequest Request(string? token, string password = TestUsers.Password) =>
        new(token, "Test Bank", "Payments", "admin@bank.test", "Ada Admin", password);

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Setup_token_must_be_right_fresh_and_unused(string provider)
    {
        await using var w = await TenancyWorld.CreateAsync(provider);
        var setup = w.Get<SetupService>();
        Assert.True(await setup.IsSetupRequiredAsync());

        await DomainAssert.RefusedAsync(ErrorKind.Validation, "token", () => setup.CompleteAsync(Request(null)));
        await DomainAssert.RefusedAsync(ErrorKind.Validation, "token", () => setup.CompleteAsync(Request("not-the-token")));

        var expired = (await setup.IssueTokenAsync())!;
        w.Clock.Advance(SetupService.TokenLifetime + TimeSpan.FromSeconds(1));
        await DomainAssert.RefusedAsync(ErrorKind.Validation, "token", () => setup.CompleteAsync(Request(expired)));

        // A new token retires the earlier one.
        var retired = (await setup.IssueTokenAsync())!;
        var token = (await setup.IssueTokenAsync())!;
        await DomainAssert.RefusedAsync(ErrorKind.Validation, "token", () => setup.CompleteAsync(Request(retired)));

        await DomainAssert.RefusedAsync(ErrorKind.Validation, "password", () => setup.CompleteAsync(Request(token, "short")));
        await DomainAssert.RefusedAsync(ErrorKind.Validation, "password", () => setup.CompleteAsync(Request(token, "alllowercaseletters")));
        await DomainAssert.RefusedAsync(ErrorKind.Validation, "password", () => setup.CompleteAsync(Request(token, "")));
        Assert.Equal(0, await w.QueryAsync(ctx => ctx.Users.CountAsync()));

        var admin = await setup.CompleteAsync(Request(token));
        Assert.True(admin.IsOrganizationAdmin);
        Assert.False(await setup.IsSetupRequiredAsync());
        var projects = await w.Get<ProjectService>().ListForUserAsync(admin.Id, 0, 10);
        Assert.Equal(Roles.Admin, Assert.Single(projects.Items).Role);
        var change = Assert.Single(await w.ChangesAsync(projects.Items[0].Id));
        Assert.Equal((null, Roles.Admin, admin.Id), (change.OldRole, change.NewRole, change.ChangedBy));

        // The used token is refused, and so is any second setup.
        await DomainAssert.RefusedAsync(ErrorKind.Validation, "token", () => setup.CompleteAsync(Request(token) with { Email = "other@bank.test" }));
        Assert.Null(await setup.IssueTokenAsync());
        await w.QueryAsync(async ctx =>
        {
            ctx.SetupTokens.Add(new SetupToken { TokenHash = SetupService.Hash("planted"), CreatedAt = w.Clock.GetUtcNow(), ExpiresAt = w.Clock.GetUtcNow().AddHours(1) });
            return await ctx.SaveChangesAsync();
        });
        await DomainAssert.RefusedAsync(ErrorKind.Conflict, null, () => setup.CompleteAsync(Request("planted") with { Email = "other@bank.test" }));
        Assert.Equal(1, await w.QueryAsync(ctx => ctx.Users.CountAsync()));
        Assert.Equal(1, await w.QueryAsync(ctx => ctx.Organizations.CountAsync()));
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Demo_seeding_is_idempotent_with_one_account_per_role(string provider)
    {
        await using var w = await TenancyWorld.CreateAsync(provider);
        var (admin, _) = await w.SetupAsync();
        var setup = w.Get<SetupService>();

        var demo = await setup.SeedDemoAsync();
        Assert.NotNull(demo);
        Assert.Equal(Roles.All.Order(), demo.Accounts.Select(a => a.Role).Order());
        Assert.Null(await setup.SeedDemoAsync());

        var members = await w.Get<MembershipService>().ListAsync(demo.ProjectId, 0, 50);
        var demoMembers = members.Items.Where(m => m.Email.EndsWith("@demo.local")).ToList();
        Assert.Equal(Roles.All.Order(), demoMembers.Select(m => m.Role).Order());
        Assert.Contains(members.Items, m => m.UserId == admin.Id && m.Role == Roles.Admin);
        Assert.Equal(1, await w.QueryAsync(ctx => ctx.Projects.CountAsync(p => p.IsDemo)));
        Assert.Equal(Roles.All.Count, await w.QueryAsync(ctx => ctx.Users.CountAsync(u => u.Email!.EndsWith("@demo.local"))));

        var users = w.Get<UserManager<PortalUser>>();
        foreach (var account in demo.Accounts)
            Assert.True(await users.CheckPasswordAsync((await users.FindByEmailAsync(account.Email))!, demo.Password), account.Email);

        var suite = await w.Get<SuiteService>().GetAsync(demo.ProjectId);
        Assert.Equal(Tier.EnterprisePlus, suite.Installation!.Tier);
        Assert.All(suite.Modules, m => Assert.True(m.Enabled, m.Module.Id));
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Only_organization_admins_create_projects(string provider)
    {
        await using var w = await TenancyWorld.CreateAsync(provider);
        var (admin, projectId) = await w.SetupAsync();
        var userId = (await w.Get<MembershipService>().AddAsync(projectId, "analyst@bank.test", Roles.Admin, admin.Id)).Member.UserId;
        var projects = w.Get<ProjectService>();

        await DomainAssert.RefusedAsync(ErrorKind.Forbidden, null, () => projects.CreateAsync(userId, "Shadow project", null));
        await DomainAssert.RefusedAsync(ErrorKind.NotFound, null, () => projects.CreateAsync(Guid.NewGuid(), "Ghost project", null));
        await DomainAssert.RefusedAsync(ErrorKind.Validation, "name", () => projects.CreateAsync(admin.Id, "  ", null));
        await DomainAssert.RefusedAsync(ErrorKind.Conflict, "name", () => projects.CreateAsync(admin.Id, "Payments", null));
        Assert.Equal(1, await w.QueryAsync(ctx => ctx.Projects.CountAsync()));

        var created = await projects.CreateAsync(admin.Id, "Cards", "Card analytics");
        var mine = await projects.ListForUserAsync(admin.Id, 0, 10);
        Assert.Equal(Roles.Admin, mine.Items.Single(p => p.Id == created.Id).Role);
        var change = Assert.Single(await w.ChangesAsync(created.Id));
        Assert.Equal((Roles.Admin, admin.Id), (change.NewRole, change.ChangedBy));
    }
}
