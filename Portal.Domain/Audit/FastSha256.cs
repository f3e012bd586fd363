using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Portal.Domain.Audit;

/// <summary>
/// SHA-256 of many small buffers (one audit event each) for the chain verifier's hot loop. Hand-written because no
/// package offers it: <see cref="SHA256.HashData(ReadOnlySpan{byte}, Span{byte})"/> goes through OpenSSL 3's EVP layer,
/// which per call allocates and frees a digest context and clears the error queue — about a third of the cost of
/// hashing a 700-byte event. This calls the same OpenSSL library's SHA256_Init/Update/Final on a context on the
/// stack (the same SHA-NI/AVX code underneath, none of the per-call bookkeeping).
/// <para>
/// Used only where the result is compared, never stored: the writer hashes through .NET as before. The binding is
/// checked against <see cref="SHA256"/> on known inputs at startup; if OpenSSL 3 is not the loaded library, the
/// functions are missing, or an answer differs, every call goes to <see cref="SHA256.HashData(ReadOnlySpan{byte}, Span{byte})"/>.
/// Those low-level functions are outside OpenSSL's FIPS provider: a host that must hash only through FIPS-validated
/// code sets <c>PORTAL_FIPS_ONLY=1</c> and this class is not used.
/// </para>
/// </summary>
public static unsafe class FastSha256
{
    // SHA256_CTX is 112 bytes in OpenSSL 1.1 and 3.x; more room is harmless.
    private const int ContextBytes = 256;

    private static readonly delegate* unmanaged[SuppressGCTransition]<byte*, int> Init;
    private static readonly delegate* unmanaged[SuppressGCTransition]<byte*, byte*, nuint, int> Update;
    private static readonly delegate* unmanaged[SuppressGCTransition]<byte*, byte*, int> Final;

    /// <summary>Whether calls go straight to OpenSSL's SHA256_* functions.</summary>
    public static readonly bool Direct;

    static FastSha256()
    {
        if (Environment.GetEnvironmentVariable("PORTAL_FIPS_ONLY") == "1" || !OperatingSystem.IsLinux()) return;
        try
        {
            if (!NativeLibrary.TryLoad("libcrypto.so.3", out var lib)) return;
            if (!NativeLibrary.TryGetExport(lib, "SHA256_Init", out var i) || !NativeLibrary.TryGetExport(lib, "SHA256_Update", out var u)
                || !NativeLibrary.TryGetExport(lib, "SHA256_Final", out var f)) return;
            Init = (delegate* unmanaged[SuppressGCTransition]<byte*, int>)i;
            Update = (delegate* unmanaged[SuppressGCTransition]<byte*, byte*, nuint, int>)u;
            Final = (delegate* unmanaged[SuppressGCTransition]<byte*, byte*, int>)f;
            Direct = SelfTest();
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            Direct = false;
        }
    }

    private static bool SelfTest()
    {
        var rng = new Random(20261201);
        Span<byte> a = stackalloc byte[32], b = stackalloc byte[32];
        foreach (var n in new[] { 0, 1, 55, 56, 63, 64, 65, 700, 5000 })
        {
            var data = new byte[n];
            rng.NextBytes(data);
            if (!Native(data, a)) return false;
            SHA256.HashData(data, b);
            if (!a.SequenceEqual(b)) return false;
        }
        return true;
    }

    private static bool Native(ReadOnlySpan<byte> data, Span<byte> destination)
    {
        var ctx = stackalloc byte[ContextBytes];
        fixed (byte* d = data)
        fixed (byte* o = destination)
            return Init(ctx) == 1 && Update(ctx, d, (nuint)data.Length) == 1 && Final(o, ctx) == 1;
    }

    public static void Hash(ReadOnlySpan<byte> data, Span<byte> destination)
    {
        if (destination.Length < 32) throw new ArgumentException("A SHA-256 hash is 32 bytes.", nameof(destination));
        if (!Direct || !Native(data, destination)) SHA256.HashData(data, destination);
    }
}
