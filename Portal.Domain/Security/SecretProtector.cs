using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Portal.Domain.Persistence;

namespace Portal.Domain.Security;

/// <summary>
/// Encrypts secrets at rest (datasource passwords, webhook secrets, SIEM tokens, the portal's data-protection keys)
/// with AES-256-GCM under versioned keys from configuration, so keys can be rotated: new values use the active key,
/// old values stay readable while their key is listed, and <see cref="NeedsRotation"/> finds what to re-encrypt.
/// The purpose string is bound as associated data, so a ciphertext copied into another row does not decrypt.
/// </summary>
public sealed class SecretProtector
{
    public const string Prefix = "enc:";
    private readonly Dictionary<string, byte[]> keys;
    public string ActiveKeyId { get; }

    public SecretProtector(IReadOnlyList<(string Id, byte[] Key)> keyring)
    {
        if (keyring.Count == 0) throw new ConfigurationException("Security:EncryptionKeys: at least one key is required.");
        foreach (var (id, key) in keyring)
        {
            if (string.IsNullOrWhiteSpace(id) || id.Contains(':') || id.Length > 32)
                throw new ConfigurationException($"Security:EncryptionKeys: key id '{id}' must be 1-32 characters without ':'.");
            if (key.Length != 32) throw new ConfigurationException($"Security:EncryptionKeys: key '{id}' must be 32 bytes (base64 of 32 random bytes).");
        }
        keys = keyring.ToDictionary(k => k.Id, k => k.Key);
        if (keys.Count != keyring.Count) throw new ConfigurationException("Security:EncryptionKeys: key ids must be unique.");
        ActiveKeyId = keyring[0].Id;
    }

    /// <summary>
    /// Reads "Security:EncryptionKeys" ("id:base64key;id:base64key", active key first). Without it, a key file is
    /// created in the data directory (readable by the owner only) so the embedded default works out of the box;
    /// production supplies keys through the environment or a secret store instead.
    /// </summary>
    public static SecretProtector FromConfiguration(IConfiguration configuration, DatabaseOptions db, ILogger? logger = null)
    {
        var spec = configuration["Security:EncryptionKeys"];
        if (string.IsNullOrWhiteSpace(spec))
        {
            Directory.CreateDirectory(db.DataDirectory);
            var file = Path.Combine(db.DataDirectory, "encryption.keys");
            if (!File.Exists(file))
            {
                var generated = $"k1:{Convert.ToBase64String(RandomNumberGenerator.GetBytes(32))}";
                File.WriteAllText(file, generated);
                if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
                logger?.LogWarning("No Security:EncryptionKeys configured: generated a key file at {File}. Supply keys from a secret store in production.", Path.GetFullPath(file));
            }
            spec = File.ReadAllText(file).Trim();
        }
        return new SecretProtector(Parse(spec));
    }

    public static IReadOnlyList<(string Id, byte[] Key)> Parse(string spec)
    {
        var list = new List<(string, byte[])>();
        foreach (var part in spec.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var colon = part.IndexOf(':');
            if (colon <= 0) throw new ConfigurationException("Security:EncryptionKeys must look like 'k2:<base64>;k1:<base64>' (active key first).");
            byte[] key;
            try { key = Convert.FromBase64String(part[(colon + 1)..]); }
            catch (FormatException) { throw new ConfigurationException($"Security:EncryptionKeys: key '{part[..colon]}' is not valid base64."); }
            list.Add((part[..colon], key));
        }
        return list;
    }

    public string Protect(string plaintext, string purpose)
    {
        var data = Encoding.UTF8.GetBytes(plaintext);
        var nonce = RandomNumberGenerator.GetBytes(12);
        var cipher = new byte[data.Length];
        var tag = new byte[16];
        using (var aes = new AesGcm(keys[ActiveKeyId], 16)) aes.Encrypt(nonce, data, cipher, tag, Encoding.UTF8.GetBytes(purpose));
        var blob = new byte[12 + cipher.Length + 16];
        nonce.CopyTo(blob, 0);
        cipher.CopyTo(blob, 12);
        tag.CopyTo(blob, 12 + cipher.Length);
        return $"{Prefix}{ActiveKeyId}:{Convert.ToBase64String(blob)}";
    }

    public string Unprotect(string protectedValue, string purpose)
    {
        var (keyId, blob) = Split(protectedValue);
        if (!keys.TryGetValue(keyId, out var key))
            throw new CryptographicException($"The secret was encrypted with key '{keyId}', which is not in Security:EncryptionKeys.");
        if (blob.Length < 28) throw new CryptographicException("The protected secret is truncated.");
        var cipher = blob.AsSpan(12, blob.Length - 28);
        var plain = new byte[cipher.Length];
        using (var aes = new AesGcm(key, 16)) aes.Decrypt(blob.AsSpan(0, 12), cipher, blob.AsSpan(blob.Length - 16), plain, Encoding.UTF8.GetBytes(purpose));
        return Encoding.UTF8.GetString(plain);
    }

    public bool NeedsRotation(string protectedValue) => Split(protectedValue).KeyId != ActiveKeyId;

    /// <summary>Re-encrypts under the active key (no-op when already current).</summary>
    public string Rotate(string protectedValue, string purpose) =>
        NeedsRotation(protectedValue) ? Protect(Unprotect(protectedValue, purpose), purpose) : protectedValue;

    private static (string KeyId, byte[] Blob) Split(string value)
    {
        if (!value.StartsWith(Prefix, StringComparison.Ordinal)) throw new CryptographicException("The value is not a protected secret.");
        var colon = value.IndexOf(':', Prefix.Length);
        if (colon < 0) throw new CryptographicException("The protected secret has no key id.");
        try { return (value[Prefix.Length..colon], Convert.FromBase64String(value[(colon + 1)..])); }
        catch (FormatException) { throw new CryptographicException("The protected secret is not valid base64."); }
    }
}
