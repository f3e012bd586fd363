using System.Net;
using System.Text.Json;
using CsvHelper;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Portal.Domain.Audit;
using Portal.Domain.Compliance;
using Portal.Domain.Persistence;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Compliance;

public class ReportEndpointTests
{
    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Officer_downloads_pdf_and_csv_and_verifies_them_all_audited_others_get_403_or_404(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db);
        var w = await ReportsWorld.CreateAsync(app);
        var service = app.Get<ComplianceReportService>();
        var requested = await service.RequestAsync(w.ProjectId, w.OfficerId, new ReportParameters { Type = ReportTypes.Soc2, From = w.From, To = w.To });
        await service.GenerateAsync(w.ProjectId, requested.ReportId, "test");
        var report = await service.GetAsync(w.ProjectId, requested.ReportId);
        var baseUrl = $"/p/{w.ProjectId}/reports/{report.Id}";

        var carol = await app.SignedInClientAsync(ReportsWorld.Officer);
        var pdf = await carol.GetAsync(baseUrl + "/pdf");
        Assert.Equal(HttpStatusCode.OK, pdf.StatusCode);
        Assert.Equal("application/pdf", pdf.Content.Headers.ContentType!.MediaType);
        Assert.EndsWith(".pdf", pdf.Content.Headers.ContentDisposition!.FileNameStar ?? pdf.Content.Headers.ContentDisposition.FileName);
        var bytes = await pdf.Content.ReadAsByteArrayAsync();
        Assert.Equal(report.PdfSha256, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes)));

        var csv = await carol.GetAsync(baseUrl + "/csv");
        Assert.Equal(HttpStatusCode.OK, csv.StatusCode);
        Assert.StartsWith("text/csv", csv.Content.Headers.ContentType!.ToString());
        var csvBytes = await csv.Content.ReadAsByteArrayAsync();
        var count = 0;
        var sawFormula = false;
        using (var reader = CsvReader.Create(csvBytes))
            while (reader.Read())
            {
                count++;
                if (reader.GetString("prompt") is { Length: > 0 } prompt) { Assert.Equal("'" + ReportsWorld.Formula, prompt); sawFormula = true; }
                Assert.Matches("^[0-9a-f]{64}$", reader.GetString("hash"));
            }
        Assert.Equal(14, count); // every event of the period, none after it, none of the report's own events
        Assert.True(sawFormula);

        var verify = await carol.GetAsync(baseUrl + "/verify");
        Assert.Equal(HttpStatusCode.OK, verify.StatusCode);
        using (var doc = JsonDocument.Parse(await verify.Content.ReadAsStringAsync()))
        {
            Assert.True(doc.RootElement.GetProperty("ok").GetBoolean());
            Assert.True(doc.RootElement.GetProperty("signedByPortal").GetBoolean());
        }

        // A stored file altered by one byte no longer verifies.
        var factory = app.Get<IDbContextFactory<PortalDbContext>>();
        await using (var ctx = await factory.CreateDbContextAsync())
        {
            var file = await ctx.ComplianceReportFiles.SingleAsync(f => f.ReportId == report.Id);
            var changed = (byte[])file.Pdf.Clone();
            changed[changed.Length / 2] ^= 0x20;
            file.Pdf = changed;
            await ctx.SaveChangesAsync();
        }
        using (var doc = JsonDocument.Parse(await (await carol.GetAsync(baseUrl + "/verify")).Content.ReadAsStringAsync()))
        {
            Assert.False(doc.RootElement.GetProperty("ok").GetBoolean());
            Assert.False(doc.RootElement.GetProperty("hashMatches").GetBoolean());
            Assert.Contains("NOT verified", doc.RootElement.GetProperty("message").GetString());
        }

        var audited = (await app.Get<AuditSearch>().SearchAsync(w.ProjectId, new AuditExportFilter { EventTypes = ["report.downloaded", "report.verified"] })).Events;
        Assert.Equal(2, audited.Count(e => e.EventType == "report.downloaded" && e.ActorEmail == ReportsWorld.Officer));
        Assert.Contains(audited, e => e.EventType == "report.downloaded" && e.Details!.Contains("\"format\":\"csv\""));
        Assert.Equal(2, audited.Count(e => e.EventType == "report.verified"));
        Assert.Contains(audited, e => e.EventType == "report.verified" && !e.Success);

        // Roles without reports.generate are refused; another project's report id and unknown ids are 404.
        var uma = await app.SignedInClientAsync(ReportsWorld.Analyst);
        Assert.Equal(HttpStatusCode.Forbidden, (await uma.GetAsync(baseUrl + "/pdf")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await uma.GetAsync(baseUrl + "/csv")).StatusCode);
        var sam = await app.SignedInClientAsync(ReportsWorld.Security);
        Assert.Equal(HttpStatusCode.Forbidden, (await sam.GetAsync(baseUrl + "/verify")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await sam.GetAsync($"/p/{w.ProjectId}/reports")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await carol.GetAsync($"/p/{w.ProjectId}/reports/{Guid.CreateVersion7()}/pdf")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await carol.GetAsync($"/p/{w.ProjectId}/reports/{Guid.CreateVersion7()}/csv")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await carol.GetAsync($"/p/{w.ProjectId}/reports/not-a-guid/pdf")).StatusCode);

        var other = await app.WithScopeAsync(sp => sp.GetRequiredService<ProjectService>().CreateAsync(w.AdminId, "Other", null));
        await app.InstallSuiteAsync(other.Id, w.AdminId);
        await app.AddMemberAsync(other.Id, "olga@northwind.test", Roles.Compliance, w.AdminId);
        var olga = await app.SignedInClientAsync("olga@northwind.test");
        // Olga is a compliance officer elsewhere: carol's report id under her own project is simply not there.
        Assert.Equal(HttpStatusCode.NotFound, (await olga.GetAsync($"/p/{other.Id}/reports/{report.Id}/pdf")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await olga.GetAsync($"/p/{other.Id}/reports/{report.Id}/csv")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await olga.GetAsync($"/p/{other.Id}/reports/{report.Id}/verify")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await olga.GetAsync(baseUrl + "/pdf")).StatusCode);
        var anonymous = await app.Client().GetAsync(baseUrl + "/pdf");
        Assert.Equal(HttpStatusCode.Redirect, anonymous.StatusCode);
        Assert.True(app.Logs.Errors.Length == 0, app.Logs.Errors);
    }
}
