using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.DependencyInjection;
using Portal.Domain.Security.ApiKeys;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Security;

/// <summary>
/// Keys are checked from a per-node memo. A revoked, rotated or expired key must still be refused on the very next
/// call (a stale "valid" would let a leaked key keep working), and another node's change must apply within the
/// memo's lifetime.
/// </summary>
public class ApiKeyCacheTests
{
    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Revoked_rotated_and_expired_keys_are_refused_on_the_very_next_call(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        async Task<ApiKeyAuthResult> Warm(string secret)
        {
            // Twice, so the second answer comes from the memo.
            Assert.True((await w.Keys.AuthenticateAsync(secret, "10.0.0.1")).Succeeded);
            var again = await w.Keys.AuthenticateAsync(secret, "10.0.0.1");
            Assert.True(again.Succeeded);
            return again;
        }

        var revoked = await w.Keys.CreateAsync(w.ProjectId, new CreateApiKeyRequest("to revoke", Roles.User), w.Admin);
        await Warm(revoked.Secret);
        await w.Keys.RevokeAsync(w.ProjectId, revoked.Key.Id, "leaked", w.Admin);
        var r = await w.Keys.AuthenticateAsync(revoked.Secret, "10.0.0.1");
        Assert.Equal((false, ApiKeyFailure.Revoked, revoked.Key.Id), (r.Succeeded, r.Failure, r.KeyId));

        // Rotation without overlap stops the old secret at once; the new one works straight away.
        var rotated = await w.Keys.CreateAsync(w.ProjectId, new CreateApiKeyRequest("to rotate", Roles.User), w.Admin);
        await Warm(rotated.Secret);
        var replacement = await w.Keys.RotateAsync(w.ProjectId, rotated.Key.Id, TimeSpan.Zero, w.Admin);
        Assert.Equal(ApiKeyFailure.Superseded, (await w.Keys.AuthenticateAsync(rotated.Secret, null)).Failure);
        Assert.True((await w.Keys.AuthenticateAsync(replacement.Secret, null)).Succeeded);

        // With an overlap the old secret works until the overlap ends, judged by the clock on each call.
        var overlapped = await w.Keys.CreateAsync(w.ProjectId, new CreateApiKeyRequest("overlap", Roles.User), w.Admin);
        await Warm(overlapped.Secret);
        await w.Keys.RotateAsync(w.ProjectId, overlapped.Key.Id, TimeSpan.FromMilliseconds(500), w.Admin);
        Assert.True((await w.Keys.AuthenticateAsync(overlapped.Secret, null)).Succeeded);
        w.Clock.Advance(TimeSpan.FromMilliseconds(600));
        Assert.Equal(ApiKeyFailure.Superseded, (await w.Keys.AuthenticateAsync(overlapped.Secret, null)).Failure);

        // Expiry is never remembered as "valid": the row is cached, the verdict is made against the clock every call,
        // so a key read half a second before its expiry is refused half a second later (within the memo's lifetime).
        var expiring = await w.Keys.CreateAsync(w.ProjectId, new CreateApiKeyRequest("expiring", Roles.User, ExpiresAt: w.Clock.GetUtcNow().AddDays(1)), w.Admin);
        w.Clock.Advance(TimeSpan.FromDays(1) - TimeSpan.FromMilliseconds(500));
        await Warm(expiring.Secret);
        w.Clock.Advance(TimeSpan.FromMilliseconds(600));
        var expired = await w.Keys.AuthenticateAsync(expiring.Secret, null);
        Assert.Equal((false, ApiKeyFailure.Expired), (expired.Succeeded, expired.Failure));
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task A_revocation_on_another_node_applies_within_the_memo_lifetime(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        var key = await w.Keys.CreateAsync(w.ProjectId, new CreateApiKeyRequest("shared", Roles.User), w.Admin);
        Assert.True((await w.Keys.AuthenticateAsync(key.Secret, null)).Succeeded);

        await using (var node2 = w.Db.Services(w.Clock, s => s.AddDataProtection().UseEphemeralDataProtectionProvider()))
            await node2.GetRequiredService<ApiKeyService>().RevokeAsync(w.ProjectId, key.Key.Id, "revoked on node 2", w.Admin);

        // This node has not been told; its memo may answer from the old row until the lifetime ends, never after.
        w.Clock.Advance(ApiKeyCache.Lifetime);
        Assert.Equal(ApiKeyFailure.Revoked, (await w.Keys.AuthenticateAsync(key.Secret, null)).Failure);
    }

    [Fact]
    public void A_read_overtaken_by_a_change_is_never_served_and_entries_expire()
    {
        var clock = new ManualClock();
        var cache = new ApiKeyCache(clock);
        var row = new ApiKeySnapshot(Guid.NewGuid(), Guid.NewGuid(), "k", Roles.User, [], clock.GetUtcNow().AddDays(1), null, null, null, null);

        cache.Store("h", row, cache.Generation, clock.GetUtcNow());
        Assert.True(cache.TryGet("h", out _));
        clock.Advance(ApiKeyCache.Lifetime);
        Assert.False(cache.TryGet("h", out _));

        // A lookup that started before a revoke committed stores an entry nobody may use.
        var before = cache.Generation;
        var readAt = clock.GetUtcNow();
        cache.Invalidate();
        cache.Store("h", row, before, readAt);
        Assert.False(cache.TryGet("h", out _));
        Assert.False(cache.TryGet("other", out _));
    }
}
