using System.Net;
using System.Net.Http.Headers;
using Portal.Domain.Persistence;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Hosting;

public class HealthAndMetricsTests
{
    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Readiness_follows_the_schema_and_liveness_does_not(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db);
        var client = app.Client();
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/live")).StatusCode);
        var ready = await client.GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Equal("Healthy", await ready.Content.ReadAsStringAsync());

        // A script that is no longer recorded as applied makes the instance not ready (it would need a migration).
        var last = MigrationRunner.LoadScripts(db.Provider)[^1];
        await using (var conn = new MigrationRunner(db.Provider, db.ConnectionString).Open())
        {
            await using var cmd = conn.CreateCommand();
            cmd.CommandText = $"DELETE FROM schema_migrations WHERE version = '{last.Version}'";
            Assert.Equal(1, await cmd.ExecuteNonQueryAsync());
        }
        var notReady = await client.GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, notReady.StatusCode);
        Assert.Equal("Unhealthy", await notReady.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/live")).StatusCode);
    }

    [Fact]
    public async Task Metrics_are_prometheus_text()
    {
        await using var db = await TestDatabase.CreateAsync("sqlite");
        await using var app = new PortalApp(db);
        var client = app.Client();
        await client.GetAsync("/metrics");
        for (var i = 0; i < 3; i++) await client.GetAsync("/health/live");
        var r = await client.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Equal("text/plain", r.Content.Headers.ContentType?.MediaType);
        var text = await r.Content.ReadAsStringAsync();
        Assert.Matches(@"(?m)^# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|summary)$", text);
        Assert.Contains("http_server_request_duration", text);
        // Every sample line is "name{labels} value".
        Assert.All(text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith('#')),
            l => Assert.Matches(@"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? -?[0-9.eE+\-]+|NaN|[+-]Inf$", l));
    }

    [Fact]
    public async Task Metrics_honour_the_bearer_token()
    {
        await using var db = await TestDatabase.CreateAsync("sqlite");
        await using var app = new PortalApp(db, new() { ["Metrics:BearerToken"] = "scrape-secret-123" });
        var client = app.Client();
        var anon = await client.GetAsync("/metrics");
        Assert.True(anon.StatusCode == HttpStatusCode.Unauthorized, $"{(int)anon.StatusCode} {anon.Headers.Location}");
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "wrong");
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/metrics")).StatusCode);
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "scrape-secret-123");
        var ok = await client.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Contains("# TYPE ", await ok.Content.ReadAsStringAsync());
    }
}
