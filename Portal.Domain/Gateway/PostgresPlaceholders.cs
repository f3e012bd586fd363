using System.Text;

namespace Portal.Domain.Gateway;

/// <summary>
/// Rewrites <c>@name</c> placeholders to PostgreSQL's positional <c>$n</c>. Hand-written on purpose: Npgsql's own
/// named-parameter mode parses the SQL on the client and splits it at semicolons into several statements, which
/// would let a second statement run. With positional parameters Npgsql sends the text as-is and the server itself
/// refuses more than one command in a prepared statement. The lexer skips string literals (including E'' and
/// dollar-quoted), quoted identifiers and comments, so an '@' inside them is left alone.
/// </summary>
public static class PostgresPlaceholders
{
    /// <param name="PositionalUsed">The SQL itself contains a <c>$n</c> placeholder, which is not allowed: parameters are <c>@name</c>.</param>
    public sealed record Rewritten(string Sql, IReadOnlyList<string> Order, bool PositionalUsed);

    public static Rewritten Rewrite(string sql)
    {
        var sb = new StringBuilder(sql.Length);
        var order = new List<string>();
        var positional = false;
        var i = 0;
        while (i < sql.Length)
        {
            var c = sql[i];
            var start = i;
            if (c == '\'' ) { i = SkipQuoted(sql, i, '\'', backslashEscapes: i > 0 && (sql[i - 1] is 'E' or 'e') && !IsIdentChar(sql, i - 2)); }
            else if (c == '"') { i = SkipQuoted(sql, i, '"', backslashEscapes: false); }
            else if (c == '-' && At(sql, i + 1) == '-') { i = sql.IndexOf('\n', i) is var nl and >= 0 ? nl + 1 : sql.Length; }
            else if (c == '/' && At(sql, i + 1) == '*') { i = SkipBlockComment(sql, i); }
            else if (c == '$' && DollarTag(sql, i) is { } tag) { var end = sql.IndexOf(tag, i + tag.Length, StringComparison.Ordinal); i = end < 0 ? sql.Length : end + tag.Length; }
            else if (c == '$' && i + 1 < sql.Length && char.IsAsciiDigit(sql[i + 1]) && !IsIdentChar(sql, i - 1)) { positional = true; i++; }
            else if (c == '@' && i + 1 < sql.Length && (char.IsAsciiLetter(sql[i + 1]) || sql[i + 1] == '_') && !IsIdentChar(sql, i - 1))
            {
                var j = i + 1;
                while (j < sql.Length && IsIdentChar(sql, j)) j++;
                var name = sql[(i + 1)..j];
                var pos = order.IndexOf(name);
                if (pos < 0) { order.Add(name); pos = order.Count - 1; }
                sb.Append('$').Append(pos + 1);
                i = j;
                continue;
            }
            else i++;
            sb.Append(sql, start, i - start);
        }
        return new(sb.ToString(), order, positional);
    }

    private static char At(string s, int i) => i < s.Length ? s[i] : '\0';
    private static bool IsIdentChar(string s, int i) => i >= 0 && i < s.Length && (char.IsAsciiLetterOrDigit(s[i]) || s[i] == '_' || s[i] == '$');

    private static int SkipQuoted(string s, int i, char quote, bool backslashEscapes)
    {
        i++;
        while (i < s.Length)
        {
            if (backslashEscapes && s[i] == '\\') { i += 2; continue; }
            if (s[i] == quote)
            {
                if (At(s, i + 1) == quote) { i += 2; continue; }
                return i + 1;
            }
            i++;
        }
        return s.Length;
    }

    private static int SkipBlockComment(string s, int i)
    {
        var depth = 0;
        while (i < s.Length)
        {
            if (s[i] == '/' && At(s, i + 1) == '*') { depth++; i += 2; }
            else if (s[i] == '*' && At(s, i + 1) == '/') { depth--; i += 2; if (depth == 0) return i; }
            else i++;
        }
        return s.Length;
    }

    private static string? DollarTag(string s, int i)
    {
        if (IsIdentChar(s, i - 1)) return null;
        var j = i + 1;
        while (j < s.Length && (char.IsAsciiLetterOrDigit(s[j]) || s[j] == '_')) j++;
        if (j < s.Length && s[j] == '$' && !(j > i + 1 && char.IsAsciiDigit(s[i + 1]))) return s[i..(j + 1)];
        return null;
    }
}
