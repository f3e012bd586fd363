using System.Globalization;
using Microsoft.AspNetCore.Http.Features;
using Portal.Domain;
using Portal.Domain.Audit;
using Portal.Domain.Persistence;
using Portal.Domain.Tenancy;
using Portal.Security;

namespace Portal.Hosting;

/// <summary>The audit log filters as query-string values, shared by the Audit Log page and its export links.</summary>
public static class AuditFilterQuery
{
    public static AuditExportFilter Parse(IQueryCollection q)
    {
        var types = q["type"].Where(t => !string.IsNullOrWhiteSpace(t)).Select(t => t!).ToList();
        return new AuditExportFilter
        {
            From = Date(q["from"], "from"),
            To = Date(q["to"], "to"),
            EventTypes = types.Count > 0 ? types : null,
            Actor = NullIfBlank(q["actor"]),
            SecurityLevel = NullIfBlank(q["level"]) is { } l
                ? Enum.TryParse<AuditSecurityLevel>(l, true, out var level) && Enum.IsDefined(level) ? level
                    : throw DomainException.Invalid("level", "Security level must be normal, warning or alert.")
                : null,
            Text = NullIfBlank(q["q"]),
        };
    }

    /// <summary>The query string (with leading "?", or empty) that <see cref="Parse"/> reads back.</summary>
    public static string ToQueryString(AuditExportFilter f)
    {
        var parts = new List<KeyValuePair<string, string?>>();
        if (f.From is { } from) parts.Add(new("from", from.UtcDateTime.ToString("O", CultureInfo.InvariantCulture)));
        if (f.To is { } to) parts.Add(new("to", to.UtcDateTime.ToString("O", CultureInfo.InvariantCulture)));
        foreach (var t in f.EventTypes ?? []) parts.Add(new("type", t));
        if (f.Actor is { } a) parts.Add(new("actor", a));
        if (f.SecurityLevel is { } l) parts.Add(new("level", l.ToString().ToLowerInvariant()));
        if (f.Text is { } text) parts.Add(new("q", text));
        return QueryString.Create(parts).ToUriComponent();
    }

    /// <summary>"archived=1": the export also reads the project's archive files (the Audit Log's "include archived" switch).</summary>
    public static bool IncludeArchived(IQueryCollection q) => q["archived"].ToString() is "1" or "true";

    /// <summary>The query string of <see cref="ToQueryString(AuditExportFilter)"/> plus the archive switch.</summary>
    public static string ToQueryString(AuditExportFilter f, bool includeArchived)
    {
        var qs = ToQueryString(f);
        return !includeArchived ? qs : qs.Length == 0 ? "?archived=1" : qs + "&archived=1";
    }

    private static string? NullIfBlank(string? s) => string.IsNullOrWhiteSpace(s) ? null : s.Trim();

    private static DateTimeOffset? Date(string? value, string field) =>
        NullIfBlank(value) is not { } s ? null
        : DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var d) ? d
        : throw DomainException.Invalid(field, $"'{field}' must be a date such as 2026-01-31 or 2026-01-31T08:00:00Z.");
}

/// <summary>CSV and JSON downloads of a project's audit trail, with the page's filters, streamed at any size.</summary>
public static class AuditEndpoints
{
    public static void MapAuditExports(this IEndpointRouteBuilder app)
    {
        app.MapGet("/p/{ProjectId:guid}/audit/export.csv", (Guid projectId, HttpContext ctx, AuditExporter exporter, PortalDbContext db) =>
                ExportAsync(projectId, ctx, exporter, db, AuditExportFormat.Csv, "text/csv; charset=utf-8", "csv"))
            .RequireAuthorization(PermissionPolicy.Prefix + Permissions.AuditExport).ExcludeFromDescription();
        app.MapGet("/p/{ProjectId:guid}/audit/export.json", (Guid projectId, HttpContext ctx, AuditExporter exporter, PortalDbContext db) =>
                ExportAsync(projectId, ctx, exporter, db, AuditExportFormat.JsonArray, "application/json; charset=utf-8", "json"))
            .RequireAuthorization(PermissionPolicy.Prefix + Permissions.AuditExport).ExcludeFromDescription();
    }

    private static async Task ExportAsync(Guid projectId, HttpContext ctx, AuditExporter exporter, PortalDbContext db,
        AuditExportFormat format, string contentType, string extension)
    {
        AuditExportFilter filter;
        try { filter = AuditFilterQuery.Parse(ctx.Request.Query); }
        catch (DomainException e) { await BadFilterAsync(ctx, e); return; }
        var user = await PortalAudit.UserAsync(db, projectId, ctx.User.UserId()!.Value, ctx.RequestAborted);
        var actor = user with
        {
            ClientIp = ctx.Connection.RemoteIpAddress?.ToString(),
            UserAgent = ctx.Request.Headers.UserAgent.ToString() is { Length: > 0 } ua ? ua[..Math.Min(ua.Length, 512)] : null,
            RequestId = ctx.TraceIdentifier,
        };
        ctx.Response.ContentType = contentType;
        ctx.Response.Headers.ContentDisposition =
            $"attachment; filename=\"audit-{projectId:N}-{DateTime.UtcNow:yyyyMMdd-HHmmss}.{extension}\"";
        ctx.Response.Headers.CacheControl = "no-store";
        // Rows are written as they are read; buffering would hold the whole export in memory.
        ctx.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        try
        {
            await exporter.ExportAsync(projectId, filter, format, ctx.Response.Body, actor, ctx.RequestAborted,
                includeArchived: AuditFilterQuery.IncludeArchived(ctx.Request.Query));
        }
        catch (DomainException e) when (e.Kind == ErrorKind.Validation && !ctx.Response.HasStarted)
        {
            // The exporter checks the filter before it writes anything, so the download headers can still be taken back.
            ctx.Response.Headers.ContentDisposition = default;
            await BadFilterAsync(ctx, e);
        }
    }

    /// <summary>A bad filter is the caller's mistake, answered 400 with the field, not logged as a server error.</summary>
    private static Task BadFilterAsync(HttpContext ctx, DomainException e) =>
        Results.ValidationProblem(new Dictionary<string, string[]> { [e.Field ?? "filter"] = [e.Message] }, title: e.Message).ExecuteAsync(ctx);
}
