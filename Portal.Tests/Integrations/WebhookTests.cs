using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Portal.Domain;
using Portal.Domain.Integrations;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Integrations;

public class StandardWebhooksTests
{
    [Fact]
    public void The_specification_test_vector_signs_as_published()
    {
        var sig = StandardWebhooks.Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, "{\"test\": 2432232314}");
        Assert.Equal("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", sig);
    }

    [Fact]
    public void A_receiver_accepts_any_of_several_signatures_and_rejects_tampering_and_stale_timestamps()
    {
        var old = StandardWebhooks.NewSecret();
        var fresh = StandardWebhooks.NewSecret();
        Assert.StartsWith("whsec_", fresh);
        var now = DateTimeOffset.FromUnixTimeSeconds(1_700_000_000);
        var header = StandardWebhooks.SignatureHeader([fresh, old], "msg_1", now.ToUnixTimeSeconds(), "{}");
        Assert.Equal(2, header.Split(' ').Length);
        Assert.True(StandardWebhooks.Verify(old, "msg_1", "1700000000", "{}", header, now));
        Assert.True(StandardWebhooks.Verify(fresh, "msg_1", "1700000000", "{}", header, now));
        Assert.False(StandardWebhooks.Verify(fresh, "msg_1", "1700000000", "{ }", header, now));
        Assert.False(StandardWebhooks.Verify(fresh, "msg_2", "1700000000", "{}", header, now));
        Assert.False(StandardWebhooks.Verify(fresh, "msg_1", "1700000000", "{}", header, now.AddMinutes(6)));
        Assert.False(StandardWebhooks.Verify(StandardWebhooks.NewSecret(), "msg_1", "1700000000", "{}", header, now));
    }
}

public class WebhookTests
{
    private static string Secret(WebhookCreated c) => c.Secret ?? throw new InvalidOperationException("no secret");

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Outbox_messages_become_signed_deliveries_to_subscribed_endpoints_only(string provider)
    {
        await using var world = await IntegrationWorld.CreateAsync(provider);
        await using var receiver = await HttpReceiver.StartAsync();
        var hook = await world.Webhooks.CreateAsync(world.ProjectId, world.Admin, new WebhookDraft("SOC", "webhook", receiver.Url + "/hook", [OutboxEvents.AlertCreated]));
        await world.Webhooks.CreateAsync(world.ProjectId, world.Admin, new WebhookDraft("Approvals only", "webhook", receiver.Url + "/other", [OutboxEvents.SuggestionApproved]));
        var other = await world.OtherProjectAsync();
        await world.Webhooks.CreateAsync(other, world.Admin, new WebhookDraft("Other project", "webhook", receiver.Url + "/foreign", [OutboxEvents.AlertCreated]));

        var message = await world.OutboxAsync(OutboxEvents.AlertCreated, new { title = "Injection attempt", severity = "high" });
        var result = await world.Dispatcher.RunOnceAsync("w1");
        Assert.Equal(1, result.Staged);
        Assert.Equal(1, result.Delivered);

        var got = Assert.Single(receiver.Requests);
        Assert.Equal("/hook", got.Path);
        Assert.True(StandardWebhooks.Verify(Secret(hook), got.Headers["webhook-id"], got.Headers["webhook-timestamp"], got.Body, got.Headers["webhook-signature"], world.Clock.GetUtcNow()));
        using var doc = JsonDocument.Parse(got.Body);
        Assert.Equal("alert.created", doc.RootElement.GetProperty("type").GetString());
        Assert.Equal("Injection attempt", doc.RootElement.GetProperty("data").GetProperty("title").GetString());

        var delivery = Assert.Single(await world.DeliveriesAsync());
        Assert.Equal(DeliveryStatus.Delivered, delivery.Status);
        Assert.Equal(message.Id, delivery.OutboxMessageId);
        Assert.Equal(WebhookDispatcher.WebhookId(delivery.Id), got.Headers["webhook-id"]);
        await using (var db = await world.Factory.CreateDbContextAsync())
            Assert.NotNull((await db.OutboxMessages.SingleAsync()).ProcessedAt);

        // A second run finds nothing: the message was staged exactly once.
        Assert.Equal(0, (await world.Dispatcher.RunOnceAsync("w1")).Staged);
        Assert.Single(receiver.Requests);

        var rows = await world.Webhooks.ListAsync(world.ProjectId);
        var row = rows.Items.Single(r => r.Name == "SOC");
        Assert.Equal(1.0, row.SuccessRate);
        Assert.Equal(1, row.Delivered);
        Assert.Equal(2, rows.Total); // the other project's endpoint is not listed
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task A_receiver_failing_the_first_attempts_gets_the_message_on_the_jittered_retry_schedule(string provider)
    {
        await using var world = await IntegrationWorld.CreateAsync(provider);
        await using var receiver = await HttpReceiver.StartAsync();
        receiver.Behave = (n, _) => n switch { 1 => 500, 2 => 429, 3 => HttpReceiver.Hang, _ => 200 };
        await world.Webhooks.CreateAsync(world.ProjectId, world.Admin, new WebhookDraft("SOC", "webhook", receiver.Url, [OutboxEvents.AlertCreated]));
        await world.OutboxAsync(OutboxEvents.AlertCreated, new { title = "x" });

        var start = world.Clock.GetUtcNow();
        Assert.Equal(1, (await world.Dispatcher.RunOnceAsync("w")).Retrying);
        var d = Assert.Single(await world.DeliveriesAsync());
        Assert.Equal(DeliveryStatus.Retrying, d.Status);
        Assert.Equal(500, d.ResponseCode);
        Assert.InRange(d.NextAttemptAt - start, TimeSpan.FromSeconds(4), TimeSpan.FromSeconds(6)); // 5 s ± 20%

        // Not due yet: nothing is sent.
        Assert.Equal(0, (await world.Dispatcher.RunOnceAsync("w")).Attempted);
        world.Clock.Advance(TimeSpan.FromSeconds(6));
        await world.Dispatcher.RunOnceAsync("w");
        d = Assert.Single(await world.DeliveriesAsync());
        Assert.Equal(429, d.ResponseCode);
        Assert.InRange(d.NextAttemptAt - world.Clock.GetUtcNow(), TimeSpan.FromSeconds(24), TimeSpan.FromSeconds(36)); // 30 s ± 20%

        world.Clock.Advance(TimeSpan.FromSeconds(40));
        await world.Dispatcher.RunOnceAsync("w"); // the receiver hangs past the timeout
        d = Assert.Single(await world.DeliveriesAsync());
        Assert.Null(d.ResponseCode);
        Assert.Contains("No answer within", d.ResponseExcerpt);
        Assert.Equal(3, d.Attempts);

        world.Clock.Advance(TimeSpan.FromMinutes(3));
        Assert.Equal(1, (await world.Dispatcher.RunOnceAsync("w")).Delivered);
        d = Assert.Single(await world.DeliveriesAsync());
        Assert.Equal(DeliveryStatus.Delivered, d.Status);
        Assert.Equal(4, d.Attempts);
        // Every attempt carried the same webhook-id.
        Assert.Single(receiver.Requests.Select(r => r.Headers["webhook-id"]).Distinct());
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task After_the_last_retry_a_delivery_is_dead_lettered_and_can_be_redelivered_by_hand(string provider)
    {
        await using var world = await IntegrationWorld.CreateAsync(provider);
        await using var receiver = await HttpReceiver.StartAsync();
        var healthy = false;
        receiver.Behave = (_, _) => healthy ? 204 : 503;
        var hook = await world.Webhooks.CreateAsync(world.ProjectId, world.Admin, new WebhookDraft("SOC", "webhook", receiver.Url, [OutboxEvents.ReportReady]));
        await world.OutboxAsync(OutboxEvents.ReportReady, new { title = "Monthly report" });
        for (var i = 0; i < 12; i++)
        {
            await world.Dispatcher.RunOnceAsync("w");
            world.Clock.Advance(TimeSpan.FromHours(30));
        }
        var d = Assert.Single(await world.DeliveriesAsync());
        Assert.Equal(DeliveryStatus.Failed, d.Status);
        Assert.Equal(8, d.Attempts); // the first try and seven retries
        Assert.Equal(8, receiver.Requests.Count);
        Assert.Equal(0.0, (await world.Webhooks.ListAsync(world.ProjectId)).Items.Single().SuccessRate);

        healthy = true;
        await world.Webhooks.RedeliverAsync(world.ProjectId, d.Id, world.Admin);
        Assert.Equal(1, (await world.Dispatcher.RunOnceAsync("w")).Delivered);
        Assert.Equal(DeliveryStatus.Delivered, Assert.Single(await world.DeliveriesAsync()).Status);
        Assert.Equal(WebhookDispatcher.WebhookId(d.Id), receiver.Requests.Last().Headers["webhook-id"]);

        // Another project's id answers NotFound, exactly like a missing one.
        var other = await world.OtherProjectAsync();
        var e = await Assert.ThrowsAsync<DomainException>(() => world.Webhooks.RedeliverAsync(other, d.Id, world.Admin));
        Assert.Equal(ErrorKind.NotFound, e.Kind);
        e = await Assert.ThrowsAsync<DomainException>(() => world.Webhooks.RedeliverAsync(world.ProjectId, Guid.NewGuid(), world.Admin));
        Assert.Equal(ErrorKind.NotFound, e.Kind);
        e = await Assert.ThrowsAsync<DomainException>(() => world.Webhooks.SetEnabledAsync(other, hook.Endpoint.Id, false, world.Admin));
        Assert.Equal(ErrorKind.NotFound, e.Kind);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task A_410_Gone_disables_the_endpoint_and_nothing_more_is_sent_until_it_is_resumed(string provider)
    {
        await using var world = await IntegrationWorld.CreateAsync(provider);
        await using var receiver = await HttpReceiver.StartAsync();
        receiver.Behave = (n, _) => n == 1 ? 410 : 200;
        var hook = await world.Webhooks.CreateAsync(world.ProjectId, world.Admin, new WebhookDraft("Old SOC", "webhook", receiver.Url, [OutboxEvents.AlertCreated]));
        await world.OutboxAsync(OutboxEvents.AlertCreated, new { title = "one" });
        await world.Dispatcher.RunOnceAsync("w");
        var row = (await world.Webhooks.ListAsync(world.ProjectId)).Items.Single();
        Assert.False(row.Enabled);
        Assert.Contains("410", row.DisabledReason);
        Assert.Equal(DeliveryStatus.Failed, Assert.Single(await world.DeliveriesAsync()).Status);

        await world.OutboxAsync(OutboxEvents.AlertCreated, new { title = "two" });
        await world.Dispatcher.RunOnceAsync("w");
        Assert.Single(receiver.Requests);

        await world.Webhooks.SetEnabledAsync(world.ProjectId, hook.Endpoint.Id, true, world.Admin);
        await world.OutboxAsync(OutboxEvents.AlertCreated, new { title = "three" });
        Assert.Equal(1, (await world.Dispatcher.RunOnceAsync("w")).Delivered);
        Assert.Contains("three", receiver.Requests.Last().Body);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task A_crash_between_sending_and_recording_resends_the_batch_with_the_same_webhook_ids(string provider)
    {
        await using var world = await IntegrationWorld.CreateAsync(provider);
        await using var receiver = await HttpReceiver.StartAsync();
        await world.Webhooks.CreateAsync(world.ProjectId, world.Admin, new WebhookDraft("SOC", "webhook", receiver.Url, [OutboxEvents.AlertCreated]));
        for (var i = 0; i < 5; i++) await world.OutboxAsync(OutboxEvents.AlertCreated, new { n = i });

        world.Dispatcher.AfterSendBeforeRecord = () => throw new InvalidOperationException("process killed");
        await Assert.ThrowsAsync<InvalidOperationException>(() => world.Dispatcher.RunOnceAsync("crashing"));
        world.Dispatcher.AfterSendBeforeRecord = null;
        Assert.Equal(5, receiver.Requests.Count);
        Assert.All(await world.DeliveriesAsync(), d => Assert.Equal(DeliveryStatus.Pending, d.Status));

        // The lease still protects the rows from a second worker ...
        Assert.Equal(0, (await world.Dispatcher.RunOnceAsync("w2")).Attempted);
        // ... until it expires; then they are sent again, once.
        world.Clock.Advance(world.Options.Lease + TimeSpan.FromSeconds(1));
        Assert.Equal(5, (await world.Dispatcher.RunOnceAsync("w2")).Delivered);
        Assert.Equal(0, (await world.Dispatcher.RunOnceAsync("w2")).Attempted);
        Assert.Equal(10, receiver.Requests.Count);
        var byId = receiver.Requests.GroupBy(r => r.Headers["webhook-id"]).ToList();
        Assert.Equal(5, byId.Count);
        Assert.All(byId, g => Assert.Equal(2, g.Count())); // duplicates only of the one interrupted batch, recognisable by webhook-id
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Secret_rotation_signs_with_both_secrets_during_the_overlap(string provider)
    {
        await using var world = await IntegrationWorld.CreateAsync(provider);
        await using var receiver = await HttpReceiver.StartAsync();
        var hook = await world.Webhooks.CreateAsync(world.ProjectId, world.Admin, new WebhookDraft("SOC", "webhook", receiver.Url, [OutboxEvents.AlertCreated]));
        var fresh = await world.Webhooks.RotateSecretAsync(world.ProjectId, hook.Endpoint.Id, TimeSpan.FromHours(24), world.Admin);
        await world.Webhooks.SendTestAsync(world.ProjectId, hook.Endpoint.Id, world.Admin);
        await world.Dispatcher.RunOnceAsync("w");
        var r = Assert.Single(receiver.Requests);
        Assert.Equal(2, r.Headers["webhook-signature"].Split(' ').Length);
        Assert.True(StandardWebhooks.Verify(Secret(hook), r.Headers["webhook-id"], r.Headers["webhook-timestamp"], r.Body, r.Headers["webhook-signature"], world.Clock.GetUtcNow()));
        Assert.True(StandardWebhooks.Verify(fresh, r.Headers["webhook-id"], r.Headers["webhook-timestamp"], r.Body, r.Headers["webhook-signature"], world.Clock.GetUtcNow()));

        world.Clock.Advance(TimeSpan.FromHours(25));
        await world.Webhooks.SendTestAsync(world.ProjectId, hook.Endpoint.Id, world.Admin);
        await world.Dispatcher.RunOnceAsync("w");
        var later = receiver.Requests.Last();
        Assert.Single(later.Headers["webhook-signature"].Split(' '));
        Assert.False(StandardWebhooks.Verify(Secret(hook), later.Headers["webhook-id"], later.Headers["webhook-timestamp"], later.Body, later.Headers["webhook-signature"], world.Clock.GetUtcNow()));
        Assert.True(StandardWebhooks.Verify(fresh, later.Headers["webhook-id"], later.Headers["webhook-timestamp"], later.Body, later.Headers["webhook-signature"], world.Clock.GetUtcNow()));

        // The secret is stored encrypted, never in clear.
        var raw = string.Join("\n", await world.Db.RawRowsAsync("webhook_endpoints"));
        Assert.DoesNotContain(fresh, raw);
        Assert.DoesNotContain(Secret(hook)[6..], raw);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Slack_and_Teams_channels_get_readable_messages_and_their_urls_stay_secret(string provider)
    {
        await using var world = await IntegrationWorld.CreateAsync(provider);
        await using var receiver = await HttpReceiver.StartAsync();
        var slack = await world.Webhooks.CreateAsync(world.ProjectId, world.Admin, new WebhookDraft("Slack #soc", "slack", receiver.Url + "/services/T000/B000/XXXXSECRET", [OutboxEvents.AlertCreated]));
        await world.Webhooks.CreateAsync(world.ProjectId, world.Admin, new WebhookDraft("Teams", "teams", receiver.Url + "/webhookb2/TEAMSSECRET", [OutboxEvents.SuggestionCreated]));
        Assert.Null(slack.Secret);
        Assert.DoesNotContain("XXXXSECRET", slack.Endpoint.Url);
        Assert.DoesNotContain("SECRET", string.Join("\n", await world.Db.RawRowsAsync("webhook_endpoints")));

        await world.OutboxAsync(OutboxEvents.AlertCreated, new { title = "Injection attempt <b>", severity = "high" });
        await world.OutboxAsync(OutboxEvents.SuggestionCreated, new { title = "Top customers by region" });
        Assert.Equal(2, (await world.Dispatcher.RunOnceAsync("w")).Delivered);

        var s = receiver.Requests.Single(r => r.Path.Contains("XXXXSECRET"));
        using (var doc = JsonDocument.Parse(s.Body))
        {
            var text = doc.RootElement.GetProperty("text").GetString()!;
            Assert.Contains("[HIGH] New alert", text);
            Assert.Contains("Injection attempt &lt;b&gt;", text);
            Assert.Contains($"/p/{world.ProjectId}/alerts|Open in the governance portal>", text);
        }
        Assert.False(s.Headers.ContainsKey("webhook-signature"));
        var t = receiver.Requests.Single(r => r.Path.Contains("TEAMSSECRET"));
        using (var doc = JsonDocument.Parse(t.Body))
        {
            Assert.Equal("MessageCard", doc.RootElement.GetProperty("@type").GetString());
            Assert.Contains("Approval needed", doc.RootElement.GetProperty("title").GetString());
            Assert.Equal("Top customers by region", doc.RootElement.GetProperty("text").GetString());
            Assert.EndsWith($"/p/{world.ProjectId}/approvals", doc.RootElement.GetProperty("potentialAction")[0].GetProperty("targets")[0].GetProperty("uri").GetString());
        }
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Query_executed_webhooks_come_from_the_audit_trail_from_creation_on(string provider)
    {
        await using var world = await IntegrationWorld.CreateAsync(provider);
        await using var receiver = await HttpReceiver.StartAsync();
        await world.AuditAsync(3); // before the endpoint exists: not sent
        await world.Webhooks.CreateAsync(world.ProjectId, world.Admin, new WebhookDraft("Usage", "webhook", receiver.Url, [OutboxEvents.QueryExecuted]));
        await world.AuditAsync(4);
        await world.AuditAsync(2, "gateway.query_denied");
        var r = await world.Dispatcher.RunOnceAsync("w");
        Assert.Equal(4, r.Staged);
        Assert.Equal(4, r.Delivered);
        Assert.All(receiver.Requests, q => Assert.Contains("\"type\":\"query_executed\"", q.Body));
        Assert.Equal(0, (await world.Dispatcher.RunOnceAsync("w")).Staged);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Bad_endpoints_are_refused_with_the_field_named(string provider)
    {
        await using var world = await IntegrationWorld.CreateAsync(provider);
        async Task<string?> Field(WebhookDraft d) => (await Assert.ThrowsAsync<DomainException>(() => world.Webhooks.CreateAsync(world.ProjectId, world.Admin, d))).Field;
        Assert.Equal("name", await Field(new WebhookDraft("", "webhook", "https://x.test", [OutboxEvents.AlertCreated])));
        Assert.Equal("name", await Field(new WebhookDraft(new string('n', 201), "webhook", "https://x.test", [OutboxEvents.AlertCreated])));
        Assert.Equal("kind", await Field(new WebhookDraft("a", "pager", "https://x.test", [OutboxEvents.AlertCreated])));
        Assert.Equal("url", await Field(new WebhookDraft("a", "webhook", "ftp://x.test", [OutboxEvents.AlertCreated])));
        Assert.Equal("url", await Field(new WebhookDraft("a", "webhook", "not a url", [OutboxEvents.AlertCreated])));
        Assert.Equal("url", await Field(new WebhookDraft("a", "webhook", "https://user:pw@x.test/", [OutboxEvents.AlertCreated])));
        Assert.Equal("url", await Field(new WebhookDraft("a", "webhook", "https://x.test/" + new string('a', 2000), [OutboxEvents.AlertCreated])));
        Assert.Equal("eventTypes", await Field(new WebhookDraft("a", "webhook", "https://x.test", [])));
        Assert.Equal("eventTypes", await Field(new WebhookDraft("a", "webhook", "https://x.test", ["alert.deleted<script>"])));
        Assert.Empty(await world.DeliveriesAsync());
        Assert.Equal(0, (await world.Webhooks.ListAsync(world.ProjectId)).Total);
    }
}
