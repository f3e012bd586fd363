using System.IO.Compression;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Portal.Domain;
using Portal.Domain.Audit;
using Portal.Domain.Compliance.Retention;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Integrations;

public class RetentionTests
{
    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Expired_events_move_to_daily_archives_and_the_chain_verifies_across_database_and_archive(string provider)
    {
        await using var world = await IntegrationWorld.CreateAsync(provider);
        var now = world.Clock.GetUtcNow();
        var old = now.AddDays(-400);
        // Interleaved classes on two old days, then recent events.
        await world.AuditAsync(50, "gateway.query_executed", old);
        await world.AuditAsync(20, "auth.sign_in_succeeded", old.AddHours(1));
        await world.AuditAsync(10, "member.added", old.AddHours(2));
        await world.AuditAsync(30, "gateway.query_executed", old.AddDays(1));
        await world.AuditAsync(15, "auth.sign_in_succeeded", now.AddDays(-100));
        await world.AuditAsync(25, "gateway.query_executed", now.AddDays(-100));
        await world.AuditAsync(5, "gateway.query_executed", now.AddDays(-1));
        var archiver = world.Services.GetRequiredService<AuditArchiver>();
        var verifier = world.Services.GetRequiredService<AuditVerifier>();
        Assert.True((await verifier.VerifyAsync(world.ProjectId)).Ok);

        var run = await archiver.ArchiveAsync();
        // query 1 year: 50 + 30; activity 90 days: 20 + 15; security/config 7 years: kept.
        Assert.Equal(115, run.EventsArchived);
        await using (var db = await world.Factory.CreateDbContextAsync())
        {
            Assert.Equal(40, await db.AuditEvents.CountAsync(e => e.ProjectId == world.ProjectId));
            Assert.Equal(10, await db.AuditEvents.CountAsync(e => e.EventType == "member.added"));
            var manifests = await db.Set<AuditArchive>().OrderBy(a => a.FirstSeq).ToListAsync();
            Assert.Equal(run.Files, manifests.Count);
            Assert.Equal(3, manifests.Count); // day 1, day 2, the 100-day-old sign-ins
            var first = manifests[0];
            Assert.Equal(70, first.EventCount);
            Assert.Equal(1, first.FirstSeq);
            Assert.Equal(new byte[32], first.FirstPrevHash);
            Assert.Equal(64, first.Sha256.Length);
            Assert.Equal(new DateTimeOffset(old.UtcDateTime.Date, TimeSpan.Zero), first.Day);
            var path = Path.Combine(archiver.ArchiveDirectory, first.FileName);
            Assert.True(File.Exists(path));
            Assert.EndsWith(".jsonl.gz", path);
            using var reader = new StreamReader(new GZipStream(File.OpenRead(path), CompressionMode.Decompress));
            var lines = (await reader.ReadToEndAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(70, lines.Length);
            Assert.Contains("\"sql_text\":\"SELECT 1 WHERE a = @p\"", lines[0]);
            var lastInFile = AuditArchiver.ParseLine(System.Text.Encoding.UTF8.GetBytes(lines[^1]));
            Assert.Equal(first.LastSeq, lastInFile.Seq);
            Assert.Equal(first.LastHash, lastInFile.Hash);
        }

        // The project's verifier (Audit Log, reports) bridges the database's gaps through the archive: here retention
        // kept security events inside archived seq ranges, so it re-reads the files and re-hashes across both.
        var bridged = await verifier.VerifyAsync(world.ProjectId);
        Assert.True(bridged.Ok, bridged.Problem);
        Assert.Equal(155, bridged.EventsChecked);
        Assert.Equal(115, bridged.ArchivedEvents);
        var both = await archiver.VerifyAsync(world.ProjectId);
        Assert.True(both.Chain.Ok, both.Chain.Problem);
        Assert.Equal(115, both.ArchivedEvents);
        Assert.Equal(40, both.DatabaseEvents);

        // A second run archives nothing more; new events keep chaining after archived ones.
        Assert.Equal(0, (await archiver.ArchiveAsync()).EventsArchived);
        await world.AuditAsync(3);
        Assert.True((await archiver.VerifyAsync(world.ProjectId)).Chain.Ok);

        // Archived events stay searchable (slower path) and exportable.
        var found = await archiver.SearchAsync(world.ProjectId, old.AddDays(-1), now, "auth.sign_in_succeeded", null);
        Assert.Equal(35, found.Events.Count);
        Assert.True(found.Events.SequenceEqual(found.Events.OrderByDescending(e => e.OccurredAt).ThenByDescending(e => e.Seq)));
        var text = await archiver.SearchAsync(world.ProjectId, null, null, null, "q-7", take: 200);
        Assert.All(text.Events, e => Assert.Contains("q-7", e.ResourceId));
        Assert.NotEmpty(text.Events);
        using var export = new MemoryStream();
        Assert.Equal(115, await archiver.ExportAsync(world.ProjectId, old.AddDays(-1), now, export));

        // Tampering with an archive file is detected.
        string victim;
        await using (var db = await world.Factory.CreateDbContextAsync())
            victim = Path.Combine(archiver.ArchiveDirectory, (await db.Set<AuditArchive>().OrderBy(a => a.FirstSeq).FirstAsync()).FileName);
        var bytes = await File.ReadAllBytesAsync(victim);
        bytes[^10] ^= 0xFF;
        await File.WriteAllBytesAsync(victim, bytes);
        var broken = await archiver.VerifyAsync(world.ProjectId);
        Assert.False(broken.Chain.Ok);
        Assert.Contains("SHA-256", broken.Chain.Problem);
        Assert.False((await verifier.VerifyAsync(world.ProjectId)).Ok);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Admins_edit_retention_per_event_class_and_every_change_is_audited(string provider)
    {
        await using var world = await IntegrationWorld.CreateAsync(provider);
        var retention = world.Services.GetRequiredService<RetentionService>();
        var policies = await retention.GetAsync(world.ProjectId);
        Assert.Equal([2557, 365, 90], policies.Select(p => p.Days).ToArray());
        Assert.All(policies, p => Assert.True(p.IsDefault));

        await retention.UpdateAsync(world.ProjectId, EventClasses.Activity, 30, world.Admin);
        var activity = (await retention.GetAsync(world.ProjectId)).Single(p => p.EventClass == EventClasses.Activity);
        Assert.Equal(30, activity.Days);
        Assert.False(activity.IsDefault);
        await using (var db = await world.Factory.CreateDbContextAsync())
        {
            var e = await db.AuditEvents.SingleAsync(x => x.EventType == "retention.policy_changed");
            Assert.Contains("\"days\":90", e.BeforeState);
            Assert.Contains("\"days\":30", e.AfterState);
            Assert.Equal("admin@bank.test", e.ActorEmail);
            Assert.Equal(1, await db.Set<Portal.Domain.Integrations.IntegrationChange>().CountAsync(c => c.SubjectType == "retention"));
        }
        var other = await world.OtherProjectAsync();
        Assert.Equal(90, (await retention.GetAsync(other)).Single(p => p.EventClass == EventClasses.Activity).Days);

        Assert.Equal("days", (await Assert.ThrowsAsync<DomainException>(() => retention.UpdateAsync(world.ProjectId, EventClasses.Query, 0, world.Admin))).Field);
        Assert.Equal("days", (await Assert.ThrowsAsync<DomainException>(() => retention.UpdateAsync(world.ProjectId, EventClasses.Query, 40000, world.Admin))).Field);
        Assert.Equal("eventClass", (await Assert.ThrowsAsync<DomainException>(() => retention.UpdateAsync(world.ProjectId, "everything", 10, world.Admin))).Field);

        // A shorter horizon archives accordingly.
        await world.AuditAsync(4, "auth.sign_in_succeeded", world.Clock.GetUtcNow().AddDays(-45));
        Assert.Equal(4, (await world.Services.GetRequiredService<AuditArchiver>().ArchiveProjectAsync(world.ProjectId)).Events);
    }
}
