using System.Security.Claims;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Policy;
using Microsoft.AspNetCore.Components;
using Microsoft.Extensions.Options;
using Portal.Domain.Tenancy;

namespace Portal.Security;

/// <summary>Declares the permission a page or endpoint needs in the project named by its {ProjectId} route value.</summary>
public sealed class RequirePermissionAttribute : AuthorizeAttribute
{
    public RequirePermissionAttribute(string permission) : base(PermissionPolicy.Prefix + permission) => Permission = permission;
    public string Permission { get; }
}

public sealed class PermissionRequirement(string permission) : IAuthorizationRequirement
{
    public string Permission { get; } = permission;
}

/// <summary>Marks a denial because the user is not a member of the project: answered 404, like a missing project.</summary>
public sealed class NotAProjectMember(IAuthorizationHandler handler) : AuthorizationFailureReason(handler, "not a member of this project");

/// <summary>Marks a denial because the permission's module is off; pages explain how to turn it on.</summary>
public sealed class ModuleDisabled(IAuthorizationHandler handler, string module) : AuthorizationFailureReason(handler, $"module '{module}' is not enabled")
{
    public string Module { get; } = module;
}

public static class PermissionPolicy
{
    public const string Prefix = "perm:";

    public static Guid? ProjectIdFrom(object? resource) => resource switch
    {
        HttpContext http => Parse(http.GetRouteValue("ProjectId")),
        Microsoft.AspNetCore.Components.RouteData route => route.RouteValues.TryGetValue("ProjectId", out var v) ? Parse(v) : null,
        Guid g => g,
        _ => null,
    };

    private static Guid? Parse(object? value) => value switch
    {
        Guid g => g,
        string s when Guid.TryParse(s, out var g) => g,
        _ => null,
    };

    public static Guid? UserId(this ClaimsPrincipal user) =>
        Guid.TryParse(user.FindFirstValue(ClaimTypes.NameIdentifier), out var id) ? id : null;
}

/// <summary>Builds "perm:{name}" policies on demand so every permission in the role table is a policy.</summary>
public sealed class PermissionPolicyProvider(IOptions<AuthorizationOptions> options) : DefaultAuthorizationPolicyProvider(options)
{
    public override async Task<AuthorizationPolicy?> GetPolicyAsync(string policyName)
    {
        if (policyName.StartsWith(PermissionPolicy.Prefix, StringComparison.Ordinal))
        {
            var permission = policyName[PermissionPolicy.Prefix.Length..];
            if (!Permissions.Exists(permission)) throw new InvalidOperationException($"Unknown permission '{permission}' in a policy.");
            return new AuthorizationPolicyBuilder().RequireAuthenticatedUser().AddRequirements(new PermissionRequirement(permission)).Build();
        }
        return await base.GetPolicyAsync(policyName);
    }
}

/// <summary>Grants a permission from the member's role in the route's project and the module gate (deny by default).</summary>
public sealed class PermissionHandler(ProjectAccess access) : AuthorizationHandler<PermissionRequirement>
{
    protected override async Task HandleRequirementAsync(AuthorizationHandlerContext context, PermissionRequirement requirement)
    {
        var userId = context.User.UserId();
        var projectId = PermissionPolicy.ProjectIdFrom(context.Resource);
        if (userId is null || projectId is null) { context.Fail(); return; }
        var decision = await access.CheckAsync(projectId.Value, userId.Value, requirement.Permission);
        if (decision.Allowed) context.Succeed(requirement);
        else if (decision == AccessDecision.NotMember) context.Fail(new NotAProjectMember(this));
        else if (decision.DisabledModule is { } module) context.Fail(new ModuleDisabled(this, module));
        else context.Fail(new AuthorizationFailureReason(this, decision.Reason ?? "denied"));
    }
}

/// <summary>
/// A signed-in user asking for a project they do not belong to gets 404, exactly like a project that does not exist;
/// a member whose role or module does not allow a page gets 403 with the page's own explanation (AccessProblem says
/// which role they have or which module is off) instead of a generic redirect. API callers get problem details.
/// </summary>
public sealed class PortalAuthorizationResultHandler : IAuthorizationMiddlewareResultHandler
{
    private readonly AuthorizationMiddlewareResultHandler fallback = new();

    public async Task HandleAsync(RequestDelegate next, HttpContext context, AuthorizationPolicy policy, PolicyAuthorizationResult result)
    {
        var isApi = context.Request.Path.StartsWithSegments("/api");
        // Only a Razor page may run after a denial: its router checks the same policy again and renders AccessProblem
        // instead of the page. Any other endpoint must never execute for a denied caller.
        var isPage = context.GetEndpoint()?.Metadata.GetMetadata<Microsoft.AspNetCore.Components.Endpoints.ComponentTypeMetadata>() is not null;
        if (result.Forbidden && result.AuthorizationFailure?.FailureReasons.Any(r => r is NotAProjectMember) == true)
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            if (isApi) await Results.Problem(statusCode: 404, title: "Not found").ExecuteAsync(context);
            else if (isPage) await next(context);
            return;
        }
        if (isApi && (result.Challenged || result.Forbidden))
        {
            var status = result.Challenged ? 401 : 403;
            await Results.Problem(statusCode: status, title: result.Challenged ? "Authentication required" : "Forbidden",
                detail: result.Forbidden ? string.Join("; ", result.AuthorizationFailure?.FailureReasons.Select(r => r.Message) ?? []) : null).ExecuteAsync(context);
            return;
        }
        if (result.Forbidden && isPage && context.User.Identity?.IsAuthenticated == true)
        {
            context.Response.StatusCode = StatusCodes.Status403Forbidden;
            await next(context);
            return;
        }
        await fallback.HandleAsync(next, context, policy, result);
    }
}
