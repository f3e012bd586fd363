using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Portal.Domain;
using Portal.Domain.Security.ApiKeys;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Security;

public class ApiKeyTests
{
    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Create_shows_the_secret_once_and_stores_only_its_hash_and_prefix(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        var issued = await w.Keys.CreateAsync(w.ProjectId, new CreateApiKeyRequest(" fraud agent ", Roles.User, ["q-fraud.daily", "role:user"]), w.Admin);

        Assert.Matches(new Regex("^gpk_[A-Za-z0-9]{8}_[A-Za-z0-9]{40}$"), issued.Secret);
        Assert.Equal(issued.Secret[4..12], issued.Key.Prefix);
        Assert.Equal("fraud agent", issued.Key.Name);
        Assert.Equal(["query:q-fraud.daily", "role:user"], issued.Key.Scopes);
        Assert.Equal(w.Clock.GetUtcNow().AddDays(90), issued.Key.ExpiresAt);
        Assert.Equal(ApiKeyStatus.Active, issued.Key.Status);

        var randomPart = issued.Secret[13..];
        var expectedHash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(issued.Secret)));
        var keyRows = await w.Db.RawRowsAsync("api_keys");
        var row = Assert.Single(keyRows);
        Assert.Contains($"secret_hash={expectedHash}", row);
        Assert.Contains($"prefix={issued.Key.Prefix}", row);
        foreach (var r in keyRows.Concat(await w.Db.RawRowsAsync("api_key_changes")))
        {
            Assert.DoesNotContain(randomPart, r);
            Assert.DoesNotContain(issued.Secret, r);
        }
        var change = Assert.Single(await w.Db.RawRowsAsync("api_key_changes"));
        Assert.Contains("action=created", change);
        Assert.DoesNotContain(expectedHash, change);

        // Lists never carry the secret or its hash.
        var listed = Assert.Single((await w.Keys.ListAsync(w.ProjectId, 0, 20)).Items);
        var json = JsonSerializer.Serialize(listed);
        Assert.DoesNotContain(randomPart, json);
        Assert.DoesNotContain(expectedHash, json);
        Assert.Equal("admin@bank.test", listed.CreatedByEmail);

        var auth = await w.Keys.AuthenticateAsync(issued.Secret, "10.0.0.7");
        Assert.True(auth.Succeeded);
        Assert.Equal((w.ProjectId, issued.Key.Id, Roles.User, "fraud agent"), (auth.ProjectId!.Value, auth.KeyId!.Value, auth.Role, auth.Name));
        Assert.Equal(["query:q-fraud.daily", "role:user"], auth.Scopes);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Bad_presented_keys_fail_with_the_right_reason(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        var good = await w.Keys.CreateAsync(w.ProjectId, new CreateApiKeyRequest("k", Roles.Data), w.Admin);

        foreach (var bad in new[] { null, "", "gpk_short", "xyz_" + good.Secret[4..], good.Secret + "x", good.Secret[..^1] + "!", good.Secret.Replace("_", "-") })
        {
            var r = await w.Keys.AuthenticateAsync(bad, null);
            Assert.Equal(ApiKeyFailure.Malformed, r.Failure);
            Assert.Null(r.KeyId);
        }
        var unknownPrefix = await w.Keys.AuthenticateAsync(ApiKeySecret.Compose("ZZZZZZZZ"), null);
        Assert.Equal(ApiKeyFailure.Unknown, unknownPrefix.Failure);
        var wrongTail = await w.Keys.AuthenticateAsync(ApiKeySecret.Compose(good.Key.Prefix), null);
        Assert.Equal(ApiKeyFailure.Unknown, wrongTail.Failure);
        Assert.Null(wrongTail.KeyId); // a guessed prefix must not confirm that the key exists

        w.Clock.Advance(TimeSpan.FromDays(90));
        var expired = await w.Keys.AuthenticateAsync(good.Secret, null);
        Assert.Equal(ApiKeyFailure.Expired, expired.Failure);
        Assert.Equal((good.Key.Id, w.ProjectId), (expired.KeyId, expired.ProjectId));
        Assert.Equal(ApiKeyStatus.Expired, (await w.Keys.GetAsync(w.ProjectId, good.Key.Id)).Status);

        var other = await w.Keys.CreateAsync(w.ProjectId, new CreateApiKeyRequest("k2", Roles.User), w.Admin);
        Assert.True((await w.Keys.AuthenticateAsync(other.Secret, null)).Succeeded);
        await w.Keys.RevokeAsync(w.ProjectId, other.Key.Id, "leaked in a CI log", w.Admin);
        var revoked = await w.Keys.AuthenticateAsync(other.Secret, null);
        Assert.Equal(ApiKeyFailure.Revoked, revoked.Failure);
        Assert.Equal(other.Key.Id, revoked.KeyId);
        var row = await w.Keys.GetAsync(w.ProjectId, other.Key.Id);
        Assert.Equal((ApiKeyStatus.Revoked, "leaked in a CI log"), (row.Status, row.RevokeReason));
        await Assert.ThrowsAsync<DomainException>(() => w.Keys.RevokeAsync(w.ProjectId, other.Key.Id, "again", w.Admin));
        var e = await Assert.ThrowsAsync<DomainException>(() => w.Keys.RevokeAsync(w.ProjectId, good.Key.Id, "  ", w.Admin));
        Assert.Equal("reason", e.Field);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Rotation_keeps_the_old_secret_working_for_the_overlap_then_stops_it(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        var old = await w.Keys.CreateAsync(w.ProjectId, new CreateApiKeyRequest("etl", Roles.Data, ["q1"], w.Clock.GetUtcNow().AddDays(30)), w.Admin);
        var tooLong = await Assert.ThrowsAsync<DomainException>(() => w.Keys.RotateAsync(w.ProjectId, old.Key.Id, TimeSpan.FromDays(8), w.Admin));
        Assert.Equal("overlap", tooLong.Field);

        var fresh = await w.Keys.RotateAsync(w.ProjectId, old.Key.Id, TimeSpan.FromHours(1), w.Admin);
        Assert.NotEqual(old.Secret, fresh.Secret);
        Assert.NotEqual(old.Key.Prefix, fresh.Key.Prefix);
        Assert.Equal(("etl", Roles.Data), (fresh.Key.Name, fresh.Key.Role));
        Assert.Equal(["query:q1"], fresh.Key.Scopes);
        Assert.Equal(w.Clock.GetUtcNow().AddDays(30), fresh.Key.ExpiresAt); // same lifetime as the old key

        var oldRow = await w.Keys.GetAsync(w.ProjectId, old.Key.Id);
        Assert.Equal((fresh.Key.Id, w.Clock.GetUtcNow().AddHours(1)), (oldRow.ReplacedByKeyId, oldRow.SupersededUntil));
        Assert.Equal(ApiKeyStatus.Superseded, oldRow.Status);
        Assert.True(oldRow.Usable);

        Assert.True((await w.Keys.AuthenticateAsync(old.Secret, null)).Succeeded);
        Assert.True((await w.Keys.AuthenticateAsync(fresh.Secret, null)).Succeeded);
        w.Clock.Advance(TimeSpan.FromMinutes(59));
        Assert.True((await w.Keys.AuthenticateAsync(old.Secret, null)).Succeeded);
        w.Clock.Advance(TimeSpan.FromMinutes(1));
        var after = await w.Keys.AuthenticateAsync(old.Secret, null);
        Assert.Equal(ApiKeyFailure.Superseded, after.Failure);
        Assert.Equal(old.Key.Id, after.KeyId);
        Assert.True((await w.Keys.AuthenticateAsync(fresh.Secret, null)).Succeeded);
        Assert.False((await w.Keys.GetAsync(w.ProjectId, old.Key.Id)).Usable);

        var again = await Assert.ThrowsAsync<DomainException>(() => w.Keys.RotateAsync(w.ProjectId, old.Key.Id, TimeSpan.Zero, w.Admin));
        Assert.Equal(ErrorKind.Conflict, again.Kind);

        // Zero overlap stops the old secret at once; revoking during an overlap stops it too.
        var third = await w.Keys.RotateAsync(w.ProjectId, fresh.Key.Id, TimeSpan.Zero, w.Admin);
        Assert.Equal(ApiKeyFailure.Superseded, (await w.Keys.AuthenticateAsync(fresh.Secret, null)).Failure);
        var fourth = await w.Keys.RotateAsync(w.ProjectId, third.Key.Id, TimeSpan.FromDays(7), w.Admin);
        await w.Keys.RevokeAsync(w.ProjectId, third.Key.Id, "suspected leak", w.Admin);
        Assert.Equal(ApiKeyFailure.Revoked, (await w.Keys.AuthenticateAsync(third.Secret, null)).Failure);
        Assert.True((await w.Keys.AuthenticateAsync(fourth.Secret, null)).Succeeded);

        var changes = (await w.Keys.ChangesAsync(w.ProjectId, 0, 50)).Items;
        Assert.Equal(3, changes.Count(c => c.Action == ApiKeyActions.Rotated));
        Assert.Equal(4, changes.Count(c => c.Action == ApiKeyActions.Created));
        Assert.Single(changes, c => c.Action == ApiKeyActions.Revoked && c.Reason == "suspected leak" && c.KeyId == third.Key.Id);
        var rotated = changes.First(c => c.Action == ApiKeyActions.Rotated && c.KeyId == old.Key.Id);
        Assert.Equal(fresh.Key.Id, rotated.ReplacedByKeyId);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Two_rotations_of_one_key_at_once_leave_exactly_one_replacement(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        var key = await w.Keys.CreateAsync(w.ProjectId, new CreateApiKeyRequest("race", Roles.User), w.Admin);
        var attempts = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            try { await w.Keys.RotateAsync(w.ProjectId, key.Key.Id, TimeSpan.FromHours(1), w.Admin); return true; }
            catch (DomainException e) when (e.Kind == ErrorKind.Conflict) { return false; }
        })));
        Assert.Equal(1, attempts.Count(ok => ok));
        Assert.Equal(2, (await w.Keys.ListAsync(w.ProjectId, 0, 20)).Total);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Keys_cannot_act_above_their_creator(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        foreach (var role in Roles.All)
            Assert.Equal(role, (await w.Keys.CreateAsync(w.ProjectId, new CreateApiKeyRequest("k-" + role, role), w.Admin)).Key.Role);

        // Security staff manage keys to contain incidents: they revoke, but mint nothing.
        var security = await w.MemberAsync(Roles.Security);
        Assert.Empty(await w.Keys.MintableRolesAsync(w.ProjectId, security));
        foreach (var role in Roles.All)
        {
            var e = await Assert.ThrowsAsync<DomainException>(() => w.Keys.CreateAsync(w.ProjectId, new CreateApiKeyRequest("x", role), security));
            Assert.Equal((ErrorKind.Forbidden, "role"), (e.Kind, e.Field));
        }
        var adminKey = (await w.Keys.ListAsync(w.ProjectId, 0, 20)).Items.First(k => k.Role == Roles.Admin);
        var rotate = await Assert.ThrowsAsync<DomainException>(() => w.Keys.RotateAsync(w.ProjectId, adminKey.Id, TimeSpan.Zero, security));
        Assert.Equal(ErrorKind.Forbidden, rotate.Kind);
        await w.Keys.RevokeAsync(w.ProjectId, adminKey.Id, "containment", security);

        // Members whose role cannot manage keys are refused outright.
        var user = await w.MemberAsync(Roles.User);
        var data = await w.MemberAsync(Roles.Data);
        foreach (var actor in new[] { user, data, Guid.NewGuid() })
        {
            var e = await Assert.ThrowsAsync<DomainException>(() => w.Keys.CreateAsync(w.ProjectId, new CreateApiKeyRequest("x", Roles.User), actor));
            Assert.Equal(ErrorKind.Forbidden, e.Kind);
            await Assert.ThrowsAsync<DomainException>(() => w.Keys.RevokeAsync(w.ProjectId, adminKey.Id, "x", actor));
        }

        // A role scope cannot reach above the key's own role.
        var scope = await Assert.ThrowsAsync<DomainException>(() => w.Keys.CreateAsync(w.ProjectId, new CreateApiKeyRequest("x", Roles.User, ["admin"]), w.Admin));
        Assert.Equal("scopes", scope.Field);
    }

    [Fact]
    public void The_role_ladder_admin_data_user_with_off_ladder_roles_for_admins_only()
    {
        Assert.Equal(Roles.All, ApiKeyRules.MintableRoles(Roles.Admin));
        Assert.Equal([Roles.Data, Roles.User], ApiKeyRules.MintableRoles(Roles.Data));
        Assert.Equal([Roles.User], ApiKeyRules.MintableRoles(Roles.User));
        Assert.Empty(ApiKeyRules.MintableRoles(Roles.Compliance));
        Assert.Empty(ApiKeyRules.MintableRoles(Roles.Security));
        Assert.Empty(ApiKeyRules.MintableRoles("owner"));
        Assert.False(ApiKeyRules.CanMint(Roles.Data, Roles.Compliance));
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Validation_names_the_bad_field_and_writes_nothing(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        var now = w.Clock.GetUtcNow();
        var cases = new (CreateApiKeyRequest Request, string Field)[]
        {
            (new(null, Roles.User), "name"),
            (new(new string('n', 201), Roles.User), "name"),
            (new("k", "owner"), "role"),
            (new("k", null), "role"),
            (new("k", Roles.User, ["drop table; --"]), "scopes"),
            (new("k", Roles.User, ["role:owner"]), "scopes"),
            (new("k", Roles.User, Enumerable.Range(0, 51).Select(i => $"q{i}").ToList()), "scopes"),
            (new("k", Roles.User, null, now), "expiresAt"),
            (new("k", Roles.User, null, now.AddDays(366)), "expiresAt"),
        };
        foreach (var (request, field) in cases)
        {
            var e = await Assert.ThrowsAsync<DomainException>(() => w.Keys.CreateAsync(w.ProjectId, request, w.Admin));
            Assert.Equal((ErrorKind.Validation, field), (e.Kind, e.Field));
        }
        Assert.Equal(0, (await w.Keys.ListAsync(w.ProjectId, 0, 20)).Total);
        Assert.Equal(0, (await w.Keys.ChangesAsync(w.ProjectId, 0, 20)).Total);
        var max = await w.Keys.CreateAsync(w.ProjectId, new CreateApiKeyRequest("k", Roles.User, null, now.AddDays(365)), w.Admin);
        Assert.Equal(now.AddDays(365), max.Key.ExpiresAt);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Another_projects_key_is_not_found(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        var key = await w.Keys.CreateAsync(w.ProjectId, new CreateApiKeyRequest("mine", Roles.User), w.Admin);
        var other = await w.OtherProjectAsync();

        Assert.Equal(ErrorKind.NotFound, (await Assert.ThrowsAsync<DomainException>(() => w.Keys.GetAsync(other, key.Key.Id))).Kind);
        Assert.Equal(ErrorKind.NotFound, (await Assert.ThrowsAsync<DomainException>(() => w.Keys.RotateAsync(other, key.Key.Id, TimeSpan.Zero, w.Admin))).Kind);
        Assert.Equal(ErrorKind.NotFound, (await Assert.ThrowsAsync<DomainException>(() => w.Keys.RevokeAsync(other, key.Key.Id, "x", w.Admin))).Kind);
        Assert.Equal(0, (await w.Keys.ListAsync(other, 0, 20)).Total);
        Assert.Equal(0, (await w.Keys.ChangesAsync(other, 0, 20)).Total);
        Assert.True((await w.Keys.AuthenticateAsync(key.Secret, null)).Succeeded); // untouched
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Last_use_is_written_at_most_once_a_minute(string provider)
    {
        await using var w = await SecurityWorld.CreateAsync(provider);
        var key = await w.Keys.CreateAsync(w.ProjectId, new CreateApiKeyRequest("busy", Roles.User), w.Admin);
        var t0 = w.Clock.GetUtcNow();
        Assert.Null((await w.Keys.GetAsync(w.ProjectId, key.Key.Id)).LastUsedAt);

        await w.Keys.AuthenticateAsync(key.Secret, "10.0.0.1");
        var row = await w.Keys.GetAsync(w.ProjectId, key.Key.Id);
        Assert.Equal((t0, "10.0.0.1"), (row.LastUsedAt, row.LastUsedIp));

        w.Clock.Advance(TimeSpan.FromSeconds(30));
        await w.Keys.AuthenticateAsync(key.Secret, "10.0.0.2");
        // Another node (a fresh service with its own memo) is held back by the conditional update.
        await using (var node2 = w.Db.Services(w.Clock, s => s.AddDataProtection().UseEphemeralDataProtectionProvider()))
            await node2.GetRequiredService<ApiKeyService>().AuthenticateAsync(key.Secret, "10.0.0.3");
        row = await w.Keys.GetAsync(w.ProjectId, key.Key.Id);
        Assert.Equal((t0, "10.0.0.1"), (row.LastUsedAt, row.LastUsedIp));

        w.Clock.Advance(TimeSpan.FromSeconds(31));
        await w.Keys.AuthenticateAsync(key.Secret, "10.0.0.4");
        row = await w.Keys.GetAsync(w.ProjectId, key.Key.Id);
        Assert.Equal((t0.AddSeconds(61), "10.0.0.4"), (row.LastUsedAt, row.LastUsedIp));
    }
}
