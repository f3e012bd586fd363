using Portal.Domain;
using Portal.Domain.Audit;
using Portal.Domain.Gateway;
using Portal.Tests.Infrastructure;
using static Portal.Tests.Audit.AuditTestData;

namespace Portal.Tests.Audit;

/// <summary>The "last 7 days" figures of the Enterprise and project overview tiles.</summary>
public class AuditActivityTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);

    private static AuditEventDraft Event(Guid project, AuditActor actor, DateTimeOffset at, string type = GatewayService.ExecutedEvent) => new()
    {
        ProjectId = project, EventType = type, Actor = actor, OccurredAt = at, ResourceType = "approved_query", ResourceId = "q-1", Action = "execute",
    };

    private static AuditActor User(string id) => new("user", id, $"{id}@bank.test", "analyst", "sess-" + id);
    private static AuditActor Key(string id) => new("api_key", id, Role: "user");

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Counts_the_window_s_events_people_keys_and_blocked_calls_of_this_project_only(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        var project = Guid.CreateVersion7();
        var other = Guid.CreateVersion7();
        await using (var writer = Writer(db))
        {
            // In the window: two people (one of them three times), a key, an agent, the system; two blocked calls.
            await writer.AppendAsync(Event(project, User("ana"), Now.AddDays(-6)));
            await writer.AppendAsync(Event(project, User("ana"), Now.AddHours(-3)));
            await writer.AppendAsync(Event(project, User("ana"), Now.AddMinutes(-1), "portal.member_added"));
            await writer.AppendAsync(Event(project, User("bob"), Now.AddDays(-1)));
            await writer.AppendAsync(Event(project, Key("key-1"), Now.AddDays(-2), GatewayService.DeniedEvent));
            await writer.AppendAsync(Event(project, new AuditActor("agent", "agent-7"), Now.AddDays(-2)));
            await writer.AppendAsync(Event(project, Key("key-unknown"), Now.AddHours(-5), GatewayService.DeniedEvent));
            await writer.AppendAsync(Event(project, AuditActor.System, Now.AddHours(-1), "retention.archived"));
            // Before the window: a person and a key who did nothing since, and an old denial.
            await writer.AppendAsync(Event(project, User("carol"), Now.AddDays(-8)));
            await writer.AppendAsync(Event(project, Key("key-old"), Now.AddDays(-30), GatewayService.DeniedEvent));
            // Another project's busy week counts for that project only.
            for (var i = 0; i < 5; i++) await writer.AppendAsync(Event(other, User("mallory" + i), Now.AddHours(-i), GatewayService.DeniedEvent));
        }
        var activity = new AuditActivity(Database(db), new ManualClock(Now));

        var week = await activity.LastDaysAsync(project);
        Assert.Equal(Now.AddDays(-7), week.Since);
        Assert.Equal(8, week.Events);
        Assert.Equal(2, week.ActiveUsers);
        Assert.Equal(3, week.ActiveKeys); // key-1, key-unknown and the agent
        Assert.Equal(2, week.Blocked);
        Assert.False(week.ActorsCapped);

        var month = await activity.LastDaysAsync(project, 31);
        Assert.Equal((10, 3, 4, 3), (month.Events, month.ActiveUsers, month.ActiveKeys, month.Blocked));

        var theirs = await activity.LastDaysAsync(other);
        Assert.Equal((5, 5, 0, 5), (theirs.Events, theirs.ActiveUsers, theirs.ActiveKeys, theirs.Blocked));

        var empty = await activity.LastDaysAsync(Guid.CreateVersion7());
        Assert.Equal((0, 0, 0, 0, false), (empty.Events, empty.ActiveUsers, empty.ActiveKeys, empty.Blocked, empty.ActorsCapped));
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task A_trail_with_more_actors_than_are_looked_at_says_so(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        var project = Guid.CreateVersion7();
        await using (var writer = Writer(db))
            foreach (var id in new[] { "a", "b", "c", "d" })
                await writer.AppendAsync(Event(project, User(id), Now.AddHours(-1)));
        var clock = new ManualClock(Now);

        var exact = await new AuditActivity(Database(db), clock) { MaxActors = 4 }.LastDaysAsync(project);
        Assert.Equal((4, false), (exact.ActiveUsers, exact.ActorsCapped));

        var capped = await new AuditActivity(Database(db), clock) { MaxActors = 3 }.LastDaysAsync(project);
        Assert.Equal((3, true), (capped.ActiveUsers, capped.ActorsCapped));
        Assert.Equal(4, capped.Events); // the event count is never capped
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task A_busy_trail_s_answer_is_reused_for_half_a_minute_a_quiet_one_is_always_fresh(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        var project = Guid.CreateVersion7();
        var clock = new ManualClock(Now);
        await using var writer = Writer(db);
        await writer.AppendAsync(Event(project, User("ana"), Now.AddHours(-1)));
        await writer.AppendAsync(Event(project, User("bob"), Now.AddHours(-1)));

        var quiet = new AuditActivity(Database(db), clock) { ReuseAbove = 100 };
        Assert.Equal(2, (await quiet.LastDaysAsync(project)).Events);
        await writer.AppendAsync(Event(project, User("carol"), Now.AddMinutes(-1)));
        Assert.Equal(3, (await quiet.LastDaysAsync(project)).Events); // below the threshold: counted again

        var busy = new AuditActivity(Database(db), clock) { ReuseAbove = 3 };
        Assert.Equal(3, (await busy.LastDaysAsync(project)).Events);
        await writer.AppendAsync(Event(project, User("dan"), Now.AddMinutes(-1)));
        clock.Advance(TimeSpan.FromSeconds(29));
        Assert.Equal(3, (await busy.LastDaysAsync(project)).Events); // reused
        Assert.Equal(4, (await busy.LastDaysAsync(project, 8)).Events); // another window is its own answer
        clock.Advance(TimeSpan.FromSeconds(2));
        var fresh = await busy.LastDaysAsync(project);
        Assert.Equal((4, 4), (fresh.Events, fresh.ActiveUsers));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(367)]
    public async Task A_window_outside_one_day_to_a_year_is_refused(int days)
    {
        await using var db = await TestDatabase.CreateAsync("sqlite");
        var e = await Assert.ThrowsAsync<DomainException>(() => new AuditActivity(Database(db), new ManualClock(Now)).LastDaysAsync(Guid.CreateVersion7(), days));
        Assert.Contains("1 to 366 days", e.Message);
    }
}
