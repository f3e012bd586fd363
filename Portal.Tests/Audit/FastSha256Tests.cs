using System.Security.Cryptography;
using Portal.Domain.Audit;

namespace Portal.Tests.Audit;

/// <summary>The verifier's direct OpenSSL SHA-256 gives the same answers as .NET's, and is really in use here.</summary>
public class FastSha256Tests
{
    [Fact]
    public void Hashes_equal_dotnet_sha256_for_every_length_around_the_block_size_and_beyond()
    {
        // On our Linux hosts OpenSSL 3 is the library .NET itself uses; if the direct path silently fell back, this
        // test would still pass on the answers but the verifier's speed would not be what BENCHMARKS.md says.
        if (OperatingSystem.IsLinux() && Environment.GetEnvironmentVariable("CI") == "true")
            Assert.True(FastSha256.Direct, "the direct OpenSSL SHA-256 binding was not taken");
        var rng = new Random(7);
        Span<byte> fast = stackalloc byte[32], reference = stackalloc byte[32];
        for (var n = 0; n < 2100; n += n < 200 ? 1 : 37)
        {
            var data = new byte[n];
            rng.NextBytes(data);
            FastSha256.Hash(data, fast);
            SHA256.HashData(data, reference);
            Assert.True(fast.SequenceEqual(reference), $"length {n}");
        }
        Assert.Throws<ArgumentException>(() => FastSha256.Hash([1, 2, 3], new byte[31]));
    }
}
