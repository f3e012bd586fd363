using System.Text.Json;

namespace Portal.Domain.Audit;

/// <summary>Hashes in JSON output (SIEM events, archive lines): lower-case hex written without a string per value.</summary>
internal static class HexJson
{
    // Hex into a stack buffer: the string Convert.ToHexStringLower allocates was one of the largest per-event costs.
    public static void WriteHex(this Utf8JsonWriter w, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        if (value.Length > 64) { w.WriteString(name, Convert.ToHexStringLower(value)); return; }
        Span<byte> hex = stackalloc byte[128];
        Convert.TryToHexStringLower(value, hex, out var n);
        w.WriteString(name, hex[..n]);
    }
}
