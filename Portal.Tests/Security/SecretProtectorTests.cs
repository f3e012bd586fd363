using System.Security.Cryptography;
using Microsoft.Extensions.Configuration;
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

    [Fact]
    public async Task Data_protection_keys_are_stored_encrypted()
    {
        await using var db = await TestDatabase.CreateAsync("sqlite");
        await using var app = new PortalApp(db);
        var client = app.Client();
        await client.GetAsync("/Account/Login"); // issues an antiforgery token, creating the key ring
        var keyFiles = Directory.GetFiles(Path.Combine(db.DataDirectory, "keys"), "*.xml");
        Assert.NotEmpty(keyFiles);
        foreach (var f in keyFiles)
        {
            var xml = await File.ReadAllTextAsync(f);
            Assert.Contains("encryptedKey", xml);
            Assert.DoesNotContain("<masterKey", xml);
        }
    }
}
