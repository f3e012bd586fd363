using Microsoft.EntityFrameworkCore;
using Portal.Domain.Audit;
using Portal.Tests.Infrastructure;
using static Portal.Tests.Audit.AuditTestData;

namespace Portal.Tests.Audit;

/// <summary>Someone with write access to the database edits the trail; the verifier names the first broken link.</summary>
public class AuditTamperTests
{
    private static async Task<(TestDatabase Db, Guid Project, Guid Other)> SeedAsync(string provider)
    {
        var db = await TestDatabase.CreateAsync(provider);
        var project = Guid.CreateVersion7();
        var other = Guid.CreateVersion7();
        await using var writer = Writer(db);
        for (var i = 1; i <= 20; i++)
        {
            await writer.AppendAsync(Draft(project, i));
            await writer.AppendAsync(Draft(other, i));
        }
        Assert.True((await VerifyAsync(db, project)).Ok);
        return (db, project, other);
    }

    private static async Task AssertBrokenAt(TestDatabase db, Guid project, long seq, string problem)
    {
        var v = await VerifyAsync(db, project);
        Assert.False(v.Ok, "tampering went unnoticed");
        Assert.Equal(seq, v.FirstBrokenSeq);
        Assert.Contains(problem, v.Problem);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Editing_a_field_is_detected_at_that_event(string provider)
    {
        var (db, project, other) = await SeedAsync(provider);
        await using var _ = db;
        await using (var ctx = db.NewContext())
            await ctx.AuditEvents.Where(e => e.ProjectId == project && e.Seq == 7)
                .ExecuteUpdateAsync(s => s.SetProperty(e => e.RowsReturned, 0L));
        await AssertBrokenAt(db, project, 7, "does not match its hash");
        var v = await VerifyAsync(db, project);
        Assert.Equal(6, v.EventsChecked);
        Assert.NotEqual(v.ExpectedHash, v.ActualHash);
        Assert.True((await VerifyAsync(db, other)).Ok, "another project's chain is unaffected");
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Editing_a_field_and_recomputing_its_hash_is_detected_at_the_next_event(string provider)
    {
        var (db, project, _) = await SeedAsync(provider);
        await using var __ = db;
        await using (var ctx = db.NewContext())
        {
            var row = await ctx.AuditEvents.SingleAsync(e => e.ProjectId == project && e.Seq == 7);
            row.ActorEmail = "someone-else@example.com";
            row.Hash = AuditHash.Compute(row);
            await ctx.SaveChangesAsync();
        }
        await AssertBrokenAt(db, project, 8, "prev_hash");
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Deleting_an_event_is_detected_as_a_gap(string provider)
    {
        var (db, project, _) = await SeedAsync(provider);
        await using var __ = db;
        await using (var ctx = db.NewContext())
            await ctx.AuditEvents.Where(e => e.ProjectId == project && e.Seq == 12).ExecuteDeleteAsync();
        await AssertBrokenAt(db, project, 12, "missing");
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Deleting_the_newest_events_is_detected_against_the_chain_head(string provider)
    {
        var (db, project, _) = await SeedAsync(provider);
        await using var __ = db;
        await using (var ctx = db.NewContext())
            await ctx.AuditEvents.Where(e => e.ProjectId == project && e.Seq >= 19).ExecuteDeleteAsync();
        await AssertBrokenAt(db, project, 19, "chain head");
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Swapping_two_events_content_is_detected_at_the_earlier_one(string provider)
    {
        var (db, project, _) = await SeedAsync(provider);
        await using var __ = db;
        await using (var ctx = db.NewContext())
        {
            var a = await ctx.AuditEvents.SingleAsync(e => e.ProjectId == project && e.Seq == 5);
            var b = await ctx.AuditEvents.SingleAsync(e => e.ProjectId == project && e.Seq == 9);
            // Everything but the key moves, hashes included: each row is internally "valid" but out of place.
            foreach (var p in ctx.Model.FindEntityType(typeof(AuditEvent))!.GetProperties().Where(p => !p.IsKey()))
            {
                var entryA = ctx.Entry(a).Property(p.Name);
                var entryB = ctx.Entry(b).Property(p.Name);
                (entryA.CurrentValue, entryB.CurrentValue) = (entryB.CurrentValue, entryA.CurrentValue);
            }
            await ctx.SaveChangesAsync();
        }
        await AssertBrokenAt(db, project, 5, "prev_hash");
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Swapping_only_the_details_of_two_events_is_detected_at_the_earlier_one(string provider)
    {
        var (db, project, _) = await SeedAsync(provider);
        await using var __ = db;
        await using (var ctx = db.NewContext())
        {
            var a = await ctx.AuditEvents.SingleAsync(e => e.ProjectId == project && e.Seq == 3);
            var b = await ctx.AuditEvents.SingleAsync(e => e.ProjectId == project && e.Seq == 4);
            (a.Details, b.Details) = (b.Details, a.Details);
            await ctx.SaveChangesAsync();
        }
        await AssertBrokenAt(db, project, 3, "does not match its hash");
    }

    [Fact]
    public void Moving_text_between_neighbouring_fields_changes_the_hash()
    {
        var e = new AuditEvent { ProjectId = Guid.NewGuid(), Seq = 1, Id = Guid.NewGuid(), PrevHash = new byte[32], EventType = "x", ActorType = "user", ResourceType = "ab", ResourceId = "c" };
        var shifted = new AuditEvent { ProjectId = e.ProjectId, Seq = 1, Id = e.Id, PrevHash = new byte[32], EventType = "x", ActorType = "user", ResourceType = "a", ResourceId = "bc" };
        var nulled = new AuditEvent { ProjectId = e.ProjectId, Seq = 1, Id = e.Id, PrevHash = new byte[32], EventType = "x", ActorType = "user", ResourceType = "ab", ResourceId = "c", Action = "" };
        Assert.NotEqual(AuditHash.Compute(e), AuditHash.Compute(shifted));
        Assert.NotEqual(AuditHash.Compute(e), AuditHash.Compute(nulled));
    }
}
