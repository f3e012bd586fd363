using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Portal.Domain.Operations;
using Portal.Domain.Audit;
using Portal.Domain.Persistence;
using Portal.Domain.Suite;
using Portal.Domain.Tenancy;

namespace Portal.Domain;

public static class PortalDomainServices
{
    /// <summary>
    /// Registers the portal database and every Domain service. Shared by the Portal web app and the standalone
    /// job worker so both read the same "Database" settings. Throws <see cref="ConfigurationException"/> naming the
    /// bad setting.
    /// </summary>
    public static IServiceCollection AddPortalDomain(this IServiceCollection services, IConfiguration configuration)
    {
        var options = configuration.GetSection(DatabaseOptions.Section).Get<DatabaseOptions>() ?? new DatabaseOptions();
        var provider = options.ParsedProvider;
        var connectionString = options.ResolveConnectionString();
        services.AddSingleton(options);
        services.AddSingleton(new PortalDatabase(provider, connectionString));
        services.TryAddTimeProvider();

        services.AddDbContextFactory<PortalDbContext>(o => Configure(o, provider, connectionString));
        services.AddScoped(sp => sp.GetRequiredService<IDbContextFactory<PortalDbContext>>().CreateDbContext());

        services.AddIdentityCore<PortalUser>(o =>
            {
                o.User.RequireUniqueEmail = true;
                o.SignIn.RequireConfirmedAccount = false;
                o.Password.RequiredLength = 12;
                o.Password.RequireDigit = true;
                o.Password.RequireLowercase = true;
                o.Password.RequireUppercase = true;
                o.Password.RequireNonAlphanumeric = false;
                o.Password.RequiredUniqueChars = 4;
                o.Lockout.AllowedForNewUsers = true;
                o.Lockout.MaxFailedAccessAttempts = 5;
                o.Lockout.DefaultLockoutTimeSpan = TimeSpan.FromMinutes(15);
                o.Stores.SchemaVersion = IdentitySchemaVersions.Version1;
            })
            .AddEntityFrameworkStores<PortalDbContext>()
            .AddDefaultTokenProviders();

        services.AddSingleton(sp => Security.SecretProtector.FromConfiguration(configuration, options,
            sp.GetService<Microsoft.Extensions.Logging.ILoggerFactory>()?.CreateLogger("Portal.Security")));
        // Identity's token providers (password reset, 2FA) need data protection. Registered here rather than in the web
        // host so the worker and tests resolve UserManager too, and all processes share one key ring.
        // The key ring lives in the portal database (every node and worker shares it) and is encrypted at rest with the
        // portal's secret keys.
        services.AddDataProtection().SetApplicationName("governance-portal");
        var legacyKeys = Path.GetFullPath(Path.Combine(options.DataDirectory, "keys"));
        services.AddOptions<Microsoft.AspNetCore.DataProtection.KeyManagement.KeyManagementOptions>()
            .Configure<Security.SecretProtector, IServiceProvider, Microsoft.Extensions.Logging.ILoggerFactory>((o, protector, sp, logs) =>
            {
                o.XmlEncryptor = new Security.SecretXmlEncryptor(protector);
                o.XmlRepository = new Security.DatabaseKeyRing(sp, logs, legacyKeys);
            });

        // One audit writer per process: it owns the group-commit loop and the in-memory chain heads.
        services.AddSingleton<AuditWriter>(sp => new AuditWriter(
            sp.GetRequiredService<PortalDatabase>(), sp.GetRequiredService<TimeProvider>(),
            sp.GetService<Microsoft.Extensions.Logging.ILogger<AuditWriter>>(), sp.GetService<AuditWriterOptions>()));
        services.AddSingleton<AuditVerifier>();
        services.AddSingleton<AuditExporter>();
        services.AddSingleton<AuditSearch>();
        services.AddSingleton<AuditActivity>();
        services.AddSingleton<PortalAudit>();
        services.AddSingleton<SignInAudit>();
        services.AddSingleton<SuiteService>();
        services.AddSingleton<ProjectAccess>();
        services.AddSingleton<ProjectService>();
        services.AddScoped<MembershipService>();
        services.AddScoped<SetupService>();
        services.AddSingleton<JobRunLog>();
        services.AddSingleton<HousekeepingService>();
        services.AddSingleton<Integrations.NotificationService>();
        services.AddSingleton<Security.ApiKeys.ApiKeyCache>();
        services.AddSingleton<Security.ApiKeys.ApiKeyService>();
        services.AddSingleton<Security.RateLimits.RateLimiter>();
        services.AddSingleton<Security.RateLimits.RateLimitService>();
        services.AddSingleton<Gateway.Catalog.DatasourceService>();
        services.AddSingleton<Security.SecretRotation>();
        services.AddSingleton<Gateway.Catalog.ApprovedQueryService>();
        services.AddSingleton<Gateway.Catalog.DemoCatalog>();
        services.AddSingleton<Access.QueryPermissionService>();
        services.AddSingleton<Access.ColumnMaskService>();
        services.AddSingleton<Access.GatewaySettingsService>();
        services.AddSingleton<Access.MaskPreview>();
        services.AddSingleton<Gateway.MemberPrincipals>();
        services.AddSingleton<Gateway.QueryCatalog>();
        services.AddSingleton(_ => Gateway.GatewayOptions.FromConfiguration(configuration, options));
        services.AddSingleton<Gateway.GatewayService>();
        services.AddSingleton<Gateway.GatewayLookupCache>();
        services.AddSingleton<Governance.SuggestionService>();
        services.AddSingleton<Governance.ApprovalPolicyService>();
        services.AddSingleton<Governance.QueryHistoryService>();
        services.AddSingleton<Security.Alerts.AlertService>();
        services.AddSingleton<Security.RateLimits.RateLimitUsageService>();
        services.AddSingleton<Security.Detectors.DetectorSettingsService>();
        services.AddSingleton<Security.Detectors.AnomalyScanner>();
        services.AddSingleton<Gateway.IGatewayEventListener, Security.Alerts.GatewayAlertListener>();
        services.AddSingleton(configuration.GetSection(Integrations.IntegrationsOptions.Section).Get<Integrations.IntegrationsOptions>() ?? new Integrations.IntegrationsOptions());
        services.AddHttpClient(Integrations.IntegrationsOptions.HttpClientName, c => c.Timeout = Timeout.InfiniteTimeSpan)
            .ConfigurePrimaryHttpMessageHandler(() => new System.Net.Http.SocketsHttpHandler { AllowAutoRedirect = false, MaxConnectionsPerServer = 64, PooledConnectionLifetime = TimeSpan.FromMinutes(5) });
        services.AddSingleton<Integrations.WebhookService>();
        services.AddSingleton<Integrations.WebhookDispatcher>();
        services.AddSingleton<Integrations.SiemExporter>();
        services.AddSingleton<Integrations.SiemService>();
        services.AddSingleton<Compliance.Retention.RetentionService>();
        services.AddSingleton<Compliance.Retention.AuditArchiver>();
        services.AddSingleton<Compliance.Retention.AuditPartitions>();
        services.AddSingleton<IAuditArchive>(sp => sp.GetRequiredService<Compliance.Retention.AuditArchiver>());
        services.AddSingleton<Compliance.IRetentionHorizon, Compliance.Retention.RetentionHorizon>();
        services.AddSingleton<Compliance.ReportDataBuilder>();
        services.AddSingleton<Compliance.ReportSigner>();
        services.AddSingleton<Compliance.ComplianceReportService>();
        services.AddSingleton<Compliance.ReportScheduleService>();
        return services;
    }

    public static void Configure(DbContextOptionsBuilder o, DatabaseProvider provider, string connectionString)
    {
        if (provider == DatabaseProvider.Sqlite) o.UseSqlite(connectionString);
        else o.UseNpgsql(connectionString);
    }

    private static void TryAddTimeProvider(this IServiceCollection services)
    {
        if (services.All(d => d.ServiceType != typeof(TimeProvider))) services.AddSingleton(TimeProvider.System);
    }
}

/// <summary>Which database the portal runs on, resolved once from configuration.</summary>
public sealed record PortalDatabase(DatabaseProvider Provider, string ConnectionString)
{
    public MigrationRunner CreateMigrationRunner(Microsoft.Extensions.Logging.ILogger? logger = null) => new(Provider, ConnectionString, logger);

    /// <summary>
    /// Applies the database scripts at process start (portal or worker, whichever starts first). An unreachable or
    /// unusable database becomes a <see cref="ConfigurationException"/> naming the setting, so startup stops with one line.
    /// </summary>
    public async Task<MigrationResult> MigrateAtStartupAsync(Microsoft.Extensions.Logging.ILogger logger, CancellationToken ct = default, TimeProvider? clock = null)
    {
        MigrationResult result;
        try
        {
            result = await CreateMigrationRunner(logger).RunAsync(ct);
            Microsoft.Extensions.Logging.LoggerExtensions.LogInformation(logger,
                "Portal database ready on {Provider}: {Applied} script(s) applied now, {Earlier} earlier", Provider, result.Applied.Count, result.AlreadyApplied.Count);
        }
        catch (Exception e) when (e is not MigrationException and not ConfigurationException)
        {
            throw new ConfigurationException($"Database:ConnectionString: cannot open the {Provider} portal database ({e.GetBaseException().Message}).", e);
        }
        // PostgreSQL: this month's and the next months' audit partitions, in case the portal was down when the nightly job
        // would have created them. Not fatal: without them events go to the default partition.
        try
        {
            await new Compliance.Retention.AuditPartitions(this, clock ?? TimeProvider.System).EnsureAsync(ct);
        }
        catch (Npgsql.NpgsqlException e)
        {
            Microsoft.Extensions.Logging.LoggerExtensions.LogWarning(logger, e, "Could not create the audit partitions for the coming months; events go to the default partition until the next run");
        }
        return result;
    }
}
