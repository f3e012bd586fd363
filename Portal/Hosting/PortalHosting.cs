using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Components.Authorization;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Portal.Components;
using Portal.Components.Account;
using Portal.Domain;
using Portal.Domain.Persistence;
using Portal.Domain.Tenancy;
using Portal.Gateway;
using Portal.Jobs;
using Portal.Security;
using Radzen;

namespace Portal.Hosting;

public static class PortalHosting
{
    public static WebApplicationBuilder AddPortal(this WebApplicationBuilder builder)
    {
        builder.Configuration.AddSharedSettings();

        builder.Logging.ClearProviders();
        builder.Logging.AddJsonConsole(o =>
        {
            o.IncludeScopes = true; // carries RequestId and TraceId on every line written during a request
            o.UseUtcTimestamp = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
        });

        var services = builder.Services;
        services.AddPortalDomain(builder.Configuration);

        services.AddRazorComponents().AddInteractiveServerComponents();
        services.AddRadzenComponents();
        // Remembers light or dark across full page loads (sign-in, typed addresses); the cookie holds only the theme name.
        services.AddRadzenCookieThemeService(o => { o.Name = "portal.theme"; o.Duration = TimeSpan.FromDays(365); o.IsSecure = false; });
        services.AddCascadingAuthenticationState();
        services.AddScoped<IdentityRedirectManager>();
        services.AddScoped<AuthenticationStateProvider, IdentityRevalidatingAuthenticationStateProvider>();
        services.AddHttpContextAccessor();

        services.AddAuthentication(o =>
            {
                o.DefaultScheme = IdentityConstants.ApplicationScheme;
                o.DefaultSignInScheme = IdentityConstants.ExternalScheme;
            })
            .AddIdentityCookies(c => c.ApplicationCookie?.Configure(o =>
            {
                o.LoginPath = "/Account/Login";
                o.AccessDeniedPath = "/Account/AccessDenied";
                o.Cookie.Name = "portal.auth";
                o.Cookie.HttpOnly = true;
                o.Cookie.SameSite = SameSiteMode.Lax;
                o.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
                o.ExpireTimeSpan = TimeSpan.FromHours(8);
                o.SlidingExpiration = true;
            }));
        // "Sign out everywhere" changes the security stamp; cookies are re-checked against it every minute.
        services.Configure<SecurityStampValidatorOptions>(o => o.ValidationInterval = TimeSpan.FromMinutes(1));
        services.AddIdentityCore<PortalUser>().AddSignInManager<AuditingSignInManager>().AddClaimsPrincipalFactory<PortalClaimsFactory>();

        services.AddSingleton<IAuthorizationPolicyProvider, PermissionPolicyProvider>();
        services.AddSingleton<IAuthorizationHandler, PermissionHandler>();
        services.AddSingleton<Microsoft.AspNetCore.Authorization.IAuthorizationMiddlewareResultHandler, PortalAuthorizationResultHandler>();
        services.AddAuthorization(o =>
        {
            // Deny by default: every page and endpoint needs a signed-in user unless it opts out with [AllowAnonymous].
            o.FallbackPolicy = new AuthorizationPolicyBuilder().RequireAuthenticatedUser().Build();
            o.AddPolicy(OrgAdmin.Policy, p => p.RequireAuthenticatedUser().RequireClaim(OrgAdmin.Claim, "true"));
        });


        services.AddProblemDetails();
        // Only the gateway API is described; pages and account endpoints are not part of the public contract.
        services.AddOpenApi(o => o.ShouldInclude = d => d.RelativePath?.StartsWith("api/", StringComparison.Ordinal) == true);
        services.AddHealthChecks()
            .AddCheck("process", () => HealthCheckResult.Healthy(), tags: ["live"])
            .AddCheck<DatabaseReadyCheck>("database", tags: ["ready"]);
        services.AddSingleton<PrometheusMetrics>();
        services.AddSingleton<SetupState>();
        services.AddScoped<Portal.Components.Layout.ProjectContext>();

        services.AddPortalJobs(builder.Configuration, runScheduler: builder.Configuration.GetValue("Jobs:RunInPortal", true));
        return builder;
    }

    public static WebApplication UsePortal(this WebApplication app)
    {
        app.UseExceptionHandler(new ExceptionHandlerOptions
        {
            StatusCodeSelector = e => e switch
            {
                DomainException d => d.Kind switch
                {
                    ErrorKind.NotFound => 404, ErrorKind.Conflict => 409, ErrorKind.Forbidden => 403, ErrorKind.Unavailable => 503, _ => 400,
                },
                BadHttpRequestException b => b.StatusCode,
                _ => 500,
            },
            ExceptionHandlingPath = "/Error",
            CreateScopeForErrors = true,
        });
        app.UseStatusCodePagesWithReExecute("/not-found", createScopeForStatusCodePages: true);
        app.Use(async (ctx, next) =>
        {
            // Defence in depth for every response, including static files.
            var h = ctx.Response.Headers;
            h.XContentTypeOptions = "nosniff";
            h.XFrameOptions = "DENY";
            h["Referrer-Policy"] = "no-referrer";
            await next();
        });

        app.MapBlazorScript();
        app.UseMiddleware<SetupRedirectMiddleware>();
        app.UseAuthentication();
        app.UseAuthorization();
        app.UseAntiforgery();

        app.MapStaticAssets().AllowAnonymous();
        app.MapRazorComponents<App>().AddInteractiveServerRenderMode();
        app.MapAdditionalIdentityEndpoints();
        app.MapGatewayApi();
        app.MapSuggestionsApi();
        app.MapOpenApi().AllowAnonymous();
        app.MapAuditExports();
        app.MapArchiveExports();
        app.MapReportEndpoints();

        app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = c => c.Tags.Contains("live") }).AllowAnonymous();
        app.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = c => c.Tags.Contains("ready") }).AllowAnonymous();
        app.MapGet("/metrics", (HttpContext ctx, PrometheusMetrics metrics, IConfiguration config) =>
        {
            var token = config["Metrics:BearerToken"];
            if (!string.IsNullOrEmpty(token) && !System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(
                    System.Text.Encoding.UTF8.GetBytes(ctx.Request.Headers.Authorization.ToString()), System.Text.Encoding.UTF8.GetBytes($"Bearer {token}")))
            {
                // A body keeps the status-code pages from replacing this 401 with the HTML not-found page (or /setup).
                ctx.Response.Headers.WWWAuthenticate = "Bearer";
                return Results.Problem(statusCode: StatusCodes.Status401Unauthorized, title: "Metrics need the bearer token configured in Metrics:BearerToken.");
            }
            return Results.Text(metrics.Render(), "text/plain; version=0.0.4; charset=utf-8");
        }).AllowAnonymous().ExcludeFromDescription();
        return app;
    }

    /// <summary>Applies database scripts, issues the first-run setup token and seeds the demo project when asked.</summary>
    public static async Task PrepareAsync(this WebApplication app)
    {
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Portal.Startup");
        var db = app.Services.GetRequiredService<PortalDatabase>();
        await db.MigrateAtStartupAsync(logger, clock: app.Services.GetRequiredService<TimeProvider>());
        await Portal.Domain.Security.DatabaseKeyRing.EnsureReadableAsync(app.Services.GetRequiredService<Microsoft.EntityFrameworkCore.IDbContextFactory<Portal.Domain.Persistence.PortalDbContext>>(),
            app.Services.GetRequiredService<Portal.Domain.Security.SecretProtector>());

        await using var scope = app.Services.CreateAsyncScope();
        var setup = scope.ServiceProvider.GetRequiredService<SetupService>();
        var state = app.Services.GetRequiredService<SetupState>();
        var config = app.Configuration;
        if (config.GetValue("Portal:SeedDemo", false))
        {
            var demo = await setup.SeedDemoAsync();
            if (demo is not null)
            {
                // Printed once so a newcomer can sign in; only hashes are stored.
                Console.WriteLine($"Demo project created. Sign in at {config["Portal:PublicUrl"]}/Account/Login as one of: {string.Join(", ", demo.Accounts.Select(a => a.Email))} with password: {demo.Password}");
            }
        }
        if (await setup.IsSetupRequiredAsync())
        {
            var token = await setup.IssueTokenAsync();
            state.Required = true;
            Console.WriteLine($"First-run setup: open {config["Portal:PublicUrl"]}/setup and enter the setup token {token}");
        }
    }
}

/// <summary>Remembers whether first-run setup is still pending (it never becomes pending again once done).</summary>
public sealed class SetupState
{
    public volatile bool Required;
}

/// <summary>While no account exists, every page leads to the setup page.</summary>
public sealed class SetupRedirectMiddleware(RequestDelegate next, SetupState state)
{
    public async Task InvokeAsync(HttpContext context)
    {
        if (state.Required)
        {
            var path = context.Request.Path;
            var passThrough = path.StartsWithSegments("/setup") || path.StartsWithSegments("/_framework") || path.StartsWithSegments("/_content")
                || path.StartsWithSegments("/health") || path.StartsWithSegments("/metrics") || path.StartsWithSegments("/api") || Path.HasExtension(path.Value);
            if (!passThrough)
            {
                // Resolved only here: it brings a UserManager and a DbContext, which every API call would otherwise build and drop.
                var setup = context.RequestServices.GetRequiredService<SetupService>();
                if (await setup.IsSetupRequiredAsync()) { context.Response.Redirect("/setup"); return; }
                state.Required = false;
            }
        }
        await next(context);
    }
}

public sealed class DatabaseReadyCheck(PortalDatabase db) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken ct = default)
    {
        try
        {
            var pending = await db.CreateMigrationRunner().PendingAsync(ct);
            return pending.Count == 0
                ? HealthCheckResult.Healthy($"{db.Provider} reachable; schema up to date")
                : HealthCheckResult.Unhealthy($"{pending.Count} database script(s) not applied: {string.Join(", ", pending)}");
        }
        catch (Exception e)
        {
            return HealthCheckResult.Unhealthy($"{db.Provider} database not ready: {e.GetBaseException().Message}");
        }
    }
}
