using System.Text.Json;
using Portal.Domain.Gateway;

namespace Portal.Tests.Gateway;

public class ParameterValidationTests
{
    private static readonly QueryParameter[] Defs =
    [
        new("customer_id", ParameterType.Int),
        new("status", ParameterType.String, Required: false, AllowedValues: ["new", "paid", "shipped"]),
        new("code", ParameterType.String, Pattern: "^[A-Z]{2,4}-[0-9]{2,4}$", MaxLength: 9),
        new("since", ParameterType.Date, Required: false),
        new("min_amount", ParameterType.Decimal, Required: false),
        new("open", ParameterType.Bool, Required: false),
    ];

    [Fact]
    public void Valid_json_values_become_typed_values()
    {
        var json = JsonDocument.Parse("""{"customer_id": 42, "status": "paid", "code": "SKU-1001", "since": "2024-02-29", "min_amount": "12.50", "open": true}""").RootElement;
        var r = ParameterValidator.Validate(Defs, json);
        Assert.True(r.IsValid, string.Join("; ", r.Errors));
        var v = r.Values.ToDictionary(p => p.Name, p => p.Value);
        Assert.Equal(42L, v["customer_id"]);
        Assert.Equal("paid", v["status"]);
        Assert.Equal(new DateOnly(2024, 2, 29), v["since"]);
        Assert.Equal(12.50m, v["min_amount"]);
        Assert.Equal(true, v["open"]);
    }

    [Fact]
    public void Omitted_optional_parameters_are_null()
    {
        var r = ParameterValidator.Validate(Defs, new Dictionary<string, string?> { ["customer_id"] = "1", ["code"] = "AB-12" });
        Assert.True(r.IsValid);
        Assert.Null(r.Values.Single(v => v.Name == "status").Value);
        Assert.Equal(Defs.Length, r.Values.Count);
    }

    [Fact]
    public void All_errors_are_returned_with_their_field()
    {
        var json = JsonDocument.Parse("""{"customer_id": "abc", "status": "deleted", "code": "drop table x", "since": "31/12/2024", "min_amount": "1e9", "open": "yes", "extra": 1, "nested": {"a": 1}}""").RootElement;
        var r = ParameterValidator.Validate(Defs, json);
        Assert.False(r.IsValid);
        var fields = r.Errors.Select(e => e.Field).ToList();
        Assert.Contains("parameters.customer_id", fields);
        Assert.Contains("parameters.status", fields);
        Assert.Contains("parameters.since", fields);
        Assert.Contains("parameters.min_amount", fields);
        Assert.Contains("parameters.open", fields);
        Assert.Contains("parameters.extra", fields);
        Assert.Contains("parameters.nested", fields);
        Assert.Equal(2, fields.Count(f => f == "parameters.code")); // too long and wrong format
        Assert.Contains(r.Errors, e => e.Field == "parameters.extra" && e.Message.Contains("Unknown parameter"));
        Assert.Contains(r.Errors, e => e.Field == "parameters.status" && e.Message.Contains("new, paid, shipped"));
        Assert.DoesNotContain(r.Values, v => v.Name == "customer_id");
    }

    [Fact]
    public void Missing_required_parameters_are_named()
    {
        var r = ParameterValidator.Validate(Defs, (JsonElement?)null);
        Assert.Equal(["parameters.code", "parameters.customer_id"], r.Errors.Select(e => e.Field).Order());
        var notObject = ParameterValidator.Validate(Defs, JsonDocument.Parse("[1,2]").RootElement);
        Assert.Contains(notObject.Errors, e => e.Field == "parameters");
    }

    [Fact]
    public void Definitions_are_checked()
    {
        var errors = ParameterValidator.ValidateDefinitions(
        [
            new("Bad-Name", ParameterType.String),
            new("dup", ParameterType.Int), new("dup", ParameterType.Int),
            new("re", ParameterType.String, Pattern: "("),
            new("allowed", ParameterType.Int, AllowedValues: ["1", "two"]),
            new("len", ParameterType.String, MaxLength: 0),
        ]);
        Assert.Equal(["parameters.Bad-Name", "parameters.allowed", "parameters.dup", "parameters.len", "parameters.re"],
            errors.Select(e => e.Field).Distinct().Order(StringComparer.Ordinal));
        Assert.Empty(ParameterValidator.ValidateDefinitions(Defs));
    }
}
