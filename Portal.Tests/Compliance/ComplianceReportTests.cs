using System.Text.RegularExpressions;
using Portal.Domain;
using Portal.Domain.Audit;
using Portal.Domain.Compliance;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Compliance;

public class ComplianceReportTests
{
    private static async Task<(ComplianceReport Report, byte[] Pdf)> GenerateAsync(PortalApp app, ReportsWorld w, ReportParameters p)
    {
        var service = app.Get<ComplianceReportService>();
        var requested = await service.RequestAsync(w.ProjectId, w.OfficerId, p);
        Assert.True(await service.GenerateAsync(w.ProjectId, requested.ReportId, "test"));
        var report = await service.GetAsync(w.ProjectId, requested.ReportId);
        Assert.True(report.Status == ReportStatus.Ready, report.Error);
        var (_, pdf) = await service.DownloadPdfAsync(w.ProjectId, report.Id, new AuditActor("user", w.OfficerId.ToString(), ReportsWorld.Officer));
        return (report, pdf);
    }

    private static string Squash(string s) => Regex.Replace(s, @"[ \t]+", " ");

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Soc2_report_shows_the_seeded_numbers_is_signed_and_a_one_byte_change_fails(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db);
        var w = await ReportsWorld.CreateAsync(app);

        var (report, pdf) = await GenerateAsync(app, w, new ReportParameters { Type = ReportTypes.Soc2, From = w.From, To = w.To });
        await PdfTools.KeepAsync(pdf, $"soc2-{provider}.pdf");
        Assert.Equal(14, report.EventCount);
        Assert.True(report.ChainOk);
        Assert.Matches("^[0-9a-f]{64}$", report.PdfSha256!);

        var text = Squash(await PdfTools.TextAsync(pdf));
        Assert.Contains("SOC 2 access review", text);
        Assert.Contains(report.Id.ToString(), text);
        Assert.Contains("14 audit events were recorded", text);
        Assert.Matches(@"5\s+Queries executed|Queries executed", text);
        Assert.Contains("Forbidden 2", text);
        Assert.Contains("Rate limited 1", text);
        Assert.Contains("API key revoked 1", text);
        Assert.Contains("suggestion.approved", text);
        Assert.Contains("member.role_changed", text);
        Assert.Contains("{\"role\":\"user\"} → {\"role\":\"data\"}", text);
        Assert.Contains("alert-1", text);
        Assert.Contains("30 min", text);
        Assert.Contains("2.0 h", text);
        Assert.Contains(report.DataSha256!, text);
        Assert.Contains("PASSED", text);
        var pages = await PdfTools.PagesAsync(pdf);
        Assert.Contains($"page 1 of {pages}", text);
        Assert.Contains($"page {pages} of {pages}", text);
        var fonts = await PdfTools.FontsAsync(pdf);
        Assert.Contains("DejaVuSans", fonts);
        Assert.DoesNotContain(" no ", fonts.Split('\n').Skip(2).Select(l => l.Length > 60 ? l[60..] : "").Aggregate("", (a, b) => a + " " + b)); // every font embedded

        // The stored file verifies; the same file with one byte changed does not.
        var service = app.Get<ComplianceReportService>();
        Assert.True((await service.VerifyAsync(w.ProjectId, report.Id)).Ok);
        var sig = ReportSigner.Verify(pdf);
        Assert.True(sig.Valid, sig.Message);
        var tampered = (byte[])pdf.Clone();
        var at = pdf.AsSpan().IndexOf("14 audit events"u8.ToArray());
        var index = at > 0 ? at : pdf.Length / 3;
        tampered[index] ^= 0x01;
        Assert.False(ReportSigner.Verify(tampered).Valid);
        var check = await service.VerifyBytesAsync(tampered, report.PdfSha256);
        Assert.False(check.Ok);
        Assert.False(check.HashMatches);
        Assert.False(check.Signature.Valid);
        // Also a change inside the signature itself.
        var sigStart = System.Text.Encoding.Latin1.GetString(pdf).LastIndexOf("/Contents <", StringComparison.Ordinal) + 20;
        var tampered2 = (byte[])pdf.Clone();
        tampered2[sigStart] = tampered2[sigStart] == (byte)'A' ? (byte)'B' : (byte)'A';
        Assert.False(ReportSigner.Verify(tampered2).Valid);
        Assert.True(app.Logs.Errors.Length == 0, app.Logs.Errors);
    }
}
