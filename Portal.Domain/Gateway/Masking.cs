using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Portal.Domain.Gateway;

public enum MaskType { Redact, Partial, Hash, Null, EmailDomain }

/// <summary>
/// How one base-table column is shown to roles that may not see it raw. Keyed by the column's origin
/// <c>table.column</c> (table name without schema, case-insensitive) as the engine reports it.
/// </summary>
public sealed record MaskRule(
    string Table,
    string Column,
    MaskType Type,
    IReadOnlyCollection<string>? VisibleToRoles = null,
    int ShowFirst = 0,
    int ShowLast = 0)
{
    public bool IsVisibleTo(string role) => VisibleToRoles?.Contains(role, StringComparer.OrdinalIgnoreCase) == true;
    public bool Matches(string table, string column) =>
        string.Equals(Table, table, StringComparison.OrdinalIgnoreCase) && string.Equals(Column, column, StringComparison.OrdinalIgnoreCase);
}

/// <summary>Why a column was masked, for the audit trail and for the caller.</summary>
public sealed record ColumnMasking(string Column, string? Origin, MaskType? Mask, string? Reason);

public sealed record MaskedResult(IReadOnlyList<ResultColumn> Columns, IReadOnlyList<object?[]> Rows, bool Truncated, IReadOnlyList<ColumnMasking> Masking);

/// <summary>
/// Applies column masks after execution, failing closed: whenever a statement read a column the role may not see,
/// any result column without a trustworthy single origin (expressions, aggregates, CASE, set operations, values
/// passed through views that PostgreSQL cannot trace) is redacted whole, because it may carry that column's value.
/// </summary>
public sealed class MaskingEngine
{
    public const string Redacted = "[REDACTED]";
    private readonly IReadOnlyList<MaskRule> rules;
    private readonly byte[] hashKey;

    /// <param name="hashKey">HMAC key from configuration; the same key keeps hashed values stable across queries for joins.</param>
    public MaskingEngine(IReadOnlyList<MaskRule> rules, byte[] hashKey)
    {
        if (hashKey.Length < 16) throw new ArgumentException("The masking hash key must be at least 16 bytes.", nameof(hashKey));
        this.rules = rules;
        this.hashKey = hashKey;
    }

    public MaskedResult Apply(QueryResult result, string role)
    {
        var hiddenRead = result.Analysis.ColumnsRead
            .Where(read => rules.Any(r => !r.IsVisibleTo(role) && string.Equals(r.Table, read.Table, StringComparison.OrdinalIgnoreCase)
                                          && (read.Column == "*" || string.Equals(r.Column, read.Column, StringComparison.OrdinalIgnoreCase))))
            .Select(read => $"{read.Table}.{read.Column}").Distinct().ToList();

        var plan = new List<(MaskType? Mask, MaskRule? Rule)>();
        var report = new List<ColumnMasking>();
        foreach (var col in result.Columns)
        {
            var rule = col.OriginTable is null || col.OriginColumn is null ? null : rules.FirstOrDefault(r => r.Matches(col.OriginTable, col.OriginColumn));
            if (rule is not null && !rule.IsVisibleTo(role))
            {
                plan.Add((rule.Type, rule));
                report.Add(new(col.Name, col.Origin, rule.Type, $"masked column {col.Origin}"));
            }
            else if (hiddenRead.Count > 0 && (col.Origin is null || !result.Analysis.OriginsTrusted))
            {
                plan.Add((MaskType.Redact, null));
                var why = col.Origin is null ? "computed from a statement that reads" : "the statement combines rows from several sources and reads";
                report.Add(new(col.Name, col.Origin, MaskType.Redact, $"{why} masked column(s) {string.Join(", ", hiddenRead)}"));
            }
            else
            {
                plan.Add((null, null));
                report.Add(new(col.Name, col.Origin, null, null));
            }
        }

        var rows = result.Rows.Select(row =>
        {
            var masked = new object?[row.Length];
            for (var i = 0; i < row.Length; i++)
                masked[i] = plan[i] switch
                {
                    (null, _) => row[i],
                    (MaskType.Redact, null) => Redacted,
                    (var m, var r) => Mask(m!.Value, r!, row[i]),
                };
            return masked;
        }).ToList();
        return new MaskedResult(result.Columns, rows, result.Truncated, report);
    }

    private object? Mask(MaskType type, MaskRule rule, object? value)
    {
        if (type == MaskType.Redact) return Redacted;
        if (value is null || type == MaskType.Null) return null;
        var text = value switch
        {
            byte[] b => Convert.ToBase64String(b),
            IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
            _ => value.ToString() ?? "",
        };
        return type switch
        {
            MaskType.Partial => Partial(text, rule.ShowFirst, rule.ShowLast),
            MaskType.Hash => "hmac:" + Convert.ToHexStringLower(HMACSHA256.HashData(hashKey, Encoding.UTF8.GetBytes(text)))[..32],
            MaskType.EmailDomain => text.LastIndexOf('@') is var at and > 0 && at < text.Length - 1 ? "***" + text[at..] : Redacted,
            _ => Redacted,
        };
    }

    /// <summary>Keeps at most half the value visible, so a short value is never shown whole.</summary>
    private static string Partial(string text, int first, int last)
    {
        var budget = text.Length / 2;
        first = Math.Min(first, budget);
        last = Math.Min(last, budget - first);
        return text[..first] + new string('*', text.Length - first - last) + text[(text.Length - last)..];
    }
}
