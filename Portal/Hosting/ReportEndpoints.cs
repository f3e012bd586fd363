using Microsoft.AspNetCore.Http.Features;
using Portal.Domain;
using Portal.Domain.Audit;
using Portal.Domain.Compliance;
using Portal.Domain.Persistence;
using Portal.Domain.Tenancy;
using Portal.Security;

namespace Portal.Hosting;

/// <summary>
/// Downloads (signed PDF, CSV of the underlying events) and verification of stored compliance reports. Each needs
/// reports.generate in the project; another project's report id answers 404 like a missing one. Downloads are audited
/// before a byte is sent.
/// </summary>
public static class ReportEndpoints
{
    public static void MapReportEndpoints(this IEndpointRouteBuilder app)
    {
        var policy = PermissionPolicy.Prefix + Permissions.ReportsGenerate;
        app.MapGet("/p/{ProjectId:guid}/reports/{ReportId:guid}/pdf", PdfAsync).RequireAuthorization(policy).ExcludeFromDescription();
        app.MapGet("/p/{ProjectId:guid}/reports/{ReportId:guid}/csv", CsvAsync).RequireAuthorization(policy).ExcludeFromDescription();
        app.MapGet("/p/{ProjectId:guid}/reports/{ReportId:guid}/verify", VerifyAsync).RequireAuthorization(policy).ExcludeFromDescription();
    }

    private static async Task<AuditActor> ActorAsync(HttpContext ctx, PortalDbContext db, Guid projectId)
    {
        var user = await PortalAudit.UserAsync(db, projectId, ctx.User.UserId()!.Value, ctx.RequestAborted);
        return user with
        {
            ClientIp = ctx.Connection.RemoteIpAddress?.ToString(),
            UserAgent = ctx.Request.Headers.UserAgent.ToString() is { Length: > 0 } ua ? ua[..Math.Min(ua.Length, 512)] : null,
            RequestId = ctx.TraceIdentifier,
        };
    }

    private static async Task<IResult> PdfAsync(Guid projectId, Guid reportId, HttpContext ctx, ComplianceReportService reports, PortalDbContext db)
    {
        try
        {
            var (report, pdf) = await reports.DownloadPdfAsync(projectId, reportId, await ActorAsync(ctx, db, projectId), ctx.RequestAborted);
            ctx.Response.Headers.CacheControl = "no-store";
            ctx.Response.Headers["X-Report-Sha256"] = report.PdfSha256;
            return Results.File(pdf, "application/pdf", ComplianceReportService.FileName(report, "pdf"));
        }
        catch (DomainException e) { return Problem(e); }
    }

    private static async Task CsvAsync(Guid projectId, Guid reportId, HttpContext ctx, ComplianceReportService reports, PortalDbContext db)
    {
        ComplianceReport report;
        try { report = await reports.GetAsync(projectId, reportId, ctx.RequestAborted); }
        catch (DomainException e) { await Problem(e).ExecuteAsync(ctx); return; }
        ctx.Response.ContentType = "text/csv; charset=utf-8";
        ctx.Response.Headers.ContentDisposition = $"attachment; filename=\"{ComplianceReportService.FileName(report, "csv")}\"";
        ctx.Response.Headers.CacheControl = "no-store";
        ctx.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        try
        {
            await reports.WriteCsvAsync(projectId, reportId, await ActorAsync(ctx, db, projectId), ctx.Response.Body, ctx.RequestAborted);
        }
        catch (DomainException e) when (!ctx.Response.HasStarted)
        {
            ctx.Response.Headers.ContentDisposition = default;
            await Problem(e).ExecuteAsync(ctx);
        }
    }

    private static async Task<IResult> VerifyAsync(Guid projectId, Guid reportId, HttpContext ctx, ComplianceReportService reports, PortalDbContext db)
    {
        try
        {
            var v = await reports.VerifyAsync(projectId, reportId, await ActorAsync(ctx, db, projectId), ctx.RequestAborted);
            return Results.Ok(new { ok = v.Ok, hashMatches = v.HashMatches, signatureValid = v.Signature.Valid, signedByPortal = v.Signature.SignedByPortal,
                signer = v.Signature.SignerSubject, message = v.Message });
        }
        catch (DomainException e) { return Problem(e); }
    }

    /// <summary>The caller's mistake (unknown id, not ready), answered as problem details rather than logged as a server error.</summary>
    private static IResult Problem(DomainException e) => Results.Problem(title: e.Message, statusCode: e.Kind switch
    {
        ErrorKind.NotFound => StatusCodes.Status404NotFound,
        ErrorKind.Conflict => StatusCodes.Status409Conflict,
        ErrorKind.Forbidden => StatusCodes.Status403Forbidden,
        ErrorKind.Unavailable => StatusCodes.Status503ServiceUnavailable,
        _ => StatusCodes.Status400BadRequest,
    });
}
