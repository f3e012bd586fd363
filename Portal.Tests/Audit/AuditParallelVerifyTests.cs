using Microsoft.EntityFrameworkCore;
using Portal.Domain.Audit;
using Portal.Tests.Infrastructure;
using static Portal.Tests.Audit.AuditTestData;

namespace Portal.Tests.Audit;

/// <summary>
/// Verification splits a chain into seq ranges checked at the same time. Whatever is broken, and wherever the range
/// boundaries fall, it must name the same first broken link, with the same message and counts, as one scan in seq order.
/// Forty events in four ranges: 1..10, 11..20, 21..30, 31..40.
/// </summary>
public class AuditParallelVerifyTests
{
    private const int Events = 40;

    private static AuditVerifier Parallel(TestDatabase db) => new(Database(db)) { ParallelRanges = 4, MinEventsPerRange = 5 };
    private static AuditVerifier Sequential(TestDatabase db) => new(Database(db)) { ParallelRanges = 1 };

    private static async Task<(TestDatabase Db, Guid Project)> SeedAsync(string provider)
    {
        var db = await TestDatabase.CreateAsync(provider);
        var project = Guid.CreateVersion7();
        var other = Guid.CreateVersion7();
        await using var writer = Writer(db);
        for (var i = 1; i <= Events; i++)
        {
            await writer.AppendAsync(Draft(project, i));
            await writer.AppendAsync(Draft(other, i));
        }
        return (db, project);
    }

    /// <summary>Every way of verifying (in ranges, in one scan, without the file map) gives the identical result; returns it.</summary>
    private static async Task<AuditVerification> BothAgreeAsync(TestDatabase db, Guid project)
    {
        var parallel = await Parallel(db).VerifyAsync(project);
        var sequential = await Sequential(db).VerifyAsync(project);
        // Reports verify without the SQLite file map: plain reads must reach the very same verdict.
        var unmapped = await Parallel(db).WithoutFileMap().VerifyAsync(project);
        Assert.Equal(sequential, parallel);
        Assert.Equal(sequential, unmapped);
        Assert.Equal(sequential.ArchivedEvents, parallel.ArchivedEvents);
        return parallel;
    }

    private static async Task EditAsync(TestDatabase db, Guid project, long seq)
    {
        await using var ctx = db.NewContext();
        await ctx.AuditEvents.Where(e => e.ProjectId == project && e.Seq == seq).ExecuteUpdateAsync(s => s.SetProperty(e => e.RowsReturned, 0L));
    }

    private static async Task EditAndRehashAsync(TestDatabase db, Guid project, long seq)
    {
        await using var ctx = db.NewContext();
        var row = await ctx.AuditEvents.SingleAsync(e => e.ProjectId == project && e.Seq == seq);
        row.ActorEmail = "someone-else@example.com";
        row.Hash = AuditHash.Compute(row);
        await ctx.SaveChangesAsync();
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task An_intact_chain_verifies_in_ranges(string provider)
    {
        var (db, project) = await SeedAsync(provider);
        await using var _ = db;
        var v = await BothAgreeAsync(db, project);
        Assert.True(v.Ok, v.ToString());
        Assert.Equal(Events, v.EventsChecked);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task With_two_ranges_broken_the_lowest_break_is_reported(string provider)
    {
        var (db, project) = await SeedAsync(provider);
        await using var _ = db;
        await EditAsync(db, project, 27);
        await EditAsync(db, project, 14);
        var v = await BothAgreeAsync(db, project);
        Assert.False(v.Ok);
        Assert.Equal(14, v.FirstBrokenSeq);
        Assert.Equal(13, v.EventsChecked);
        Assert.Contains("does not match its hash", v.Problem);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task A_later_range_broken_first_in_time_does_not_hide_an_earlier_break(string provider)
    {
        var (db, project) = await SeedAsync(provider);
        await using var _ = db;
        await EditAsync(db, project, 31);
        await EditAndRehashAsync(db, project, 2);
        var v = await BothAgreeAsync(db, project);
        Assert.Equal(3, v.FirstBrokenSeq);
        Assert.Contains("prev_hash", v.Problem);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task A_link_broken_exactly_at_a_range_boundary_is_found(string provider)
    {
        var (db, project) = await SeedAsync(provider);
        await using var _ = db;
        // seq 10 ends the first range and is internally valid after re-hashing; only seq 11 (the next range's first
        // row) names the old hash, which no single range can see.
        await EditAndRehashAsync(db, project, 10);
        var v = await BothAgreeAsync(db, project);
        Assert.False(v.Ok);
        Assert.Equal(11, v.FirstBrokenSeq);
        Assert.Equal(10, v.EventsChecked);
        Assert.Contains("prev_hash", v.Problem);
        Assert.NotNull(v.ExpectedHash);
        Assert.NotEqual(v.ExpectedHash, v.ActualHash);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Rows_deleted_at_a_range_boundary_are_a_gap(string provider)
    {
        var (db, project) = await SeedAsync(provider);
        await using var _ = db;
        await using (var ctx = db.NewContext())
            await ctx.AuditEvents.Where(e => e.ProjectId == project && e.Seq >= 20 && e.Seq <= 22).ExecuteDeleteAsync();
        var v = await BothAgreeAsync(db, project);
        Assert.Equal(20, v.FirstBrokenSeq);
        Assert.Contains("events 20..22 are missing", v.Problem);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task The_first_and_last_rows_and_the_head_are_still_checked(string provider)
    {
        var (db, project) = await SeedAsync(provider);
        await using var _ = db;
        await using (var ctx = db.NewContext())
            await ctx.AuditEvents.Where(e => e.ProjectId == project && e.Seq >= 38).ExecuteDeleteAsync();
        var tail = await BothAgreeAsync(db, project);
        Assert.Equal(38, tail.FirstBrokenSeq);
        Assert.Contains("chain head", tail.Problem);

        await EditAsync(db, project, 1);
        var first = await BothAgreeAsync(db, project);
        Assert.Equal(1, first.FirstBrokenSeq);
        Assert.Equal(0, first.EventsChecked);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task A_csv_export_in_blocks_is_the_same_bytes_as_one_pass(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var writer = Writer(db);
        var project = Guid.CreateVersion7();
        string[] hostile = ["=cmd|' /C calc'!A0", "+SUM(A1:A9)", "He said \"hi\", then left", "two\nlines\r\nand more", "plain", ""];
        for (var i = 0; i < 23; i++)
            await writer.AppendAsync(Draft(project, i, i % 3 == 0 ? "query.denied" : "query.executed") with { ResourceId = hostile[i % hostile.Length], ErrorMessage = i % 4 == 0 ? null : "x" });
        foreach (var filter in new[] { new AuditExportFilter(), new AuditExportFilter { EventTypes = ["query.denied"] } })
        {
            // Each export is audited first, so the later one holds one more event (its own) at the end.
            using var blocks = new MemoryStream();
            using var single = new MemoryStream();
            var inBlocks = await new AuditExporter(Database(db), writer) { CsvBlockSize = 4 }.ExportAsync(project, filter, AuditExportFormat.Csv, blocks, Analyst);
            var inOnePass = await new AuditExporter(Database(db), writer).ExportAsync(project, filter, AuditExportFormat.Csv, single, Analyst);
            var a = blocks.ToArray();
            var b = single.ToArray();
            if (filter.EventTypes is null)
            {
                Assert.Equal(inBlocks + 1, inOnePass);
                Assert.True(b.AsSpan().StartsWith(a), "the block export differs from the one-pass export");
                Assert.Equal(1, b.AsSpan(a.Length).Count((byte)'\n'));
            }
            else
            {
                Assert.Equal(inBlocks, inOnePass);
                Assert.Equal(8, inBlocks);
                Assert.Equal(a, b);
            }
        }
    }
}
