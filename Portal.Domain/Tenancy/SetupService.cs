using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Portal.Domain.Persistence;
using Portal.Domain.Suite;

namespace Portal.Domain.Tenancy;

public sealed record SetupRequest(string? Token, string? OrganizationName, string? ProjectName, string? Email, string? DisplayName, string? Password);

public sealed record DemoAccount(string Email, string Role);

public sealed record DemoResult(Guid ProjectId, string Password, IReadOnlyList<DemoAccount> Accounts);

/// <summary>
/// First-run setup: there is no default password. While the portal has no users, a one-time token (printed to the
/// console, only its hash stored) lets the first visitor create the organization, its first project and its admin.
/// </summary>
public sealed class SetupService(IDbContextFactory<PortalDbContext> dbFactory, UserManager<PortalUser> users, SuiteService suite, TimeProvider clock,
    Gateway.Catalog.DemoCatalog demoCatalog, DatabaseOptions dbOptions)
{
    public static readonly TimeSpan TokenLifetime = TimeSpan.FromHours(24);

    public async Task<bool> IsSetupRequiredAsync(CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        return !await db.Users.AnyAsync(ct);
    }

    /// <summary>Issues a fresh token and retires earlier ones; returns null when setup is already done.</summary>
    public async Task<string?> IssueTokenAsync(CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        if (await db.Users.AnyAsync(ct)) return null;
        var now = clock.GetUtcNow();
        await db.SetupTokens.Where(t => t.UsedAt == null).ExecuteUpdateAsync(s => s.SetProperty(t => t.ExpiresAt, now), ct);
        var token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        db.SetupTokens.Add(new SetupToken { TokenHash = Hash(token), CreatedAt = now, ExpiresAt = now + TokenLifetime });
        await db.SaveChangesAsync(ct);
        return token;
    }

    public async Task<PortalUser> CompleteAsync(SetupRequest r, CancellationToken ct = default)
    {
        var token = r.Token?.Trim();
        if (string.IsNullOrEmpty(token)) throw DomainException.Invalid("token", "The setup token is required. It is printed in the portal's console output.");
        Require(r.OrganizationName, "organizationName", "Organization name", 200);
        Require(r.ProjectName, "projectName", "First project name", 200);
        Require(r.Email, "email", "E-mail", 256);
        if (!System.Net.Mail.MailAddress.TryCreate(r.Email!.Trim(), out _)) throw DomainException.Invalid("email", "Enter a valid e-mail address.");
        if (string.IsNullOrEmpty(r.Password)) throw DomainException.Invalid("password", "Password is required.");
        if (r.DisplayName is { Length: > 200 }) throw DomainException.Invalid("displayName", "Display name is limited to 200 characters.");

        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var now = clock.GetUtcNow();
        var hash = Hash(token);
        var row = await db.SetupTokens.FirstOrDefaultAsync(t => t.TokenHash == hash, ct);
        if (row is null || row.UsedAt is not null || row.ExpiresAt <= now)
            throw DomainException.Invalid("token", "The setup token is wrong or has expired. Restart the portal to print a new one.");
        if (await db.Users.AnyAsync(ct)) throw DomainException.Conflict("Setup has already been completed. Sign in instead.");

        foreach (var v in users.PasswordValidators)
        {
            var check = await v.ValidateAsync(users, new PortalUser(), r.Password);
            if (!check.Succeeded) throw DomainException.Invalid("password", string.Join(" ", check.Errors.Select(e => e.Description)));
        }

        await using var tx = await db.Database.BeginTransactionAsync(ct);
        // Claim the token first: a concurrent second submission finds it used and stops here.
        var claimed = await db.SetupTokens.Where(t => t.Id == row.Id && t.UsedAt == null).ExecuteUpdateAsync(s => s.SetProperty(t => t.UsedAt, now), ct);
        if (claimed == 0) throw DomainException.Conflict("Setup has already been completed. Sign in instead.");
        var org = new Organization { Name = r.OrganizationName!.Trim(), CreatedAt = now };
        db.Organizations.Add(org);
        var project = new Project { OrganizationId = org.Id, Name = r.ProjectName!.Trim(), CreatedAt = now };
        db.Projects.Add(project);
        var email = r.Email.Trim();
        var user = new PortalUser
        {
            UserName = email, Email = email, EmailConfirmed = true, DisplayName = string.IsNullOrWhiteSpace(r.DisplayName) ? null : r.DisplayName.Trim(),
            OrganizationId = org.Id, IsOrganizationAdmin = true, CreatedAt = now, LockoutEnabled = true,
            NormalizedEmail = users.NormalizeEmail(email), NormalizedUserName = users.NormalizeName(email),
        };
        user.PasswordHash = users.PasswordHasher.HashPassword(user, r.Password);
        db.Users.Add(user);
        project.CreatedBy = user.Id;
        db.ProjectMembers.Add(new ProjectMember { ProjectId = project.Id, UserId = user.Id, Role = Roles.Admin, AddedAt = now, AddedBy = user.Id });
        db.MembershipChanges.Add(new MembershipChange { ProjectId = project.Id, UserId = user.Id, UserEmail = email, NewRole = Roles.Admin, ChangedBy = user.Id, ChangedByEmail = email, ChangedAt = now });
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        return user;
    }

    /// <summary>
    /// Creates the demo project: one account per role sharing a freshly generated password (returned once, never
    /// stored in clear), and the suite installed at Enterprise Plus with every module on. Idempotent.
    /// </summary>
    public async Task<DemoResult?> SeedDemoAsync(bool includeOrganizationAdmins = true, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        if (await db.Projects.AnyAsync(p => p.IsDemo, ct)) return null;
        var now = clock.GetUtcNow();
        var org = await db.Organizations.OrderBy(o => o.CreatedAt).FirstOrDefaultAsync(ct);
        if (org is null)
        {
            org = new Organization { Name = "Demo Bank", CreatedAt = now };
            db.Organizations.Add(org);
        }
        var project = new Project
        {
            OrganizationId = org.Id, Name = "Demo: Retail banking analytics", IsDemo = true, CreatedAt = now,
            Description = "Sample project with one account per role. Safe to explore and to delete.",
        };
        db.Projects.Add(project);
        await db.SaveChangesAsync(ct);

        var password = MembershipService.GeneratePassword();
        var accounts = new List<DemoAccount>();
        foreach (var role in Roles.All)
        {
            var email = $"{role}@demo.local";
            var user = await users.FindByEmailAsync(email);
            if (user is null)
            {
                user = new PortalUser
                {
                    UserName = email, Email = email, EmailConfirmed = true, DisplayName = $"Demo {char.ToUpperInvariant(role[0])}{role[1..]}",
                    OrganizationId = org.Id, IsOrganizationAdmin = role == Roles.Admin, CreatedAt = now, LockoutEnabled = true,
                };
                var created = await users.CreateAsync(user, password);
                if (!created.Succeeded) throw new InvalidOperationException(string.Join(" ", created.Errors.Select(e => e.Description)));
            }
            else
            {
                await users.RemovePasswordAsync(user);
                await users.AddPasswordAsync(user, password);
            }
            db.ProjectMembers.Add(new ProjectMember { ProjectId = project.Id, UserId = user.Id, Role = role, AddedAt = now });
            db.MembershipChanges.Add(new MembershipChange { ProjectId = project.Id, UserId = user.Id, UserEmail = email, NewRole = role, ChangedAt = now });
            accounts.Add(new DemoAccount(email, role));
        }
        // Organization admins also join the demo project so they can look around.
        var orgAdmins = includeOrganizationAdmins
            ? await db.Users.Where(u => u.IsOrganizationAdmin && !u.Email!.EndsWith("@demo.local")).Select(u => u.Id).ToListAsync(ct)
            : [];
        foreach (var id in orgAdmins)
            db.ProjectMembers.Add(new ProjectMember { ProjectId = project.Id, UserId = id, Role = Roles.Admin, AddedAt = now });
        await db.SaveChangesAsync(ct);

        var admin = await users.FindByEmailAsync("admin@demo.local");
        await suite.InstallAsync(project.Id, Tier.EnterprisePlus, admin!.Id, "demo", ct);
        foreach (var m in Modules.All) await suite.SetModuleAsync(project.Id, m.Id, true, admin.Id, ct);
        // A sample bank datasource (customers with PII, orders, salaries) with approved queries, grants and masks.
        await demoCatalog.SeedAsync(project.Id, admin.Id, Path.GetFullPath(dbOptions.DataDirectory), ct);
        return new DemoResult(project.Id, password, accounts);
    }

    private static void Require(string? value, string field, string label, int max)
    {
        if (string.IsNullOrWhiteSpace(value)) throw DomainException.Invalid(field, $"{label} is required.");
        if (value.Trim().Length > max) throw DomainException.Invalid(field, $"{label} is limited to {max} characters.");
    }

    public static string Hash(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));
}
