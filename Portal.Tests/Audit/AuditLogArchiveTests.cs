using System.Net;
using Microsoft.EntityFrameworkCore;
using Portal.Domain.Audit;
using Portal.Domain.Compliance.Retention;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Audit;

/// <summary>The Audit Log's "include archived events": the same filters over archive files, CSV with archived rows, one project only.</summary>
public class AuditLogArchiveTests
{
    internal const string Needle = "needle-in-archive";

    /// <summary>
    /// Four query events 400 days old in the project (one by key-b at alert level, one mentioning <see cref="Needle"/>,
    /// one with a hostile prompt and formula SQL) and the same in another project, all archived; the seeded recent
    /// events stay in the database.
    /// </summary>
    internal static async Task<(Guid ProjectId, Guid Other)> SeedArchivedAsync(PortalApp app)
    {
        var (projectId, _) = await AuditExportEndpointTests.SeedAsync(app);
        var other = Guid.CreateVersion7();
        var writer = app.Get<AuditWriter>();
        var old = DateTimeOffset.UtcNow.AddDays(-400);
        foreach (var p in new[] { projectId, other })
            for (var i = 0; i < 4; i++)
                await writer.AppendAsync(new AuditEventDraft
                {
                    ProjectId = p, EventType = "gateway.query_executed", OccurredAt = old.AddMinutes(i),
                    Actor = new AuditActor("api_key", i == 1 ? "key-b" : "key-a", SessionId: "sess-old"),
                    ResourceType = "approved_query", ResourceId = i == 2 ? Needle : "q-old-" + i, Action = "execute",
                    SecurityLevel = i == 1 ? AuditSecurityLevel.Alert : AuditSecurityLevel.Normal,
                    Prompt = i == 3 ? AuditExportEndpointTests.Script : null, SqlText = i == 3 ? AuditExportEndpointTests.Formula : "SELECT 1",
                });
        Assert.Equal(8, (await app.Get<AuditArchiver>().ArchiveAsync()).EventsArchived);
        return (projectId, other);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Archived_events_are_searched_with_the_audit_log_filters_exported_on_request_and_never_across_projects(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db);
        var (projectId, other) = await SeedArchivedAsync(app);
        var archive = app.Get<IAuditArchive>();

        // Paginated, newest first, only this project's events.
        var all = new AuditExportFilter { EventTypes = ["gateway.query_executed"] };
        var first = await archive.SearchAsync(projectId, all, take: 3);
        Assert.Equal(3, first.Events.Count);
        Assert.True(first.HasMore);
        var second = await archive.SearchAsync(projectId, all, skip: 3, take: 3);
        Assert.Single(second.Events);
        Assert.False(second.HasMore);
        var seen = first.Events.Concat(second.Events).ToList();
        Assert.Equal(4, seen.Select(e => e.Seq).Distinct().Count());
        Assert.All(seen, e => Assert.Equal(projectId, e.ProjectId));
        Assert.True(seen.SequenceEqual(seen.OrderByDescending(e => e.OccurredAt).ThenByDescending(e => e.Seq)));

        // The same filters as the live log: actor, level, text, period, session.
        Assert.Equal("key-b", Assert.Single((await archive.SearchAsync(projectId, new AuditExportFilter { Actor = "key-b" })).Events).ActorId);
        Assert.Equal("alert", Assert.Single((await archive.SearchAsync(projectId, new AuditExportFilter { SecurityLevel = AuditSecurityLevel.Alert })).Events).SecurityLevel);
        Assert.Equal(Needle, Assert.Single((await archive.SearchAsync(projectId, new AuditExportFilter { Text = "NEEDLE-in" })).Events).ResourceId);
        Assert.Empty((await archive.SearchAsync(projectId, new AuditExportFilter { From = DateTimeOffset.UtcNow.AddDays(-10) })).Events);
        Assert.Equal(4, (await archive.SearchAsync(projectId, new AuditExportFilter(), "sess-old")).Events.Count);
        Assert.Empty((await archive.SearchAsync(projectId, new AuditExportFilter(), "sess-hostile")).Events);

        // CSV from the Audit Log with the switch on: archived rows merged by seq, labelled, formulas neutralized.
        var carol = await app.SignedInClientAsync("carol@northwind.test");
        var live = await carol.GetStringAsync($"/p/{projectId}/audit/export.csv?type=gateway.query_executed");
        Assert.Single(live.TrimEnd().Split('\n'));
        var response = await carol.GetAsync($"/p/{projectId}/audit/export.csv?archived=1");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var lines = (await response.Content.ReadAsStringAsync()).TrimEnd().Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        Assert.EndsWith(",hash,source", lines[0]);
        var archivedLines = lines.Where(l => l.EndsWith(",archive", StringComparison.Ordinal)).ToList();
        Assert.Equal(4, archivedLines.Count);
        Assert.All(archivedLines, l => Assert.StartsWith(projectId.ToString(), l));
        Assert.Contains(archivedLines, l => l.Contains("'" + AuditExportEndpointTests.Formula, StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.Contains(other.ToString(), StringComparison.Ordinal));
        var seqs = lines.Skip(1).Select(l => long.Parse(l.Split(',')[1], System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(seqs.Order(), seqs);
        Assert.Contains(lines, l => l.EndsWith(",database", StringComparison.Ordinal));
        var json = await carol.GetStringAsync($"/p/{projectId}/audit/export.json?archived=1&q={Needle}");
        Assert.Contains("\"source\":\"archive\"", json);
        Assert.Contains(Needle, json);

        // Same permission as the audit export: a plain user is refused.
        var uma = await app.SignedInClientAsync("uma@northwind.test");
        Assert.Equal(HttpStatusCode.Forbidden, (await uma.GetAsync($"/p/{projectId}/audit/export.csv?archived=1")).StatusCode);

        // The chain verifies across database and archive for both projects.
        var verifier = app.Get<AuditVerifier>();
        var v = await verifier.VerifyAsync(projectId);
        Assert.True(v.Ok, v.Problem);
        Assert.Equal(4, v.ArchivedEvents);

        // A manifest edited to point at another project's file is refused, not read.
        await using (var ctx = db.NewContext())
        {
            var theirs = await ctx.Set<AuditArchive>().Where(a => a.ProjectId == other).Select(a => a.FileName).FirstAsync();
            await ctx.Set<AuditArchive>().Where(a => a.ProjectId == projectId).ExecuteUpdateAsync(s => s.SetProperty(a => a.FileName, theirs));
        }
        await Assert.ThrowsAsync<InvalidDataException>(() => archive.SearchAsync(projectId, new AuditExportFilter()));
        Assert.False((await verifier.VerifyAsync(projectId)).Ok);
    }
}
