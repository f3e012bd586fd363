using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Portal.Domain.Access;
using Portal.Domain.Audit;
using Portal.Domain.Gateway.Catalog;
using Portal.Domain.Security.ApiKeys;
using Portal.Domain.Security.RateLimits;
using Portal.Domain.Suite;
using Portal.Domain.Tenancy;

namespace Portal.Domain.Gateway;

/// <summary>
/// The governed execution pipeline (DESIGN.md "The pipeline every gateway call walks"): authenticate the key, gate on
/// the access-control module, check the query permission, apply rate limits, validate and screen parameters, run the
/// approved SQL with bound values, a timeout and a row cap, mask by origin column and role, and append the audit
/// event before any row is returned. Every denial is audited too; if the audit trail cannot take the event, the
/// caller gets <see cref="GatewayDenialKind.AuditUnavailable"/> and no data.
/// </summary>
public sealed class GatewayService(
    ApiKeyService keys, SuiteService suite, ApprovedQueryService queries, QueryPermissionService permissions,
    RateLimiter limiter, DatasourceService datasources, ColumnMaskService masks, AuditWriter audit,
    GatewayOptions options, ILogger<GatewayService>? logger = null, IEnumerable<IGatewayEventListener>? listeners = null,
    MemberPrincipals? members = null, GatewaySettingsService? settings = null)
{
    private readonly IGatewayEventListener[] listeners = listeners?.ToArray() ?? [];

    public const string ExecutedEvent = "gateway.query_executed";
    public const string DeniedEvent = "gateway.query_denied";
    public const string ListedEvent = "gateway.queries_listed";
    public const string KeyRejectedEvent = "auth.api_key_rejected";
    private const int MaxAuditedValueLength = 200;

    private readonly ILogger log = (ILogger?)logger ?? NullLogger.Instance;

    // One message for a missing id and another project's id, so a key cannot probe which ids exist elsewhere.
    private static readonly GatewayDenial NotFound = new(GatewayDenialKind.NotFound, "No query with this id is available to this key.", []);

    public async Task<GatewayOutcome<GatewayPrincipal>> AuthenticateAsync(string? presentedKey, GatewayRequestContext request, CancellationToken ct = default)
    {
        var result = await keys.AuthenticateAsync(presentedKey, request.ClientIp, ct);
        ApiKeySecret.TryParsePrefix(presentedKey, out var prefix);
        if (result.Succeeded)
        {
            // A "role:" scope narrows the key: it acts as that role for permissions, rate limits and masks.
            var acting = ApiKeyRules.ActingRole(result.Role!, result.Scopes);
            return GatewayOutcome<GatewayPrincipal>.Ok(new(result.ProjectId!.Value, result.KeyId!.Value, prefix, result.Name ?? "", acting, result.Scopes)
                { KeyRole = acting == result.Role ? null : result.Role });
        }

        var failure = result.Failure ?? ApiKeyFailure.Unknown;
        var denial = new GatewayDenial(GatewayDenialKind.Unauthenticated,
            failure switch
            {
                ApiKeyFailure.Expired => "This API key has expired.",
                ApiKeyFailure.Revoked => "This API key has been revoked.",
                ApiKeyFailure.Superseded => "This API key was replaced by a rotated key.",
                _ => "A valid API key is required (Authorization: Bearer <key> or X-Api-Key).",
            }, []);
        // A recognised key (expired, revoked) is evidence against its own project; an unknown one belongs to no project.
        var draft = new AuditEventDraft
        {
            ProjectId = result.ProjectId ?? AuditEventDraft.OrganizationChain,
            EventType = KeyRejectedEvent,
            Actor = new AuditActor("api_key", result.KeyId?.ToString(), ClientIp: request.ClientIp, UserAgent: request.UserAgent, RequestId: request.RequestId),
            ResourceType = "api_key", ResourceId = result.KeyId?.ToString(), Action = failure.ToString().ToLowerInvariant(),
            Details = PortalAudit.Json(new { keyPrefix = string.IsNullOrEmpty(prefix) ? null : prefix, outcome = "unauthenticated", reason = failure.ToString().ToLowerInvariant() }),
            Success = false, ErrorMessage = denial.Title,
            SecurityLevel = failure is ApiKeyFailure.Revoked or ApiKeyFailure.Superseded ? AuditSecurityLevel.Alert : AuditSecurityLevel.Warning,
        };
        return GatewayOutcome<GatewayPrincipal>.Deny(await AuditedDenialAsync(draft, denial));
    }

    /// <summary>
    /// A signed-in portal member running queries as themselves: their role in the project (a suspended or missing
    /// membership is refused and audited), then the same pipeline as a key.
    /// </summary>
    public async Task<GatewayOutcome<GatewayPrincipal>> AuthenticateMemberAsync(Guid projectId, Guid userId, GatewayRequestContext request, CancellationToken ct = default)
    {
        if (members is not null && await members.FindAsync(projectId, userId, ct) is { } principal) return GatewayOutcome<GatewayPrincipal>.Ok(principal);
        var denial = new GatewayDenial(GatewayDenialKind.Forbidden, "You are not an active member of this project.", []);
        var draft = new AuditEventDraft
        {
            ProjectId = projectId, EventType = DeniedEvent,
            Actor = new AuditActor("user", userId.ToString(), ClientIp: request.ClientIp, UserAgent: request.UserAgent, RequestId: request.RequestId),
            Action = "authenticate", Success = false, ErrorMessage = denial.Title, SecurityLevel = AuditSecurityLevel.Warning,
            Details = PortalAudit.Json(new { outcome = "forbidden", reason = "not an active member" }),
        };
        return GatewayOutcome<GatewayPrincipal>.Deny(await AuditedDenialAsync(draft, denial));
    }

    /// <summary>The active queries this key may view, with their parameter schemas.</summary>
    public async Task<GatewayOutcome<IReadOnlyList<GatewayQuerySummary>>> ListQueriesAsync(GatewayPrincipal principal, GatewayRequestContext request, CancellationToken ct = default)
    {
        if (!await suite.IsModuleEnabledAsync(principal.ProjectId, Modules.AccessControl, ct))
            return GatewayOutcome<IReadOnlyList<GatewayQuerySummary>>.Deny(await DenyAsync(principal, request, null, ModuleDisabled(), "list", null));

        var who = new QueryPrincipal(principal.Role, principal.UserId);
        var visible = new List<GatewayQuerySummary>();
        for (var skip = 0; ; skip += 200)
        {
            var page = await queries.ListAsync(principal.ProjectId, skip, 200, QueryStatuses.Active, ct);
            foreach (var q in page.Items)
                if (principal.InScope(q.Id) && await permissions.CanAsync(principal.ProjectId, q.Id, who, QueryAction.View, ct))
                    visible.Add(new(q.Id, q.Name, q.Description, q.Version, q.Parameters, q.Classifications, q.RowCap));
            if (skip + page.Items.Count >= page.Total || page.Items.Count == 0) break;
        }

        var draft = Draft(principal, request, ListedEvent, null, "list") with
        {
            Details = PortalAudit.Json(new { keyPrefix = principal.AuditKeyPrefix, role = principal.Role, keyRole = principal.KeyRole, outcome = "listed", queries = visible.Count }),
            RowsReturned = visible.Count,
        };
        if (await TryAppendAsync(draft) is null) return GatewayOutcome<IReadOnlyList<GatewayQuerySummary>>.Deny(AuditUnavailable());
        return GatewayOutcome<IReadOnlyList<GatewayQuerySummary>>.Ok(visible);
    }

    public async Task<GatewayOutcome<GatewayResult>> ExecuteAsync(
        GatewayPrincipal principal, Guid queryId, JsonElement? parameters, GatewayRequestContext request,
        IReadOnlyList<FieldError>? requestErrors = null, CancellationToken ct = default)
    {
        if (!await suite.IsModuleEnabledAsync(principal.ProjectId, Modules.AccessControl, ct))
            return Deny(await DenyAsync(principal, request, queryId, ModuleDisabled(), "execute", null));

        ApprovedQueryRow query;
        try { query = await queries.GetAsync(principal.ProjectId, queryId, ct); }
        catch (DomainException e) when (e.Kind == ErrorKind.NotFound) { return Deny(await DenyAsync(principal, request, queryId, NotFound, "execute", null)); }
        // An archived query is no longer offered; answering as for a missing one keeps its existence private.
        if (query.Status != QueryStatuses.Active) return Deny(await DenyAsync(principal, request, queryId, NotFound, "execute", query));

        // A member also needs the role's "run approved queries" permission; a key's role is checked when it is minted.
        if ((principal.IsUser && !Permissions.RoleHas(principal.Role, Permissions.QueriesExecute))
            || !await permissions.CanAsync(principal.ProjectId, queryId, new QueryPrincipal(principal.Role, principal.UserId), QueryAction.Execute, ct))
            return Deny(await DenyAsync(principal, request, queryId,
                new GatewayDenial(GatewayDenialKind.Forbidden, $"{(principal.IsUser ? "Members" : "Keys")} acting as {principal.Role} may not run this query.", []), "execute", query));

        if (!principal.InScope(queryId))
            return Deny(await DenyAsync(principal, request, queryId,
                new GatewayDenial(GatewayDenialKind.Forbidden, "This API key is scoped to other queries.", []), "execute", query));

        var limits = new RateLimitContext(principal.ProjectId, principal.IsUser ? null : principal.KeyId, principal.UserId, principal.Role, queryId.ToString());
        var decision = await limiter.TryAcquireAsync(limits, ct);
        if (!decision.Allowed)
            return Deny(await DenyAsync(principal, request, queryId, new GatewayDenial(GatewayDenialKind.RateLimited,
                decision.Exceeded == RateLimitExceeded.Rows ? "Too many rows read in this window; try again later." : "Too many requests in this window; try again later.",
                [], decision.RetryAfter), "execute", query, level: AuditSecurityLevel.Warning,
                extra: new { limit = decision.Limit?.Scope, exceeded = decision.Exceeded?.ToString().ToLowerInvariant(), retryAfterSeconds = decision.RetryAfterSeconds }));

        var validation = ParameterValidator.Validate(query.Parameters, parameters);
        // Problems with the request itself (a body that is not JSON) are reported with the parameter errors, in one answer.
        if (requestErrors is { Count: > 0 }) validation = validation with { Errors = [.. requestErrors, .. validation.Errors] };
        if (!validation.IsValid)
            return Deny(await DenyAsync(principal, request, queryId,
                new GatewayDenial(GatewayDenialKind.InvalidParameters, "One or more parameters are invalid.", validation.Errors), "execute", query,
                extra: new { errors = validation.Errors.Select(e => new { field = e.Field, message = e.Message }) }));

        var findings = InjectionScreener.ScreenAll(validation.Values);
        // The project's own setting is read only when a value was found suspicious, so ordinary calls pay nothing for it.
        if (findings.Count > 0 && (settings is null ? options.InjectionScreening : await settings.InjectionScreeningAsync(principal.ProjectId, ct)) == InjectionScreeningMode.Block)
            return Deny(await DenyAsync(principal, request, queryId, new GatewayDenial(GatewayDenialKind.InjectionBlocked,
                "A parameter value looks like an SQL injection attempt and was blocked.",
                findings.Select(f => new FieldError(f.Field, $"Blocked: {f.Reason}")).ToList()), "execute", query,
                level: AuditSecurityLevel.Alert, parameters: validation.Values,
                extra: new { injection = findings.Select(f => new { field = f.Field, rule = f.Rule, reason = f.Reason }) }));

        var clock = Stopwatch.StartNew();
        QueryResult result;
        try
        {
            var engine = await datasources.OpenEngineAsync(principal.ProjectId, query.DatasourceId, ct);
            result = await engine.ExecuteAsync(query.Sql, validation.Values, query.RowCap, query.Timeout, ct);
        }
        catch (DatasourceException e)
        {
            var denial = e.Kind == DatasourceErrorKind.Timeout
                ? new GatewayDenial(GatewayDenialKind.Timeout, $"The query ran longer than its {query.TimeoutMs} ms limit and was stopped.", [])
                : new GatewayDenial(GatewayDenialKind.DatasourceFailed, "The datasource could not run this query.", []);
            log.LogWarning("Gateway query {QueryId} failed on its datasource: {Kind}", queryId, e.Kind);
            return Deny(await DenyAsync(principal, request, queryId, denial, "execute", query, parameters: validation.Values,
                durationMs: clock.ElapsedMilliseconds, extra: new { datasourceError = e.Kind.ToString().ToLowerInvariant() }));
        }

        var rules = await masks.RulesForAsync(principal.ProjectId, query.DatasourceId, ct);
        var masked = new MaskingEngine(rules, options.MaskingHashKey).Apply(result, principal.Role);
        var durationMs = (long)result.Duration.TotalMilliseconds;

        var draft = Draft(principal, request, ExecutedEvent, query, "execute") with
        {
            SqlText = query.Sql,
            TablesAccessed = result.Analysis.TablesRead,
            RowsReturned = masked.Rows.Count,
            DurationMs = durationMs,
            DataClassifications = query.Classifications,
            SecurityLevel = findings.Count > 0 ? AuditSecurityLevel.Warning : AuditSecurityLevel.Normal,
            Details = PortalAudit.Json(new
            {
                queryId = query.Id, version = query.Version, keyPrefix = principal.AuditKeyPrefix, role = principal.Role, keyRole = principal.KeyRole, outcome = "executed",
                parameters = Sanitized(validation.Values), truncated = masked.Truncated,
                masking = masked.Masking.Where(m => m.Mask is not null).Select(m => new { column = m.Column, origin = m.Origin, mask = MaskName(m.Mask), reason = m.Reason }),
                injection = findings.Count == 0 ? null : findings.Select(f => new { field = f.Field, rule = f.Rule, flagged = true }),
            }),
        };
        // Durable before the response: without the event, no row leaves the process.
        if (await TryAppendAsync(draft) is not { } receipt) return Deny(AuditUnavailable());
        if (draft.SecurityLevel != AuditSecurityLevel.Normal) await NotifyAsync(draft, null, receipt);
        await limiter.RecordRowsAsync(limits, masked.Rows.Count, CancellationToken.None);

        var columns = masked.Masking.Select(m => new GatewayColumn(m.Column, m.Mask is not null, MaskName(m.Mask))).ToList();
        return GatewayOutcome<GatewayResult>.Ok(new GatewayResult(query.Id, query.Version, columns, masked.Rows, masked.Truncated, durationMs, receipt.Id));
    }

    /// <summary>Refuses a request whose body exceeds <paramref name="maxBytes"/>, before any of it is parsed; audited like every denial.</summary>
    public async Task<GatewayDenial> RefuseOversizedAsync(GatewayPrincipal principal, Guid? queryId, int maxBytes, GatewayRequestContext request) =>
        await DenyAsync(principal, request, queryId, new GatewayDenial(GatewayDenialKind.PayloadTooLarge, $"The request body is larger than {maxBytes / 1024} KB.",
            [new FieldError("body", $"At most {maxBytes} bytes are accepted.")]), "execute", null, level: AuditSecurityLevel.Warning);

    private static GatewayOutcome<GatewayResult> Deny(GatewayDenial denial) => GatewayOutcome<GatewayResult>.Deny(denial);

    private static GatewayDenial ModuleDisabled() =>
        new(GatewayDenialKind.ModuleDisabled, "The access control module is not enabled for this project.", []);

    private static GatewayDenial AuditUnavailable() =>
        new(GatewayDenialKind.AuditUnavailable, "The audit trail is unavailable, so no data can be returned. Try again shortly.", []);

    private static string? MaskName(MaskType? mask) => mask is { } m ? ColumnMaskService.MaskTypeName(m) : null;

    private static AuditEventDraft Draft(GatewayPrincipal principal, GatewayRequestContext request, string eventType, ApprovedQueryRow? query, string action) => new()
    {
        ProjectId = principal.ProjectId,
        EventType = eventType,
        Actor = principal.IsUser
            ? new AuditActor("user", principal.UserId.ToString(), principal.Email, principal.Role, ClientIp: request.ClientIp, UserAgent: request.UserAgent, RequestId: request.RequestId)
            : new AuditActor("api_key", principal.KeyId.ToString(), Role: principal.Role, ClientIp: request.ClientIp, UserAgent: request.UserAgent, RequestId: request.RequestId),
        ResourceType = query is null ? null : "approved_query",
        ResourceId = query?.Id.ToString(),
        Action = action,
    };

    private async Task<GatewayDenial> DenyAsync(GatewayPrincipal principal, GatewayRequestContext request, Guid? queryId, GatewayDenial denial, string action,
        ApprovedQueryRow? query, AuditSecurityLevel? level = null, IReadOnlyList<TypedParameter>? parameters = null, long? durationMs = null, object? extra = null)
    {
        var outcome = denial.Kind.ToString();
        var draft = Draft(principal, request, DeniedEvent, query, action) with
        {
            // The requested id is recorded even when it names nothing in this project, so probing shows in the trail.
            ResourceType = "approved_query",
            ResourceId = queryId?.ToString(),
            Success = false,
            ErrorMessage = denial.Title,
            DurationMs = durationMs,
            SqlText = parameters is null ? null : query?.Sql,
            DataClassifications = query?.Classifications,
            SecurityLevel = level ?? (denial.Kind is GatewayDenialKind.Forbidden or GatewayDenialKind.ModuleDisabled ? AuditSecurityLevel.Warning : AuditSecurityLevel.Normal),
            Details = PortalAudit.Json(new
            {
                queryId, version = query?.Version, keyPrefix = principal.AuditKeyPrefix, role = principal.Role, keyRole = principal.KeyRole,
                outcome = char.ToLowerInvariant(outcome[0]) + outcome[1..], parameters = parameters is null ? null : Sanitized(parameters), detail = extra,
            }),
        };
        return await AuditedDenialAsync(draft, denial);
    }

    private async Task<GatewayDenial> AuditedDenialAsync(AuditEventDraft draft, GatewayDenial denial)
    {
        if (await TryAppendAsync(draft) is not { } receipt) return AuditUnavailable();
        await NotifyAsync(draft, denial, receipt);
        return denial with { EventId = receipt.Id };
    }

    /// <summary>
    /// Tells listeners (security detectors) about an audited denial or a flagged success. A listener's failure is logged
    /// and never changes the caller's answer: the event is already durable, and scans will find it again from the trail.
    /// </summary>
    private async Task NotifyAsync(AuditEventDraft draft, GatewayDenial? denial, AuditReceipt receipt)
    {
        foreach (var listener in listeners)
        {
            try { await listener.OnAuditedAsync(new GatewayAuditedEvent(draft, denial, receipt), CancellationToken.None); }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                log.LogError(e, "Gateway listener {Listener} failed on event {EventId}", listener.GetType().Name, receipt.Id);
            }
        }
    }

    private async Task<AuditReceipt?> TryAppendAsync(AuditEventDraft draft)
    {
        try
        {
            // Not the request's token: once work is done its record must be written even if the caller hung up.
            return await audit.AppendAsync(draft, CancellationToken.None);
        }
        catch (Exception e) when (e is DomainException or InvalidOperationException or System.Data.Common.DbException)
        {
            log.LogError(e, "Gateway audit event {EventType} for project {ProjectId} could not be written; the call is refused", draft.EventType, draft.ProjectId);
            return null;
        }
    }

    /// <summary>Parameter values as audited: typed values as they were bound, long strings cut so the trail stays bounded.</summary>
    private static Dictionary<string, object?> Sanitized(IEnumerable<TypedParameter> values) =>
        values.ToDictionary(v => v.Name, v => v.Value switch
        {
            string s when s.Length > MaxAuditedValueLength => s[..MaxAuditedValueLength] + "…",
            DateOnly d => d.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
            var other => other,
        });
}
