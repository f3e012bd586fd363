using System.Security.Claims;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc;
using Portal.Domain.Tenancy;

namespace Portal.Components.Account;

internal static class IdentityComponentsEndpointRouteBuilderExtensions
{
    public static IEndpointConventionBuilder MapAdditionalIdentityEndpoints(this IEndpointRouteBuilder endpoints)
    {
        var accountGroup = endpoints.MapGroup("/Account");

        // Antiforgery is validated by the framework for form posts to minimal APIs.
        accountGroup.MapPost("/Logout", async (ClaimsPrincipal user, [FromServices] SignInManager<PortalUser> signInManager, [FromForm] string? returnUrl) =>
        {
            await signInManager.SignOutAsync();
            return TypedResults.LocalRedirect("~/Account/Login");
        }).RequireAuthorization();

        // Sign out everywhere: a new security stamp invalidates every other cookie and interactive session.
        accountGroup.MapPost("/LogoutEverywhere", async (ClaimsPrincipal user, [FromServices] SignInManager<PortalUser> signInManager) =>
        {
            var account = await signInManager.UserManager.GetUserAsync(user);
            if (account is not null) await signInManager.UserManager.UpdateSecurityStampAsync(account);
            await signInManager.SignOutAsync();
            return TypedResults.LocalRedirect("~/Account/Login?signedOutEverywhere=1");
        }).RequireAuthorization();

        return accountGroup;
    }
}
