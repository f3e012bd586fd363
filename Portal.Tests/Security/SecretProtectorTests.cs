using System.Security.Cryptography;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Portal.Domain.Persistence;
using Portal.Domain.Security;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Security;

public class SecretProtectorTests
{
    private static (string, byte[]) Key(string id) => (id, RandomNumberGenerator.GetBytes(32));

    [Fact]
    public void Round_trips_and_never_contains_the_plaintext()
    {
        var p = new SecretProtector([Key("k1")]);
        var enc = p.Protect("s3cr3t-password", "datasource:1");
        Assert.StartsWith("enc:k1:", enc);
        Assert.DoesNotContain("s3cr3t", enc);
        Assert.Equal("s3cr3t-password", p.Unprotect(enc, "datasource:1"));
        Assert.NotEqual(enc, p.Protect("s3cr3t-password", "datasource:1")); // fresh nonce every time
    }

    [Fact]
    public void Ciphertext_moved_to_another_purpose_or_tampered_does_not_decrypt()
    {
        var p = new SecretProtector([Key("k1")]);
        var enc = p.Protect("token", "webhook:A");
        Assert.ThrowsAny<CryptographicException>(() => p.Unprotect(enc, "webhook:B"));
        var blob = Convert.FromBase64String(enc["enc:k1:".Length..]);
        blob[^1] ^= 1;
        Assert.ThrowsAny<CryptographicException>(() => p.Unprotect("enc:k1:" + Convert.ToBase64String(blob), "webhook:A"));
    }

    [Fact]
    public void Rotation_keeps_old_values_readable_and_reencrypts_under_the_active_key()
    {
        var k1 = Key("k1");
        var old = new SecretProtector([k1]).Protect("pw", "p");
        var rotated = new SecretProtector([Key("k2"), k1]);
        Assert.True(rotated.NeedsRotation(old));
        var fresh = rotated.Rotate(old, "p");
        Assert.StartsWith("enc:k2:", fresh);
        Assert.False(rotated.NeedsRotation(fresh));
        Assert.Equal("pw", rotated.Unprotect(fresh, "p"));
        var withoutOldKey = new SecretProtector([Key("k2")]);
        var e = Assert.ThrowsAny<CryptographicException>(() => withoutOldKey.Unprotect(old, "p"));
        Assert.Contains("'k1'", e.Message);
    }

    [Theory]
    [InlineData("nocolon", "Security:EncryptionKeys")]
    [InlineData("k1:not-base64!", "not valid base64")]
    [InlineData("k1:AAAA", "32 bytes")]
    public void Bad_configuration_names_the_setting(string spec, string expected)
    {
        var e = Assert.Throws<ConfigurationException>(() => new SecretProtector(SecretProtector.Parse(spec)));
        Assert.Contains(expected, e.Message);
        Assert.Contains("Security:EncryptionKeys", e.Message);
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")] // file modes are POSIX; CA1416 fails the CI build otherwise
    public void Without_configured_keys_a_private_key_file_is_generated_once()
    {
        var dir = Path.Combine(Path.GetTempPath(), "portal-tests", Guid.NewGuid().ToString("N"));
        try
        {
            var config = new ConfigurationBuilder().Build();
            var db = new DatabaseOptions { DataDirectory = dir };
            var a = SecretProtector.FromConfiguration(config, db);
            var b = SecretProtector.FromConfiguration(config, db);
            Assert.Equal("x", b.Unprotect(a.Protect("x", "p"), "p"));
            var mode = File.GetUnixFileMode(Path.Combine(dir, "encryption.keys"));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, mode);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Data_protection_keys_are_stored_encrypted_in_the_database(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db);
        var client = app.Client();
        await client.GetAsync("/Account/Login"); // issues an antiforgery token, creating the key ring
        var rows = await db.RawRowsAsync("data_protection_keys");
        Assert.NotEmpty(rows);
        foreach (var row in rows)
        {
            Assert.Contains("encryptedKey", row);
            Assert.DoesNotContain("<masterKey", row);
        }
        Assert.False(Directory.Exists(Path.Combine(db.DataDirectory, "keys")), "no key folder is written any more");
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Two_portal_nodes_with_their_own_data_folders_share_one_key_ring(string provider)
    {
        // Two nodes behind a load balancer: same database and Security:EncryptionKeys, separate local folders. What one
        // node protects (a sign-in cookie, an antiforgery token) the other must read.
        await using var db = await TestDatabase.CreateAsync(provider);
        var keys = $"k1:{Convert.ToBase64String(RandomNumberGenerator.GetBytes(32))}";
        var otherFolder = Path.Combine(Path.GetTempPath(), "portal-tests", Guid.NewGuid().ToString("N"));
        try
        {
            await using var one = new PortalApp(db, new() { ["Security:EncryptionKeys"] = keys });
            await using var two = new PortalApp(db, new() { ["Security:EncryptionKeys"] = keys, ["Database:DataDirectory"] = otherFolder });
            var payload = one.Services.GetRequiredService<IDataProtectionProvider>().CreateProtector("cookie").Protect("signed-in as ana");
            Assert.Equal("signed-in as ana", two.Services.GetRequiredService<IDataProtectionProvider>().CreateProtector("cookie").Unprotect(payload));
            Assert.Single(await db.RawRowsAsync("data_protection_keys"));

            // A node whose encryption keys differ cannot open the shared ring (its startup stops: StartupConfigurationTests).
            var stranger = new SecretProtector([("k1", RandomNumberGenerator.GetBytes(32))]);
            var factory = one.Services.GetRequiredService<Microsoft.EntityFrameworkCore.IDbContextFactory<Portal.Domain.Persistence.PortalDbContext>>();
            var refused = await Assert.ThrowsAsync<ConfigurationException>(() => DatabaseKeyRing.EnsureReadableAsync(factory, stranger));
            Assert.Contains("Security:EncryptionKeys", refused.Message);
            await DatabaseKeyRing.EnsureReadableAsync(factory, two.Services.GetRequiredService<SecretProtector>());
        }
        finally
        {
            if (Directory.Exists(otherFolder)) Directory.Delete(otherFolder, true);
        }
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Keys_left_in_the_old_key_folder_are_moved_into_the_database_once(string provider)
    {
        // An earlier version wrote the ring to <data>/keys; payloads it protected must still open after the upgrade.
        await using var db = await TestDatabase.CreateAsync(provider);
        var keys = $"k1:{Convert.ToBase64String(RandomNumberGenerator.GetBytes(32))}";
        var folder = Path.Combine(db.DataDirectory, "keys");
        var old = new ServiceCollection().AddLogging();
        var protector = new SecretProtector(SecretProtector.Parse(keys));
        old.AddSingleton(protector);
        old.AddDataProtection().SetApplicationName("governance-portal").PersistKeysToFileSystem(new DirectoryInfo(folder));
        old.AddOptions<Microsoft.AspNetCore.DataProtection.KeyManagement.KeyManagementOptions>()
            .Configure(o => o.XmlEncryptor = new SecretXmlEncryptor(protector));
        string payload;
        await using (var oldServices = old.BuildServiceProvider())
            payload = oldServices.GetRequiredService<IDataProtectionProvider>().CreateProtector("cookie").Protect("from before");
        Assert.Single(Directory.GetFiles(folder, "key-*.xml"));

        await using var app = new PortalApp(db, new() { ["Security:EncryptionKeys"] = keys });
        Assert.Equal("from before", app.Services.GetRequiredService<IDataProtectionProvider>().CreateProtector("cookie").Unprotect(payload));
        var rows = await db.RawRowsAsync("data_protection_keys");
        Assert.Single(rows);
        Assert.Contains("encryptedKey", rows[0]);
        Assert.Contains(app.Logs.Lines, l => l.Contains("Moved 1 data-protection keys"));

        // A second node starting later finds the ring in the database and imports nothing again.
        await using var second = new PortalApp(db, new() { ["Security:EncryptionKeys"] = keys });
        Assert.Equal("from before", second.Services.GetRequiredService<IDataProtectionProvider>().CreateProtector("cookie").Unprotect(payload));
        Assert.Single(await db.RawRowsAsync("data_protection_keys"));
    }
}
