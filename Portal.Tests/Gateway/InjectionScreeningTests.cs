using Portal.Domain.Gateway;
using Xunit.Abstractions;

namespace Portal.Tests.Gateway;

public class InjectionScreeningTests(ITestOutputHelper output)
{
    private static (List<string> Attacks, List<string> Benign) Corpus()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "Gateway", "injection-corpus.txt");
        var attacks = new List<string>();
        var benign = new List<string>();
        foreach (var line in File.ReadLines(path))
        {
            if (line.StartsWith('#') || line.Length < 3) continue;
            (line[0] == 'A' ? attacks : benign).Add(line[2..]);
        }
        return (attacks, benign);
    }

    [Fact]
    public void Corpus_detection_and_false_positive_rates()
    {
        var (attacks, benign) = Corpus();
        Assert.True(attacks.Count >= 150 && benign.Count >= 150, $"corpus too small: {attacks.Count} attacks, {benign.Count} benign");
        var missed = attacks.Where(a => !InjectionScreener.Screen(a).Suspicious).ToList();
        var falsePositives = benign.Select(b => (b, r: InjectionScreener.Screen(b))).Where(x => x.r.Suspicious).ToList();
        var detection = 1.0 - (double)missed.Count / attacks.Count;
        var fpRate = (double)falsePositives.Count / benign.Count;
        output.WriteLine($"attacks: {attacks.Count}, detected: {attacks.Count - missed.Count}, detection rate: {detection:P2}");
        output.WriteLine($"benign: {benign.Count}, flagged: {falsePositives.Count}, false-positive rate: {fpRate:P2}");
        foreach (var m in missed) output.WriteLine($"MISSED: {m}");
        foreach (var (b, r) in falsePositives) output.WriteLine($"FALSE POSITIVE: {b} ({r.Rule})");
        Assert.True(detection >= 0.95, $"detection {detection:P2}; missed: {string.Join(" | ", missed)}");
        Assert.True(fpRate <= 0.02, $"false positives {fpRate:P2}: {string.Join(" | ", falsePositives.Select(f => $"{f.b} ({f.r.Rule})"))}");
    }

    [Theory]
    [InlineData("O'Brien")]
    [InlineData("DROP-OFF LOCATION")]
    [InlineData("Select Comfort Corp")]
    [InlineData("D'Angelo; ship after 5pm -- fragile")]
    public void Ordinary_values_pass(string value) => Assert.False(InjectionScreener.Screen(value).Suspicious);

    [Theory]
    [InlineData("' OR '1'='1", "tautology")]
    [InlineData("x' --", "comment-terminator")]
    [InlineData("1; DROP TABLE users", "stacked-query")]
    [InlineData("1 UNION SELECT username, password FROM users", "union-select")]
    [InlineData("1; WAITFOR DELAY '0:0:5'", "stacked-query")]
    [InlineData("pg_sleep(10)", "time-delay")]
    public void Attacks_are_flagged_with_a_rule_and_reason(string value, string rule)
    {
        var r = InjectionScreener.Screen(value);
        Assert.True(r.Suspicious);
        Assert.Equal(rule, r.Rule);
        Assert.False(string.IsNullOrEmpty(r.Reason));
    }

    [Fact]
    public void Only_string_values_are_screened_and_findings_name_the_field()
    {
        var findings = InjectionScreener.ScreenAll(
        [
            new("name", ParameterType.String, "' OR 1=1 --"),
            new("city", ParameterType.String, "Lisbon"),
            new("id", ParameterType.Int, 5L),
        ]);
        var f = Assert.Single(findings);
        Assert.Equal("parameters.name", f.Field);
    }
}
