using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Portal.Domain;
using Portal.Domain.Audit;
using Portal.Domain.Gateway;
using Portal.Domain.Gateway.Catalog;
using Portal.Domain.Governance;
using Portal.Domain.Security.ApiKeys;

namespace Portal.Gateway;

/// <summary>
/// Agents suggest queries for review: POST /api/v1/suggestions with an API key that carries the "suggest" scope
/// (its role must hold suggestions.submit), then follow them with GET. Like the gateway API the group is anonymous at
/// the ASP.NET level; the key is checked (and audited) first, and every rule lives in <see cref="SuggestionService"/>.
/// </summary>
public static class SuggestionsApi
{
    /// <summary>Room for 64 KB of SQL plus a prompt, a justification and parameter definitions.</summary>
    public const int MaxBodyBytes = 256 * 1024;

    public sealed record SuggestionList(IReadOnlyList<SuggestionResponse> Suggestions, int Total, int Skip, int Take);

    public sealed record SuggestionResponse(
        Guid Id, string Status, string Name, Guid DatasourceId, Guid? QueryId, string Sql, IReadOnlyList<QueryParameter> Parameters,
        IReadOnlyList<string> Tables, IReadOnlyList<string> Classifications, IReadOnlyList<RiskFlag> Risks, DateTimeOffset CreatedAt,
        DateTimeOffset ExpiresAt, DateTimeOffset? DecidedAt, string? DecisionReason, Guid? ApprovedQueryId, int? ApprovedVersion);

    public static IEndpointRouteBuilder MapSuggestionsApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/v1").AllowAnonymous().WithTags("Suggestions").DisableAntiforgery();
        api.MapPost("/suggestions", SubmitAsync)
            .WithSummary("Suggests a query (or, with queryId, a change to one) for review; the engine checks it and flags its risks.")
            .Accepts<SuggestionRequest>("application/json")
            .Produces<SuggestionResponse>(201).ProducesValidationProblem().ProducesProblem(401).ProducesProblem(403).ProducesProblem(404)
            .ProducesProblem(409).ProducesProblem(413).ProducesProblem(503);
        api.MapGet("/suggestions", ListAsync)
            .WithSummary("This key's suggestions, newest first, with their status (?status=pending|approved|rejected|expired|withdrawn, skip, take).")
            .Produces<SuggestionList>().ProducesProblem(401).ProducesProblem(403);
        api.MapGet("/suggestions/{id}", GetAsync)
            .WithSummary("One of this key's suggestions.")
            .Produces<SuggestionResponse>().ProducesProblem(401).ProducesProblem(403).ProducesProblem(404);
        return app;
    }

    private static async Task<IResult> SubmitAsync(HttpContext ctx, GatewayService gateway, SuggestionService suggestions, ApiKeyService keys)
    {
        var (principal, denied) = await AuthenticateAsync(ctx, gateway);
        if (denied is not null) return denied;
        if (ctx.Request.ContentLength > MaxBodyBytes) return Problem(413, "The request body is too large.", "body", $"At most {MaxBodyBytes} bytes are accepted.");
        var (body, tooLarge) = await GatewayApi.ReadBodyAsync(ctx, MaxBodyBytes);
        if (tooLarge) return Problem(413, "The request body is too large.", "body", $"At most {MaxBodyBytes} bytes are accepted.");
        SuggestionRequest? request;
        try { request = JsonSerializer.Deserialize<SuggestionRequest>(body, CatalogJson.Options); }
        catch (JsonException e) { return Problem(400, "The body is not a valid suggestion.", Field(e.Path), JsonMessage(e)); }
        if (request is null) return Problem(400, "The body is not a valid suggestion.", "body", "Send a JSON object.");
        try
        {
            var key = await keys.GetAsync(principal!.ProjectId, principal.KeyId, ctx.RequestAborted);
            var actor = new AuditActor("api_key", principal.KeyId.ToString(), Role: principal.Role, ClientIp: ctx.Connection.RemoteIpAddress?.ToString(),
                UserAgent: ctx.Request.Headers.UserAgent.ToString() is { Length: > 0 } ua ? ua : null, RequestId: ctx.TraceIdentifier);
            var row = await suggestions.SubmitAsync(principal.ProjectId, request,
                Submitter.ApiKey(principal.KeyId, $"{principal.KeyName} (key {principal.KeyPrefix})", key.CreatedBy, principal.Role), actor, ctx.RequestAborted);
            return Results.Created($"/api/v1/suggestions/{row.Id}", ToResponse(row));
        }
        catch (DomainException e) { return Problem(e); }
    }

    private static async Task<IResult> ListAsync(HttpContext ctx, GatewayService gateway, SuggestionService suggestions, string? status, int? skip, int? take)
    {
        var (principal, denied) = await AuthenticateAsync(ctx, gateway);
        if (denied is not null) return denied;
        if (status is not null && !SuggestionStatuses.All.Contains(status))
            return Problem(400, "Unknown status.", "status", $"Status is one of {string.Join(", ", SuggestionStatuses.All)}.");
        var page = await suggestions.ListAsync(principal!.ProjectId, new SuggestionFilter(Status: status, SubmittedBy: principal.KeyId), skip ?? 0, take ?? 50, ctx.RequestAborted);
        return Results.Ok(new SuggestionList(page.Items.Select(ToResponse).ToList(), page.Total, page.Skip, page.Take));
    }

    private static async Task<IResult> GetAsync(string id, HttpContext ctx, GatewayService gateway, SuggestionService suggestions)
    {
        var (principal, denied) = await AuthenticateAsync(ctx, gateway);
        if (denied is not null) return denied;
        // Another key's suggestion, another project's, a missing one and a malformed id all answer the same 404.
        if (!Guid.TryParse(id, out var suggestionId)) return Problem(new DomainException(ErrorKind.NotFound, "Suggestion was not found."));
        try
        {
            var row = await suggestions.GetAsync(principal!.ProjectId, suggestionId, ctx.RequestAborted);
            if (row.SubmittedBy != principal.KeyId) throw DomainException.NotFound("Suggestion");
            return Results.Ok(ToResponse(row));
        }
        catch (DomainException e) { return Problem(e); }
    }

    /// <summary>The key (audited by the gateway) and the "suggest" scope; a key without it answers 403.</summary>
    private static async Task<(GatewayPrincipal? Principal, IResult? Denied)> AuthenticateAsync(HttpContext ctx, GatewayService gateway)
    {
        var request = new GatewayRequestContext(ctx.Connection.RemoteIpAddress?.ToString(), ctx.Request.Headers.UserAgent.ToString() is { Length: > 0 } ua ? ua : null, ctx.TraceIdentifier);
        var auth = await gateway.AuthenticateAsync(GatewayApi.PresentedKey(ctx), request, ctx.RequestAborted);
        if (auth.Denial is { } d)
        {
            ctx.Response.Headers.WWWAuthenticate = "Bearer";
            return (null, Results.Problem(statusCode: d.StatusCode, title: d.Title, extensions: new Dictionary<string, object?> { ["code"] = "unauthenticated" }));
        }
        if (auth.Value!.Scopes?.Contains(ApiKeyRules.SuggestScope) != true)
            return (null, Results.Problem(statusCode: 403, title: $"This API key lacks the '{ApiKeyRules.SuggestScope}' scope needed to suggest queries.",
                extensions: new Dictionary<string, object?> { ["code"] = "forbidden" }));
        return (auth.Value, null);
    }

    private static string Field(string? jsonPath)
    {
        if (string.IsNullOrEmpty(jsonPath) || jsonPath == "$") return "body";
        return jsonPath.StartsWith("$.", StringComparison.Ordinal) ? jsonPath[2..] : jsonPath.TrimStart('$');
    }

    private static string JsonMessage(JsonException e) => e.Path is null or "$"
        ? "The body is not valid JSON."
        : $"'{Field(e.Path)}' has the wrong type or format.";

    private static IResult Problem(int status, string title, string field, string message) =>
        Results.Problem(statusCode: status, title: title, extensions: new Dictionary<string, object?> { ["errors"] = new Dictionary<string, string[]> { [field] = [message] } });

    private static IResult Problem(DomainException e)
    {
        var status = e.Kind switch { ErrorKind.NotFound => 404, ErrorKind.Conflict => 409, ErrorKind.Forbidden => 403, ErrorKind.Unavailable => 503, _ => 400 };
        var extensions = new Dictionary<string, object?>();
        if (e.Field is not null) extensions["errors"] = new Dictionary<string, string[]> { [e.Field] = [e.Message] };
        return Results.Problem(statusCode: status, title: e.Message, extensions: extensions);
    }

    private static SuggestionResponse ToResponse(SuggestionRow s) => new(
        s.Id, s.Status, s.Name, s.DatasourceId, s.QueryId, s.Sql, s.Parameters, s.Analysis.Tables, s.Analysis.Classifications, s.Analysis.Risks,
        s.CreatedAt, s.ExpiresAt, s.DecidedAt, s.DecisionReason, s.ResultQueryId, s.ResultVersion);
}
