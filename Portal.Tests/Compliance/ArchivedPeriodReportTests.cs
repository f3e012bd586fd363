using System.Text.RegularExpressions;
using Microsoft.EntityFrameworkCore;
using Portal.Domain.Audit;
using Portal.Domain.Compliance;
using Portal.Domain.Compliance.Retention;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Compliance;

/// <summary>Retention moved the period's events to archive files; reports over that period still generate and verify.</summary>
public class ArchivedPeriodReportTests
{
    private static string Squash(string s) => Regex.Replace(s, @"\s+", " ");

    private static async Task<(ComplianceReport Report, string Text)> Soc2Async(PortalApp app, ReportsWorld w)
    {
        var service = app.Get<ComplianceReportService>();
        var requested = await service.RequestAsync(w.ProjectId, w.OfficerId, new ReportParameters { Type = ReportTypes.Soc2, From = w.From, To = w.To });
        Assert.True(await service.GenerateAsync(w.ProjectId, requested.ReportId, "test"));
        var report = await service.GetAsync(w.ProjectId, requested.ReportId);
        Assert.True(report.Status == ReportStatus.Ready, report.Error);
        var (_, pdf) = await service.DownloadPdfAsync(w.ProjectId, report.Id, new AuditActor("user", w.OfficerId.ToString(), ReportsWorld.Officer));
        return (report, Squash(await PdfTools.TextAsync(pdf)));
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Soc2_report_over_an_archived_period_names_the_archived_part_and_its_chain_verifies_until_a_remaining_row_is_altered(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db);
        var w = await ReportsWorld.CreateAsync(app);

        // Everything older than a day leaves the database: the seeded month; the setup events (now) stay, before and after it.
        var retention = app.Get<RetentionService>();
        foreach (var c in EventClasses.All) await retention.UpdateAsync(w.ProjectId, c, 1, w.AdminId);
        var (files, archived) = await app.Get<AuditArchiver>().ArchiveProjectAsync(w.ProjectId);
        Assert.True(archived >= 14, $"archived {archived}");
        Assert.True(files >= 6);
        await using (var ctx = db.NewContext())
        {
            Assert.Equal(0, await ctx.AuditEvents.CountAsync(e => e.ProjectId == w.ProjectId && e.OccurredAt >= w.From && e.OccurredAt < w.To));
            Assert.True(await ctx.AuditEvents.AnyAsync(e => e.ProjectId == w.ProjectId && e.Seq == 1), "the setup events before the archived range stay");
        }

        // The first event after the archived range no longer follows a database row: the manifests bridge the gap.
        var ranges = await app.Get<IAuditArchive>().RangesAsync(w.ProjectId);
        Assert.All(ranges, r => Assert.True(r.Contiguous));
        var v = await app.Get<AuditVerifier>().VerifyAsync(w.ProjectId);
        Assert.True(v.Ok, v.Problem);
        Assert.Equal(archived, v.ArchivedEvents);

        var (report, text) = await Soc2Async(app, w);
        Assert.True(report.ChainOk);
        Assert.Contains("have been archived by the retention policy", text);
        Assert.Contains($"the part of the period from {ReportDataBuilder.Stamp(w.From)}", text);
        Assert.Contains($"{ReportDataBuilder.N(archived)} of them in archive files", text);
        Assert.Contains("PASSED", text);

        // An altered row that is still in the database breaks the chain, in the verifier and in the next report.
        long victim;
        await using (var ctx = db.NewContext())
        {
            victim = await ctx.AuditEvents.Where(e => e.ProjectId == w.ProjectId).MaxAsync(e => e.Seq);
            await ctx.AuditEvents.Where(e => e.ProjectId == w.ProjectId && e.Seq == victim).ExecuteUpdateAsync(s => s.SetProperty(e => e.ActorEmail, "someone@else.test"));
        }
        var broken = await app.Get<AuditVerifier>().VerifyAsync(w.ProjectId);
        Assert.False(broken.Ok);
        Assert.Equal(victim, broken.FirstBrokenSeq);
        var (tampered, _) = await Soc2Async(app, w);
        Assert.False(tampered.ChainOk);
    }
}
