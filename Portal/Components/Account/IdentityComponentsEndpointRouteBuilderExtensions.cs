using System.Security.Claims;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc;
using Portal.Domain.Tenancy;

namespace Portal.Components.Account;

internal static class IdentityComponentsEndpointRouteBuilderExtensions
{
    public static IEndpointConventionBuilder MapAdditionalIdentityEndpoints(this IEndpointRouteBuilder endpoints)
    {
        // UseAntiforgery only records its verdict; minimal APIs enforce it only when they bind form data, which
        // LogoutEverywhere does not. Require the token and refuse a request without a valid one explicitly.
        var accountGroup = endpoints.MapGroup("/Account")
            .WithMetadata(new RequireAntiforgeryTokenAttribute())
            .AddEndpointFilter(async (context, next) =>
                context.HttpContext.Features.Get<IAntiforgeryValidationFeature>() is { IsValid: true }
                    ? await next(context)
                    : TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "The form has expired or did not come from this site. Reload the page and try again."));

        accountGroup.MapPost("/Logout", async ([FromServices] SignInManager<PortalUser> signInManager) =>
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
