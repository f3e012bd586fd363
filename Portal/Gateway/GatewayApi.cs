using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Portal.Domain.Gateway;

namespace Portal.Gateway;

/// <summary>
/// The gateway HTTP API for agents and applications. Thin by design: it reads the key and body, hands them to
/// <see cref="GatewayService"/> (which holds every rule) and turns denials into RFC 9457 problem details.
/// The group is anonymous at the ASP.NET level because callers authenticate with an API key, not a portal cookie;
/// the key is the first step of the pipeline and every request without a valid one answers 401.
/// </summary>
public static class GatewayApi
{
    public const int MaxBodyBytes = 64 * 1024;
    public const string ApiKeyHeader = "X-Api-Key";

    public sealed record ExecuteRequest(JsonElement? Parameters);

    public sealed record ExecuteResponse(IReadOnlyList<GatewayColumn> Columns, IReadOnlyList<object?[]> Rows, int RowCount, bool Truncated, long DurationMs, Guid EventId);

    public sealed record QueryList(IReadOnlyList<GatewayQuerySummary> Queries);

    public static IEndpointRouteBuilder MapGatewayApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/v1").AllowAnonymous().WithTags("Gateway").DisableAntiforgery();
        api.MapGet("/queries", ListAsync)
            .WithSummary("The approved queries this API key may run, with their parameter schemas.")
            .Produces<QueryList>().ProducesProblem(401).ProducesProblem(403).ProducesProblem(503);
        api.MapPost("/queries/{id}/execute", ExecuteAsync)
            .WithSummary("Runs an approved query with bound parameters; rows come back masked for the key's role.")
            .Accepts<ExecuteRequest>("application/json")
            .Produces<ExecuteResponse>().ProducesValidationProblem().ProducesProblem(401).ProducesProblem(403).ProducesProblem(404)
            .ProducesProblem(413).ProducesProblem(429).ProducesProblem(502).ProducesProblem(503).ProducesProblem(504);
        return app;
    }

    private static async Task<IResult> ListAsync(HttpContext ctx, GatewayService gateway)
    {
        var request = RequestOf(ctx);
        var auth = await gateway.AuthenticateAsync(PresentedKey(ctx), request, ctx.RequestAborted);
        if (auth.Denial is { } denied) return Problem(ctx, denied);
        var list = await gateway.ListQueriesAsync(auth.Value!, request, ctx.RequestAborted);
        return list.Denial is { } d ? Problem(ctx, d) : Results.Ok(new QueryList(list.Value!));
    }

    private static async Task<IResult> ExecuteAsync(string id, HttpContext ctx, GatewayService gateway)
    {
        // The key comes first (headers only), so an anonymous caller cannot make the portal read a large body.
        var request = RequestOf(ctx);
        var auth = await gateway.AuthenticateAsync(PresentedKey(ctx), request, ctx.RequestAborted);
        if (auth.Denial is { } denied) return Problem(ctx, denied);

        // An id that is not a GUID names no query anywhere: the same 404 as a missing or foreign id.
        var queryId = Guid.TryParse(id, out var g) ? g : Guid.Empty;
        var (body, tooLarge) = ctx.Request.ContentLength > MaxBodyBytes ? (Array.Empty<byte>(), true) : await ReadBodyAsync(ctx);
        if (tooLarge) return Problem(ctx, await gateway.RefuseOversizedAsync(auth.Value!, queryId, MaxBodyBytes, request));
        JsonElement? parameters = null;
        var bodyErrors = new List<FieldError>();
        if (body.Length > 0)
        {
            try
            {
                using var doc = JsonDocument.Parse(body);
                if (doc.RootElement.ValueKind != JsonValueKind.Object) bodyErrors.Add(new("body", "The body must be a JSON object such as { \"parameters\": { ... } }."));
                else if (doc.RootElement.TryGetProperty("parameters", out var p)) parameters = p.Clone();
            }
            catch (JsonException) { bodyErrors.Add(new("body", "The body is not valid JSON.")); }
        }

        var result = await gateway.ExecuteAsync(auth.Value!, queryId, parameters, request, bodyErrors, ctx.RequestAborted);
        if (result.Denial is { } d) return Problem(ctx, d);
        var r = result.Value!;
        return Results.Ok(new ExecuteResponse(r.Columns, r.Rows, r.Rows.Count, r.Truncated, r.DurationMs, r.EventId));
    }

    private static GatewayRequestContext RequestOf(HttpContext ctx) =>
        new(ctx.Connection.RemoteIpAddress?.ToString(), ctx.Request.Headers.UserAgent.ToString() is { Length: > 0 } ua ? ua : null, ctx.TraceIdentifier);

    /// <summary>The API key from <c>Authorization: Bearer</c> or the key header (shared by every agent-facing API).</summary>
    internal static string? PresentedKey(HttpContext ctx)
    {
        var authorization = ctx.Request.Headers.Authorization.ToString();
        if (authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return authorization["Bearer ".Length..].Trim();
        var header = ctx.Request.Headers[ApiKeyHeader].ToString();
        return header.Length > 0 ? header.Trim() : null;
    }

    /// <summary>Reads at most <paramref name="maxBytes"/>; chunked bodies carry no Content-Length, so the cap is enforced while reading.</summary>
    internal static async Task<(byte[] Body, bool TooLarge)> ReadBodyAsync(HttpContext ctx, int maxBytes = MaxBodyBytes)
    {
        if (ctx.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit) limit.MaxRequestBodySize = maxBytes + 1;
        using var buffer = new MemoryStream();
        var chunk = new byte[8192];
        try
        {
            int read;
            while ((read = await ctx.Request.Body.ReadAsync(chunk, ctx.RequestAborted)) > 0)
            {
                buffer.Write(chunk, 0, read);
                if (buffer.Length > maxBytes) return ([], true);
            }
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge) { return ([], true); }
        return (buffer.ToArray(), false);
    }

    private static IResult Problem(HttpContext ctx, GatewayDenial denial)
    {
        if (denial.RetryAfterSeconds is { } retry) ctx.Response.Headers.RetryAfter = retry.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (denial.Kind == GatewayDenialKind.Unauthenticated) ctx.Response.Headers.WWWAuthenticate = "Bearer";
        var extensions = new Dictionary<string, object?> { ["code"] = JsonNamingPolicy.SnakeCaseLower.ConvertName(denial.Kind.ToString()) };
        if (denial.EventId is { } eventId) extensions["eventId"] = eventId;
        if (denial.Errors.Count > 0)
            extensions["errors"] = denial.Errors.GroupBy(e => e.Field).ToDictionary(g => g.Key, g => g.Select(e => e.Message).ToArray());
        return Results.Problem(statusCode: denial.StatusCode, title: denial.Title, extensions: extensions);
    }
}
