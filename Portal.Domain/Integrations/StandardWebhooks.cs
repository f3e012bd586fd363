using System.Security.Cryptography;
using System.Text;

namespace Portal.Domain.Integrations;

/// <summary>
/// Signing per the Standard Webhooks specification (standardwebhooks.com): the signature covers
/// "{webhook-id}.{webhook-timestamp}.{body}" with HMAC-SHA256 under the base64-decoded part of a "whsec_" secret, and
/// is sent as "v1,{base64}". Several signatures are space-separated (secret rotation signs with both secrets).
/// </summary>
public static class StandardWebhooks
{
    public const string SecretPrefix = "whsec_";

    public static string NewSecret() => SecretPrefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(24));

    public static byte[] SecretBytes(string secret)
    {
        var s = secret.StartsWith(SecretPrefix, StringComparison.Ordinal) ? secret[SecretPrefix.Length..] : secret;
        return Convert.FromBase64String(s);
    }

    public static string Sign(string secret, string id, long timestamp, string body)
    {
        var data = Encoding.UTF8.GetBytes($"{id}.{timestamp}.{body}");
        return "v1," + Convert.ToBase64String(HMACSHA256.HashData(SecretBytes(secret), data));
    }

    /// <summary>The webhook-signature header value: one signature per secret, space-separated.</summary>
    public static string SignatureHeader(IEnumerable<string> secrets, string id, long timestamp, string body) =>
        string.Join(' ', secrets.Select(s => Sign(s, id, timestamp, body)));

    /// <summary>What a receiver does: any of the header's v1 signatures matches (constant-time) and the timestamp is fresh.</summary>
    public static bool Verify(string secret, string id, string timestampText, string body, string signatureHeader, DateTimeOffset now, TimeSpan? tolerance = null)
    {
        if (!long.TryParse(timestampText, out var ts)) return false;
        if (Math.Abs(now.ToUnixTimeSeconds() - ts) > (tolerance ?? TimeSpan.FromMinutes(5)).TotalSeconds) return false;
        var expected = Encoding.ASCII.GetBytes(Sign(secret, id, ts, body));
        foreach (var candidate in signatureHeader.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            if (CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(candidate), expected)) return true;
        return false;
    }
}
