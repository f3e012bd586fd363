using Microsoft.Extensions.DependencyInjection;
using Portal.Domain;
using Portal.Domain.Audit;
using Portal.Tests.Infrastructure;
using static Portal.Tests.Audit.AuditTestData;

namespace Portal.Tests.Audit;

public class AuditSearchTests
{
    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Keyset_pages_cover_every_event_once_newest_first_and_never_another_project(string provider)
    {
        var clock = new ManualClock();
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var sp = db.Services(clock);
        var writer = sp.GetRequiredService<AuditWriter>();
        var search = sp.GetRequiredService<AuditSearch>();
        var project = Guid.CreateVersion7();
        var other = Guid.CreateVersion7();
        // Pairs of events share a timestamp, so the seq tie-break of the cursor is exercised at page edges.
        for (var i = 0; i < 23; i++)
        {
            await writer.AppendAsync(Draft(project, i));
            if (i % 2 == 1) clock.Advance(TimeSpan.FromMinutes(1));
        }
        var otherReceipt = await writer.AppendAsync(Draft(other, 99));

        var seen = new List<long>();
        AuditCursor? cursor = null;
        var pages = 0;
        do
        {
            var page = await search.SearchAsync(project, new AuditExportFilter(), cursor, pageSize: 5);
            Assert.All(page.Events, e => Assert.Equal(project, e.ProjectId));
            seen.AddRange(page.Events.Select(e => e.Seq));
            cursor = page.Next;
            pages++;
        } while (cursor is not null);

        Assert.Equal(5, pages);
        Assert.Equal(Enumerable.Range(1, 23).Reverse().Select(i => (long)i), seen);
        Assert.Single((await search.SearchAsync(other, new AuditExportFilter())).Events);
        Assert.Empty((await search.SearchAsync(Guid.CreateVersion7(), new AuditExportFilter())).Events);
        // A deep link opens one event by id, only within its own project.
        Assert.Equal(otherReceipt.Id, (await search.FindAsync(other, otherReceipt.Id))!.Id);
        Assert.Null(await search.FindAsync(project, otherReceipt.Id));
        Assert.Null(await search.FindAsync(project, Guid.CreateVersion7()));
        var bad = await Assert.ThrowsAsync<DomainException>(() => search.SearchAsync(project, new AuditExportFilter(), pageSize: 201));
        Assert.Equal("pageSize", bad.Field);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Filters_narrow_by_type_actor_level_text_dates_and_session(string provider)
    {
        var clock = new ManualClock();
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var sp = db.Services(clock);
        var writer = sp.GetRequiredService<AuditWriter>();
        var search = sp.GetRequiredService<AuditSearch>();
        var project = Guid.CreateVersion7();
        var start = clock.GetUtcNow();
        var bob = new AuditActor("api_key", "key-7", null, null, "sess-2");
        await writer.AppendAsync(Draft(project, 1));
        clock.Advance(TimeSpan.FromHours(1));
        await writer.AppendAsync(Draft(project, 2, "member.role_changed") with { Actor = bob, SecurityLevel = AuditSecurityLevel.Warning });
        clock.Advance(TimeSpan.FromHours(1));
        await writer.AppendAsync(Draft(project, 3) with { SqlText = "SELECT * FROM Secret_Salaries", SecurityLevel = AuditSecurityLevel.Alert });
        await writer.AppendAsync(Draft(Guid.CreateVersion7(), 4) with { SqlText = "SELECT * FROM secret_salaries" });

        async Task<long[]> Seqs(AuditExportFilter f, string? session = null) =>
            (await search.SearchAsync(project, f, sessionId: session)).Events.Select(e => e.Seq).ToArray();

        Assert.Equal(new long[] { 2L }, await Seqs(new() { EventTypes = ["member.role_changed"] }));
        Assert.Equal(new long[] { 3L, 1L }, await Seqs(new() { EventTypes = ["query.executed"] }));
        Assert.Equal(new long[] { 2L }, await Seqs(new() { Actor = "key-7" }));
        Assert.Equal(new long[] { 3L, 1L }, await Seqs(new() { Actor = "ana@example.com" }));
        Assert.Equal(new long[] { 3L }, await Seqs(new() { SecurityLevel = AuditSecurityLevel.Alert }));
        Assert.Equal(new long[] { 3L }, await Seqs(new() { Text = "secret_SALARIES" }));
        Assert.Equal(new long[] { 1L }, await Seqs(new() { Text = "\"limit\":1}" }));
        Assert.Empty(await Seqs(new() { Text = "%" }));
        Assert.Equal(new long[] { 2L }, await Seqs(new() { From = start.AddMinutes(30), To = start.AddMinutes(90) }));
        Assert.Equal(new long[] { 2L }, await Seqs(new(), "sess-2"));
        Assert.Equal(new[] { "member.role_changed", "query.executed" }, await search.EventTypesAsync(project));
        var range = await Assert.ThrowsAsync<DomainException>(() => search.SearchAsync(project, new() { From = start, To = start }));
        Assert.Equal("To", range.Field);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Several_types_and_an_actor_by_id_or_email_page_exactly_like_the_plain_filter(string provider)
    {
        // These filters run as one query per branch (type x actor id/e-mail) merged in memory; paging through them
        // must give exactly the events a plain filter over all events gives, newest first, each once.
        var clock = new ManualClock();
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var sp = db.Services(clock);
        var writer = sp.GetRequiredService<AuditWriter>();
        var search = sp.GetRequiredService<AuditSearch>();
        var project = Guid.CreateVersion7();
        string[] types = ["query.executed", "member.role_changed", "key.created"];
        var written = new List<(long Seq, string Type, string? Id, string? Email, string Level)>();
        for (var i = 0; i < 60; i++)
        {
            // Ids and e-mails overlap on purpose: one event matches the actor both ways and must appear once.
            var actor = new AuditActor("user", i % 4 == 0 ? "ana@example.com" : $"user-{i % 3}", i % 5 == 0 ? "ana@example.com" : $"u{i % 3}@example.com");
            var level = i % 7 == 0 ? AuditSecurityLevel.Alert : i % 3 == 0 ? AuditSecurityLevel.Warning : AuditSecurityLevel.Normal;
            var r = await writer.AppendAsync(Draft(project, i, types[i % 3]) with { Actor = actor, SecurityLevel = level });
            written.Add((r.Seq, types[i % 3], actor.Id, actor.Email, level.ToString().ToLowerInvariant()));
            if (i % 3 == 2) clock.Advance(TimeSpan.FromMinutes(1)); // ties on occurred_at cross page edges
        }

        async Task<List<long>> All(AuditExportFilter f)
        {
            var seen = new List<long>();
            AuditCursor? cursor = null;
            do
            {
                var page = await search.SearchAsync(project, f, cursor, pageSize: 4);
                seen.AddRange(page.Events.Select(e => e.Seq));
                cursor = page.Next;
            } while (cursor is not null);
            return seen;
        }

        var twoTypesAna = await All(new() { EventTypes = ["query.executed", "key.created"], Actor = "ana@example.com" });
        Assert.Equal(written.Where(w => w.Type is "query.executed" or "key.created" && (w.Id == "ana@example.com" || w.Email == "ana@example.com"))
            .Select(w => w.Seq).Reverse(), twoTypesAna);
        Assert.NotEmpty(twoTypesAna);
        // Past 16 branches the search falls back to one IN/OR query; same answer.
        Assert.Equal(written.Where(w => w.Id == "ana@example.com" || w.Email == "ana@example.com").Select(w => w.Seq).Reverse(),
            await All(new() { EventTypes = [.. types, "t1", "t2", "t3", "t4", "t5", "t6"], Actor = "ana@example.com" }));
        Assert.Equal(written.Where(w => w.Id == "user-1" || w.Email == "user-1").Select(w => w.Seq).Reverse(), await All(new() { Actor = "user-1" }));
        Assert.Equal(written.Where(w => w.Type != "member.role_changed").Select(w => w.Seq).Reverse(),
            await All(new() { EventTypes = ["key.created", "query.executed", "key.created"] }));
        Assert.Equal(written.Where(w => w.Level == "alert").Select(w => w.Seq).Reverse(), await All(new() { SecurityLevel = AuditSecurityLevel.Alert }));
        Assert.Equal(written.Where(w => w.Level == "normal").Select(w => w.Seq).Reverse(), await All(new() { SecurityLevel = AuditSecurityLevel.Normal }));
    }
}
