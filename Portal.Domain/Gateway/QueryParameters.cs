using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Portal.Domain.Gateway;

public enum ParameterType { String, Int, Decimal, Date, Bool }

/// <summary>
/// One named parameter of an approved query. The SQL refers to it as <c>@name</c> on every engine: SQLite binds
/// <c>@name</c> natively, and the PostgreSQL adapter turns each <c>@name</c> into a positional <c>$n</c> before it
/// reaches the server (see <see cref="PostgresPlaceholders"/>). Names are lower-case identifiers.
/// </summary>
public sealed record QueryParameter(
    string Name,
    ParameterType Type,
    bool Required = true,
    IReadOnlyList<string>? AllowedValues = null,
    string? Pattern = null,
    int? MaxLength = null,
    string? Description = null)
{
    public static readonly Regex NamePattern = new("^[a-z_][a-z0-9_]{0,62}$", RegexOptions.CultureInvariant);
}

/// <summary>A bound value ready for an engine: string, long, decimal, DateOnly, bool, or null for an omitted optional.</summary>
public sealed record TypedParameter(string Name, ParameterType Type, object? Value);

public sealed record FieldError(string Field, string Message);

public sealed record ParameterValidationResult(IReadOnlyList<TypedParameter> Values, IReadOnlyList<FieldError> Errors)
{
    public bool IsValid => Errors.Count == 0;
}

/// <summary>
/// Turns caller-supplied values (JSON or plain strings) into typed values, collecting every problem at once so a
/// caller fixes all of them in one round trip. Field names are <c>parameters.&lt;name&gt;</c>.
/// </summary>
public static class ParameterValidator
{
    private static readonly TimeSpan RegexBudget = TimeSpan.FromMilliseconds(100);

    /// <summary>Checks the definitions themselves (when a query is approved), not caller values.</summary>
    public static IReadOnlyList<FieldError> ValidateDefinitions(IReadOnlyList<QueryParameter> parameters)
    {
        var errors = new List<FieldError>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in parameters)
        {
            var field = $"parameters.{p.Name}";
            if (!QueryParameter.NamePattern.IsMatch(p.Name))
                errors.Add(new(field, "A parameter name must be a lower-case identifier (letters, digits, underscore)."));
            if (!seen.Add(p.Name)) errors.Add(new(field, $"Parameter '{p.Name}' is declared twice."));
            if (p.MaxLength is <= 0) errors.Add(new(field, "Max length must be positive."));
            if (p.Pattern is not null)
            {
                try { _ = new Regex(p.Pattern, RegexOptions.CultureInvariant, RegexBudget); }
                catch (ArgumentException) { errors.Add(new(field, "The pattern is not a valid regular expression.")); }
            }
            if (p.AllowedValues is { Count: > 0 })
                foreach (var v in p.AllowedValues)
                    if (Convert(p, v, out _) is { } e) errors.Add(new(field, $"Allowed value '{v}' is not a valid {TypeName(p.Type)}: {e}"));
        }
        return errors;
    }

    public static ParameterValidationResult Validate(IReadOnlyList<QueryParameter> definitions, JsonElement? values)
    {
        var raw = new Dictionary<string, string?>(StringComparer.Ordinal);
        var errors = new List<FieldError>();
        if (values is { ValueKind: JsonValueKind.Object } obj)
        {
            foreach (var prop in obj.EnumerateObject())
            {
                raw[prop.Name] = prop.Value.ValueKind switch
                {
                    JsonValueKind.Null => null,
                    JsonValueKind.String => prop.Value.GetString(),
                    JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False => prop.Value.GetRawText(),
                    _ => Invalid(prop.Name),
                };
            }
        }
        else if (values is { } v && v.ValueKind is not (JsonValueKind.Null or JsonValueKind.Undefined))
            errors.Add(new("parameters", "Parameters must be a JSON object of name/value pairs."));
        var result = Validate(definitions, raw);
        return new(result.Values, [.. errors, .. result.Errors]);

        string? Invalid(string name)
        {
            errors.Add(new($"parameters.{name}", "A parameter value must be a string, number, boolean or null."));
            return null;
        }
    }

    public static ParameterValidationResult Validate(IReadOnlyList<QueryParameter> definitions, IReadOnlyDictionary<string, string?> values)
    {
        var errors = new List<FieldError>();
        var typed = new List<TypedParameter>();
        var byName = definitions.ToDictionary(d => d.Name, StringComparer.Ordinal);
        foreach (var name in values.Keys.Where(k => !byName.ContainsKey(k)).Order(StringComparer.Ordinal))
            errors.Add(new($"parameters.{name}", $"Unknown parameter '{name}'; this query accepts: {(definitions.Count == 0 ? "none" : string.Join(", ", definitions.Select(d => d.Name)))}."));

        foreach (var def in definitions)
        {
            var field = $"parameters.{def.Name}";
            values.TryGetValue(def.Name, out var text);
            if (string.IsNullOrEmpty(text))
            {
                if (def.Required) errors.Add(new(field, $"'{def.Name}' is required."));
                else typed.Add(new(def.Name, def.Type, null));
                continue;
            }
            var before = errors.Count;
            if (def.MaxLength is { } max && text.Length > max)
                errors.Add(new(field, $"'{def.Name}' must be at most {max} characters."));
            if (def.Pattern is not null)
            {
                try
                {
                    if (!Regex.IsMatch(text, def.Pattern, RegexOptions.CultureInvariant, RegexBudget))
                        errors.Add(new(field, $"'{def.Name}' does not match the required format."));
                }
                catch (RegexMatchTimeoutException) { errors.Add(new(field, $"'{def.Name}' could not be checked against its format.")); }
            }
            if (Convert(def, text, out var value) is { } convError) errors.Add(new(field, convError));
            else if (def.AllowedValues is { Count: > 0 } allowed && !allowed.Any(a => Convert(def, a, out var av) is null && Equals(av, value)))
                errors.Add(new(field, $"'{def.Name}' must be one of: {string.Join(", ", allowed)}."));
            if (errors.Count == before) typed.Add(new(def.Name, def.Type, value));
        }
        return new(typed, errors);
    }

    private static string TypeName(ParameterType t) => t.ToString().ToLowerInvariant();

    /// <summary>Returns an error message, or null with the typed value.</summary>
    private static string? Convert(QueryParameter def, string text, out object? value)
    {
        value = null;
        var inv = CultureInfo.InvariantCulture;
        switch (def.Type)
        {
            case ParameterType.String: value = text; return null;
            case ParameterType.Int:
                if (long.TryParse(text, NumberStyles.AllowLeadingSign, inv, out var l)) { value = l; return null; }
                return $"'{def.Name}' must be a whole number.";
            case ParameterType.Decimal:
                if (decimal.TryParse(text, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, inv, out var d)) { value = d; return null; }
                return $"'{def.Name}' must be a decimal number such as 12.50.";
            case ParameterType.Date:
                if (DateOnly.TryParseExact(text, "yyyy-MM-dd", inv, DateTimeStyles.None, out var date)) { value = date; return null; }
                return $"'{def.Name}' must be a date in the form yyyy-MM-dd.";
            case ParameterType.Bool:
                if (bool.TryParse(text, out var b)) { value = b; return null; }
                return $"'{def.Name}' must be true or false.";
            default: return $"'{def.Name}' has an unsupported type.";
        }
    }
}
