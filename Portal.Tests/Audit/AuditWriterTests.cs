using System.Collections.Concurrent;
using Microsoft.EntityFrameworkCore;
using Portal.Domain;
using Portal.Domain.Audit;
using Portal.Tests.Infrastructure;
using static Portal.Tests.Audit.AuditTestData;

namespace Portal.Tests.Audit;

public class AuditWriterTests
{
    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Appended_events_read_back_through_the_model_with_a_valid_chain(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        var clock = new ManualClock();
        var project = Guid.CreateVersion7();
        await using var writer = Writer(db, clock);

        var first = await writer.AppendAsync(new AuditEventDraft
        {
            ProjectId = project,
            EventType = "member.role_changed",
            Actor = AnalystAdmin,
            ResourceType = "member",
            ResourceId = "u-7",
            Action = "update",
            BeforeState = """{"role":"viewer"}""",
            AfterState = """{"role":"admin"}""",
            SecurityLevel = AuditSecurityLevel.Warning,
            DurationMs = 12,
        });
        clock.Advance(TimeSpan.FromSeconds(1));
        var second = await writer.AppendAsync(Draft(project, 1) with { Success = false, ErrorMessage = "denied", SecurityLevel = AuditSecurityLevel.Alert });

        Assert.Equal(1, first.Seq);
        Assert.Equal(2, second.Seq);
        var rows = await EventsAsync(db, project);
        Assert.Equal(2, rows.Count);
        var a = rows[0];
        Assert.Equal(first.Id, a.Id);
        Assert.Equal(new byte[32], a.PrevHash);
        Assert.Equal(first.Hash, Convert.ToHexStringLower(a.Hash));
        Assert.Equal(clock.GetUtcNow().AddSeconds(-1), a.OccurredAt);
        Assert.Equal(("member.role_changed", "member", "u-7", "update"), (a.EventType, a.ResourceType, a.ResourceId, a.Action));
        Assert.Equal(("user", "admin-1", "admin@example.com", "admin", "sess-9"), (a.ActorType, a.ActorId, a.ActorEmail, a.ActorRole, a.SessionId));
        Assert.Equal(("""{"role":"viewer"}""", """{"role":"admin"}"""), (a.BeforeState, a.AfterState));
        Assert.Equal(("warning", true, 12L, (long?)null), (a.SecurityLevel, a.Success, a.DurationMs, a.RowsReturned));
        Assert.Equal(("192.0.2.1", "Firefox", "req-9"), (a.ClientIp, a.UserAgent, a.RequestId));
        var b = rows[1];
        Assert.Equal(a.Hash, b.PrevHash);
        Assert.Equal(("alert", false, "denied"), (b.SecurityLevel, b.Success, b.ErrorMessage));
        Assert.Equal("""["sales"]""", b.TablesAccessed);
        Assert.Equal("""["internal"]""", b.DataClassifications);
        Assert.Equal(b.Hash, AuditHash.Compute(b));

        await using var ctx = db.NewContext();
        var head = await ctx.AuditChainHeads.SingleAsync(h => h.ProjectId == project);
        Assert.Equal(2L, head.Seq);
        Assert.Equal(b.Hash, head.Hash);
        var verification = await VerifyAsync(db, project);
        Assert.True(verification.Ok, verification.ToString());
        Assert.Equal(2, verification.EventsChecked);
    }

    private static AuditActor AnalystAdmin => new("user", "admin-1", "admin@example.com", "admin", "sess-9", "192.0.2.1", "Firefox", "req-9");

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Thirty_two_concurrent_writers_keep_every_project_chain_gapless_and_valid(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var writer = Writer(db);
        var projects = Enumerable.Range(0, 5).Select(_ => Guid.CreateVersion7()).ToArray();
        var receipts = new ConcurrentBag<AuditReceipt>();
        // 32 threads of their own, released together: tasks on the thread pool would run only as many at a time as the
        // pool has threads (two on a 2-core runner), which is not 32 concurrent writers. Each waits for its append as a
        // request does.
        var failures = new ConcurrentQueue<Exception>();
        using var start = new Barrier(32);
        var threads = Enumerable.Range(0, 32).Select(p => new Thread(() =>
        {
            try
            {
                start.SignalAndWait();
                for (var i = 0; i < 60; i++) receipts.Add(writer.AppendAsync(Draft(projects[(p + i) % projects.Length], i)).GetAwaiter().GetResult());
            }
            catch (Exception e) { failures.Enqueue(e); }
        }) { IsBackground = true }).ToList();
        threads.ForEach(t => t.Start());
        await Task.Run(() => threads.ForEach(t => t.Join()));
        Assert.Empty(failures);

        Assert.Equal(32 * 60, receipts.Count);
        Assert.Equal(receipts.Count, receipts.Select(r => r.Id).Distinct().Count());
        Assert.True(writer.BatchesWritten < receipts.Count, "concurrent appends should share commits");
        foreach (var project in projects)
        {
            var seqs = receipts.Where(r => r.ProjectId == project).Select(r => r.Seq).Order().ToList();
            Assert.Equal(Enumerable.Range(1, seqs.Count).Select(i => (long)i), seqs);
            var v = await VerifyAsync(db, project);
            Assert.True(v.Ok, v.ToString());
            Assert.Equal(seqs.Count, v.EventsChecked);
        }
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task An_append_to_an_idle_writer_is_committed_by_the_caller_and_the_chain_stays_one(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        var project = Guid.CreateVersion7();
        await using var writer = Writer(db);
        await using var queued = Writer(db, options: new AuditWriterOptions { WriteWhenIdle = false });
        for (var i = 0; i < 4; i++) Assert.Equal(i + 1, (await writer.AppendAsync(Draft(project, i))).Seq);
        Assert.Equal(4, writer.CallerBatches);
        // The same chain continued through the writer thread of another writer, then by the caller again.
        Assert.Equal(5, (await queued.AppendAsync(Draft(project, 4))).Seq);
        Assert.Equal(0, queued.CallerBatches);
        Assert.Equal(6, (await writer.AppendAsync(Draft(project, 5))).Seq);
        var v = await VerifyAsync(db, project);
        Assert.True(v.Ok, v.ToString());
        Assert.Equal(6, v.EventsChecked);

        await writer.DisposeAsync();
        var refused = await Assert.ThrowsAsync<DomainException>(() => writer.AppendAsync(Draft(project, 6)));
        Assert.Equal(ErrorKind.Unavailable, refused.Kind);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Two_writers_on_one_database_never_fork_a_chain(string provider)
    {
        // Two writers stand for two processes (portal and job worker): each one's in-memory heads go stale.
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var one = Writer(db);
        await using var two = Writer(db);
        var project = Guid.CreateVersion7();
        await Task.WhenAll(Enumerable.Range(0, 8).Select(p => Task.Run(async () =>
        {
            var writer = p % 2 == 0 ? one : two;
            for (var i = 0; i < 25; i++) await writer.AppendAsync(Draft(project, i));
        })));
        var v = await VerifyAsync(db, project);
        Assert.True(v.Ok, v.ToString());
        Assert.Equal(200, v.EventsChecked);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Writers_taking_turns_on_one_chain_notice_the_other_moved_it_and_lose_nothing(string provider)
    {
        // Each turn the other writer's remembered head is stale. On PostgreSQL the one-round-trip append must see that
        // (its seq guard), undo itself and take the locked path; a writer's own consecutive appends go in one trip.
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var one = Writer(db);
        await using var two = Writer(db);
        var project = Guid.CreateVersion7();
        var seqs = new List<long>();
        for (var turn = 0; turn < 6; turn++)
            for (var i = 0; i < 3; i++)
                seqs.Add((await (turn % 2 == 0 ? one : two).AppendAsync(Draft(project, turn * 3 + i))).Seq);
        Assert.Equal(Enumerable.Range(1, 18).Select(i => (long)i), seqs);
        var v = await VerifyAsync(db, project);
        Assert.True(v.Ok, v.ToString());
        Assert.Equal(18, v.EventsChecked);
        if (provider == "postgres")
        {
            // Per turn the next two appends go in one trip. The first append of each writer's first turn has no head
            // remembered (locked path); from turn 3 on, the first append of a turn finds its remembered head moved.
            Assert.Equal(12, one.OneTripBatches + two.OneTripBatches);
            Assert.Equal(4, one.StaleHeads + two.StaleHeads);
        }
        else Assert.Equal(0, one.OneTripBatches + two.OneTripBatches);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task A_failed_batch_fails_every_waiter_keeps_nothing_and_the_chain_continues(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        var project = Guid.CreateVersion7();
        // A linger makes the ten appends below land in one batch.
        await using var writer = Writer(db, options: new AuditWriterOptions { BatchLinger = TimeSpan.FromMilliseconds(300) });
        for (var i = 0; i < 3; i++) await writer.AppendAsync(Draft(project, i));

        // The database refuses one event of the batch mid-way through the insert.
        await ExecAsync(db, db.Provider == Portal.Domain.Persistence.DatabaseProvider.Sqlite
            ? "CREATE TRIGGER poison BEFORE INSERT ON audit_events WHEN NEW.event_type = 'poison' BEGIN SELECT RAISE(ABORT, 'poison'); END"
            : """
              CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
                IF NEW.event_type = 'poison' THEN RAISE EXCEPTION 'poison'; END IF; RETURN NEW; END $$;
              CREATE TRIGGER poison BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION poison();
              """);
        var appends = Enumerable.Range(0, 10).Select(i => writer.AppendAsync(Draft(project, 100 + i, i == 6 ? "poison" : "query.executed"))).ToList();
        foreach (var append in appends)
        {
            var e = await Assert.ThrowsAsync<DomainException>(() => append);
            Assert.Equal(ErrorKind.Unavailable, e.Kind);
        }
        Assert.Equal(3, (await EventsAsync(db, project)).Count);

        await ExecAsync(db, "DROP TRIGGER poison" + (db.Provider == Portal.Domain.Persistence.DatabaseProvider.Sqlite ? "" : " ON audit_events"));
        var next = await writer.AppendAsync(Draft(project, 200));
        Assert.Equal(4, next.Seq);
        var v = await VerifyAsync(db, project);
        Assert.True(v.Ok, v.ToString());
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task When_the_table_is_gone_every_append_is_refused_and_writing_resumes_when_it_is_back(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        var project = Guid.CreateVersion7();
        await using var writer = Writer(db);
        await writer.AppendAsync(Draft(project, 0));

        await ExecAsync(db, "ALTER TABLE audit_events RENAME TO audit_events_away");
        var failures = await Task.WhenAll(Enumerable.Range(0, 20).Select(async i =>
            await Assert.ThrowsAsync<DomainException>(() => writer.AppendAsync(Draft(project, i)))));
        Assert.All(failures, e => Assert.Equal(ErrorKind.Unavailable, e.Kind));
        Assert.DoesNotContain("audit_events", failures[0].Message); // user-safe message, no internals

        await ExecAsync(db, "ALTER TABLE audit_events_away RENAME TO audit_events");
        Assert.Equal(2, (await writer.AppendAsync(Draft(project, 1))).Seq);
        var v = await VerifyAsync(db, project);
        Assert.True(v.Ok, v.ToString());
        Assert.Equal(2, v.EventsChecked);
    }

    [Fact]
    public async Task A_draft_without_type_or_project_is_refused_naming_the_field()
    {
        await using var db = await TestDatabase.CreateAsync("sqlite");
        await using var writer = Writer(db);
        var noType = await Assert.ThrowsAsync<DomainException>(() => writer.AppendAsync(Draft(Guid.NewGuid(), 1) with { EventType = " " }));
        Assert.Equal((ErrorKind.Validation, "EventType"), (noType.Kind, noType.Field));
        var noProject = await Assert.ThrowsAsync<DomainException>(() => writer.AppendAsync(Draft(Guid.Empty, 1)));
        Assert.Equal("ProjectId", noProject.Field);
        var badActor = await Assert.ThrowsAsync<DomainException>(() => writer.AppendAsync(Draft(Guid.NewGuid(), 1) with { Actor = new AuditActor("robot") }));
        Assert.Equal("Actor.Type", badActor.Field);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Hostile_and_oversized_text_is_stored_so_that_it_still_verifies(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var writer = Writer(db);
        var project = Guid.CreateVersion7();
        await writer.AppendAsync(Draft(project, 1) with
        {
            Prompt = "nul\0char, lone \uD800 surrogate, emoji 😀, <script>alert('x')</script>",
            Actor = Analyst with { UserAgent = new string('a', 5000) + "😀" },
            ResourceId = "'; DROP TABLE audit_events; --",
        });
        var row = Assert.Single(await EventsAsync(db, project));
        Assert.Equal(512, row.UserAgent!.Length);
        Assert.Equal("nul\uFFFDchar, lone \uFFFD surrogate, emoji 😀, <script>alert('x')</script>", row.Prompt);
        var v = await VerifyAsync(db, project);
        Assert.True(v.Ok, v.ToString());
    }
}
