using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;

namespace Portal.Domain.Gateway.Catalog;

/// <summary>The stored JSON shapes of parameter definitions and label lists: camelCase, enums as lower-case strings.</summary>
public static class CatalogJson
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public static string Write<T>(T value) => JsonSerializer.Serialize(value, Options);

    public static IReadOnlyList<QueryParameter> ReadParameters(string json) =>
        JsonSerializer.Deserialize<List<QueryParameter>>(json, Options) ?? [];

    public static IReadOnlyList<string> ReadStrings(string json) =>
        JsonSerializer.Deserialize<List<string>>(json, Options) ?? [];
}

/// <summary>Data classification labels carried by queries and masked columns.</summary>
public static partial class Classifications
{
    public const string Pii = "pii";
    public const string Financial = "financial";
    public const string Internal = "internal";
    public const string Custom = "custom";
    public static readonly IReadOnlyList<string> Builtin = [Pii, Financial, Internal, Custom];

    /// <summary>A built-in label, or "custom:&lt;label&gt;" for an organisation's own label.</summary>
    public static bool IsValid(string? label) =>
        label is not null && (Builtin.Contains(label) || CustomLabel().IsMatch(label));

    public const string Hint = "Classifications are pii, financial, internal, custom, or custom:<label> (lower-case letters, digits, '-' or '_').";

    /// <summary>Trims, lower-cases, de-duplicates and checks labels; throws naming <paramref name="field"/>.</summary>
    public static IReadOnlyList<string> Normalize(IEnumerable<string?>? labels, string field)
    {
        var result = new List<string>();
        foreach (var raw in labels ?? [])
        {
            var label = raw?.Trim().ToLowerInvariant();
            if (!IsValid(label)) throw DomainException.Invalid(field, $"'{raw}' is not a known classification. {Hint}");
            if (!result.Contains(label!)) result.Add(label!);
        }
        return result;
    }

    [GeneratedRegex("^custom:[a-z0-9][a-z0-9_-]{0,39}$", RegexOptions.CultureInvariant)]
    private static partial Regex CustomLabel();
}
