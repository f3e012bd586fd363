using Microsoft.AspNetCore.Http.Features;
using Portal.Domain;
using Portal.Domain.Audit;
using Portal.Domain.Compliance.Retention;
using Portal.Domain.Persistence;
using Portal.Domain.Tenancy;
using Portal.Security;

namespace Portal.Hosting;

/// <summary>The download of archived audit events (the slower path: read from the archive files), as JSONL.</summary>
public static class ArchiveEndpoints
{
    public static void MapArchiveExports(this IEndpointRouteBuilder app)
    {
        app.MapGet("/p/{ProjectId:guid}/retention/archive.jsonl", async (Guid projectId, HttpContext ctx, AuditArchiver archiver, PortalAudit audit, PortalDbContext db) =>
            {
                AuditExportFilter filter;
                try { filter = AuditFilterQuery.Parse(ctx.Request.Query); }
                catch (DomainException e)
                {
                    await Results.ValidationProblem(new Dictionary<string, string[]> { [e.Field ?? "filter"] = [e.Message] }, title: e.Message).ExecuteAsync(ctx);
                    return;
                }
                var from = filter.From ?? DateTimeOffset.UnixEpoch;
                var to = filter.To ?? DateTimeOffset.UtcNow.AddDays(1);
                // The export is itself audited before any row leaves, like the database export.
                await audit.RecordAsync(new AuditEventDraft
                {
                    ProjectId = projectId, EventType = "audit.archive_exported", Actor = await PortalAudit.UserAsync(db, projectId, ctx.User.UserId()!.Value, ctx.RequestAborted),
                    Details = PortalAudit.Json(new { from, to }),
                }, ctx.RequestAborted);
                ctx.Response.ContentType = "application/x-ndjson; charset=utf-8";
                ctx.Response.Headers.ContentDisposition = $"attachment; filename=\"audit-archive-{projectId:N}-{DateTime.UtcNow:yyyyMMdd-HHmmss}.jsonl\"";
                ctx.Response.Headers.CacheControl = "no-store";
                ctx.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
                await archiver.ExportAsync(projectId, from, to, ctx.Response.Body, ctx.RequestAborted);
            })
            .RequireAuthorization(PermissionPolicy.Prefix + Permissions.AuditExport).ExcludeFromDescription();
    }
}
