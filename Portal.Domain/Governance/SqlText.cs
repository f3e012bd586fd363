namespace Portal.Domain.Governance;

public enum SqlTokenKind { Keyword, Identifier, QuotedIdentifier, String, Number, Parameter, Comment, Operator, Punctuation, Whitespace }

public readonly record struct SqlToken(SqlTokenKind Kind, string Text);

/// <summary>
/// A small hand-written SQL tokenizer. It serves two purposes only: colouring SQL on the review and history pages
/// (pages render each token as an encoded text span, never markup) and spotting review risks (SELECT *, no WHERE,
/// CROSS JOIN). It never decides what is safe to run: the datasource engine does (single read-only statement).
/// </summary>
public static class SqlText
{
    private static readonly HashSet<string> Keywords = new(StringComparer.OrdinalIgnoreCase)
    {
        "select", "from", "where", "and", "or", "not", "in", "is", "null", "as", "on", "join", "inner", "left", "right", "full",
        "outer", "cross", "natural", "using", "group", "by", "order", "having", "limit", "offset", "fetch", "first", "next", "rows",
        "only", "union", "all", "except", "intersect", "distinct", "case", "when", "then", "else", "end", "between", "like",
        "ilike", "exists", "with", "recursive", "asc", "desc", "nulls", "last", "insert", "update", "delete", "into", "values",
        "set", "create", "drop", "alter", "table", "view", "index", "true", "false", "cast", "over", "partition", "window",
        "lateral", "returning", "grant", "revoke", "truncate", "escape", "collate", "filter", "glob", "regexp", "top",
    };

    public static IReadOnlyList<SqlToken> Tokenize(string? sql)
    {
        var tokens = new List<SqlToken>();
        if (string.IsNullOrEmpty(sql)) return tokens;
        var i = 0;
        while (i < sql.Length)
        {
            var c = sql[i];
            var start = i;
            SqlTokenKind kind;
            if (char.IsWhiteSpace(c))
            {
                while (i < sql.Length && char.IsWhiteSpace(sql[i])) i++;
                kind = SqlTokenKind.Whitespace;
            }
            else if (c == '-' && At(sql, i + 1) == '-')
            {
                while (i < sql.Length && sql[i] != '\n') i++;
                kind = SqlTokenKind.Comment;
            }
            else if (c == '/' && At(sql, i + 1) == '*')
            {
                var close = sql.IndexOf("*/", i + 2, StringComparison.Ordinal);
                i = close < 0 ? sql.Length : close + 2;
                kind = SqlTokenKind.Comment;
            }
            else if (c is '\'' or '"' or '`' or '[')
            {
                var end = c == '[' ? ']' : c;
                i++;
                while (i < sql.Length)
                {
                    if (sql[i] == end)
                    {
                        if (end != ']' && At(sql, i + 1) == end) { i += 2; continue; }
                        i++;
                        break;
                    }
                    i++;
                }
                kind = c == '\'' ? SqlTokenKind.String : SqlTokenKind.QuotedIdentifier;
            }
            else if (char.IsAsciiDigit(c))
            {
                while (i < sql.Length && (char.IsAsciiDigit(sql[i]) || sql[i] == '.')) i++;
                kind = SqlTokenKind.Number;
            }
            else if (c is '@' or ':' or '$' && i + 1 < sql.Length && (char.IsAsciiLetter(sql[i + 1]) || sql[i + 1] == '_' || (c == '$' && char.IsAsciiDigit(sql[i + 1]))))
            {
                i++;
                while (i < sql.Length && (char.IsAsciiLetterOrDigit(sql[i]) || sql[i] == '_')) i++;
                kind = SqlTokenKind.Parameter;
            }
            else if (char.IsLetter(c) || c == '_')
            {
                while (i < sql.Length && (char.IsLetterOrDigit(sql[i]) || sql[i] is '_' or '$')) i++;
                kind = Keywords.Contains(sql[start..i]) ? SqlTokenKind.Keyword : SqlTokenKind.Identifier;
            }
            else if (c is '(' or ')' or ',' or ';' or '.')
            {
                i++;
                kind = SqlTokenKind.Punctuation;
            }
            else
            {
                i++;
                kind = SqlTokenKind.Operator;
            }
            tokens.Add(new SqlToken(kind, sql[start..i]));
        }
        return tokens;
    }

    private static char At(string s, int i) => i < s.Length ? s[i] : '\0';

    /// <summary>Tokens that carry meaning (no whitespace or comments).</summary>
    public static List<SqlToken> Significant(string sql) =>
        Tokenize(sql).Where(t => t.Kind is not SqlTokenKind.Whitespace and not SqlTokenKind.Comment).ToList();

    private static bool Is(SqlToken t, string keyword) => t.Kind == SqlTokenKind.Keyword && string.Equals(t.Text, keyword, StringComparison.OrdinalIgnoreCase);

    /// <summary>A * that selects all columns (SELECT *, t.*), not count(*) or a multiplication.</summary>
    public static bool SelectsStar(IReadOnlyList<SqlToken> tokens)
    {
        for (var i = 1; i < tokens.Count; i++)
        {
            if (tokens[i].Text != "*") continue;
            var prev = tokens[i - 1];
            if (Is(prev, "select") || Is(prev, "distinct") || Is(prev, "all") || prev.Text is "," or ".") return true;
        }
        return false;
    }

    public static bool HasKeyword(IReadOnlyList<SqlToken> tokens, string keyword) => tokens.Any(t => Is(t, keyword));

    public static bool HasCrossJoin(IReadOnlyList<SqlToken> tokens)
    {
        for (var i = 0; i + 1 < tokens.Count; i++)
            if (Is(tokens[i], "cross") && Is(tokens[i + 1], "join")) return true;
        return false;
    }

    /// <summary>Rows are limited somehow: a WHERE, a LIMIT/FETCH/TOP, or only aggregates with no GROUP BY are left to the reviewer.</summary>
    public static bool HasRowFilter(IReadOnlyList<SqlToken> tokens) =>
        HasKeyword(tokens, "where") || HasKeyword(tokens, "limit") || HasKeyword(tokens, "fetch") || HasKeyword(tokens, "top");

    /// <summary>A line diff (longest common subsequence) for the side-by-side views; fine for queries of a few hundred lines.</summary>
    public static IReadOnlyList<DiffLine> Diff(string? left, string? right)
    {
        var a = (left ?? "").Replace("\r\n", "\n").Split('\n');
        var b = (right ?? "").Replace("\r\n", "\n").Split('\n');
        // Very long texts (64 KB of one-line SQL) keep the cost bounded: beyond this, show both whole as changed.
        if ((long)a.Length * b.Length > 4_000_000)
            return [.. a.Select(l => new DiffLine(DiffKind.Removed, l, null)), .. b.Select(l => new DiffLine(DiffKind.Added, null, l))];
        var lcs = new int[a.Length + 1, b.Length + 1];
        for (var i = a.Length - 1; i >= 0; i--)
            for (var j = b.Length - 1; j >= 0; j--)
                lcs[i, j] = a[i] == b[j] ? lcs[i + 1, j + 1] + 1 : Math.Max(lcs[i + 1, j], lcs[i, j + 1]);
        var result = new List<DiffLine>();
        int x = 0, y = 0;
        while (x < a.Length && y < b.Length)
        {
            if (a[x] == b[y]) { result.Add(new(DiffKind.Same, a[x], b[y])); x++; y++; }
            else if (lcs[x + 1, y] >= lcs[x, y + 1]) { result.Add(new(DiffKind.Removed, a[x], null)); x++; }
            else { result.Add(new(DiffKind.Added, null, b[y])); y++; }
        }
        while (x < a.Length) result.Add(new(DiffKind.Removed, a[x++], null));
        while (y < b.Length) result.Add(new(DiffKind.Added, null, b[y++]));
        return result;
    }
}

public enum DiffKind { Same, Removed, Added }

public sealed record DiffLine(DiffKind Kind, string? Left, string? Right);
