using System.Security.Claims;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.Options;
using Portal.Domain.Tenancy;

namespace Portal.Security;

/// <summary>Installation-wide pages (background jobs, all projects) need an organization admin.</summary>
public static class OrgAdmin
{
    public const string Policy = "org-admin";
    public const string Claim = "org_admin";
}

public sealed class PortalClaimsFactory(UserManager<PortalUser> users, IOptions<IdentityOptions> options)
    : UserClaimsPrincipalFactory<PortalUser>(users, options)
{
    protected override async Task<ClaimsIdentity> GenerateClaimsAsync(PortalUser user)
    {
        var identity = await base.GenerateClaimsAsync(user);
        if (user.IsOrganizationAdmin) identity.AddClaim(new Claim(OrgAdmin.Claim, "true"));
        if (!string.IsNullOrEmpty(user.DisplayName)) identity.AddClaim(new Claim("display_name", user.DisplayName));
        return identity;
    }
}
