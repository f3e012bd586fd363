using System.Net;
using System.Text.RegularExpressions;

namespace Portal.Domain.Gateway;

/// <summary>What the gateway does with a parameter value that looks like an injection attempt (a project setting).</summary>
public enum InjectionScreeningMode { Block, Flag }

public sealed record ScreeningResult(bool Suspicious, string? Rule, string? Reason)
{
    public static readonly ScreeningResult Clean = new(false, null, null);
}

public sealed record ScreeningFinding(string Field, string Rule, string Reason);

/// <summary>
/// Flags parameter values that look like SQL injection. Values are always bound, so this is not a defence against
/// injection itself: a value shaped like an attack is evidence of an attacker probing the gateway, which the
/// pipeline blocks or flags and records. Rules want SQL structure around the keyword (a quote that closes a literal,
/// a statement after a semicolon, a call with parentheses), so ordinary text such as O'Brien, "DROP-OFF LOCATION"
/// or "Select Comfort Corp" passes. No available package screens values this way, hence the hand-written rules.
/// </summary>
public static class InjectionScreener
{
    private const RegexOptions Opts = RegexOptions.IgnoreCase | RegexOptions.CultureInvariant | RegexOptions.Singleline;
    private static readonly TimeSpan Budget = TimeSpan.FromMilliseconds(50);

    private static Regex R(string pattern) => new(pattern, Opts, Budget);

    // Quote or bracket that closes the value's literal: a quote right after a word/digit/paren, or at the very start.
    private const string Break = @"(?:(?:^|[\w)\]])\s*['""`]|^\s*\)|['""]\s*\))";

    private static readonly (string Rule, string Reason, Regex Pattern)[] Rules =
    [
        ("tautology", "closes a quoted literal and adds an always-true/false condition",
            R(Break + @"\s*\)*\s*(?:or|and|xor|\|\||&&)\b?\s*\(*\s*(?:['""]?[\w.]*['""]?\s*(?:=|<>|!=|<=?|>=?|\blike\b|\bis\b|\bin\b|\bbetween\b|\bregexp\b|\brlike\b)|true\b|false\b|not\b|\d+\b|['""]['""]|\(?\s*select\b|exists\b|sleep\b|substr|ascii|length|char\b|ord\b|mid\b)")),
        ("tautology", "compares two constants to make a condition always true or false",
            R(@"^\s*['""]\s*=\s*['""]|(?:^|\s|\))(?:or|and|xor|\|\||&&)\s*\(*\s*(?:(?<n>\d+)\s*(?:=|<>|!=|>|<)\s*\d+|\(\s*\d+\s*\)\s*=\s*\(\s*\d+\s*\)|(?<q>['""])(?<s>\w*)\k<q>\s*(?:=|<>|!=|like)\s*['""]|true\b|false\b)")),
        ("comment-terminator", "closes a quoted literal and comments out the rest of the statement",
            R(Break + @"\s*\)*\s*(?:--|#|/\*|;\s*%00|%00)")),
        ("comment-terminator", "ends with a SQL comment after an expression",
            R(@"(?:\b(?:or|and)\b.*|\d\s*\)*|\))\s*(?:--\s*[-+a-z]?\s*$|#\s*$|/\*\s*$)")),
        ("stacked-query", "a semicolon followed by a second SQL statement",
            R(@";\s*(?:drop|truncate|alter|create)\s+(?:table|database|schema|user|login|view|function|procedure|proc|index|role|trigger)\b|;\s*(?:delete\s+from|insert\s+into|update\s+[\w.\[\]""]+\s+set\b|select\b[\s\S]*?\bfrom\b|select\s+(?:\d|@@|pg_|sleep|version|user|current_|database|null|\*)|exec(?:ute)?\s+[\w@]|shutdown\b|declare\s+@|waitfor\s+delay|copy\s+[\w.]+\s+(?:from|to)\b|grant\s+\w+|revoke\s+\w+|attach\s+database|pragma\s+\w|set\s+@|begin\b|end\b\s*(?:--|;|$)|if\s*\()")),
        ("union-select", "UNION SELECT that appends attacker-chosen rows",
            R(@"\bunion\b(?:\s+(?:all|distinct))?[\s(]*select\s*(?:\(|\*|null\b|\d|@@|'|""|0x|\w+\s*(?:,|\bfrom\b|\(|\|\||--|#)|\w+\s*\)|[\w.]+\s*--)")),
        ("time-delay", "calls a delay function used for blind injection",
            R(@"\b(?:pg_sleep|sleep|benchmark|pg_sleep_for)\s*\(\s*[\d'""(]|waitfor\s+(?:delay|time)\s+['""]|dbms_(?:pipe\.receive_message|lock\.sleep)\s*\(|randomblob\s*\(\s*\d{6,}")),
        ("system-objects", "probes database catalogs or system procedures",
            R(@"\b(?:xp_cmdshell|xp_regread|xp_dirtree|sp_executesql|sp_oacreate|sp_makewebtask|sp_password|sp_addlogin|openrowset|opendatasource)\b|\binformation_schema\s*\.|\b(?:sysobjects|syscolumns|sysdatabases|sysusers|pg_shadow|pg_authid|pg_user|sqlite_master|sqlite_schema|sqlite_temp_master|all_tables|user_tables|dba_users)\b|\bmysql\s*\.\s*user\b|\bsys\s*\.\s*(?:tables|objects|columns|databases|sql_logins|user_summary)\b|\bpg_catalog\s*\.|@@(?:version|datadir|hostname|basedir|servername)\b|\b(?:load_file|lo_import|lo_export|load_extension|pg_read_file|pg_ls_dir|utl_http\.request|utl_inaddr\.get_host_address|dbms_xmlgen|extractvalue|updatexml|sqlite_version|version)\s*\(|\binto\s+(?:out|dump)file\b|\bcopy\s+\(?.*\bto\s+program\b")),
        ("encoding", "hides SQL in character-code or hex encodings",
            R(@"\b(?:char|chr|nchar)\s*\(\s*\d{2,3}\s*(?:[,)]|\|\|)|\b(?:unhex|hex|ascii|ord|conv)\s*\(\s*(?:substr|mid|\(|select|@@|user|database|version)|(?:=|\s|\(|,)0x[0-9a-f]{6,}\b.*|\bcast\s*\([^)]*\bas\s+(?:int|integer|numeric|varchar|char|text)\b\s*\)|\bconvert\s*\(\s*(?:int|varchar)\s*,")),
        ("inline-comment", "uses inline comments to split SQL keywords",
            R(@"/\*!?\d*\s*(?:union|select|and|or|from|where)\b|\w/\*.*?\*/\w|(?:union|select|and|or|from|where)/\*.*?\*/")),
        ("boolean-blind", "adds a sub-select or string probe to a condition",
            R(@"\b(?:and|or)\s+\(?\s*(?:select\s+\w|\(\s*select\b|exists\s*\(|substring\s*\(|substr\s*\(|ascii\s*\(|length\s*\(|len\s*\(|mid\s*\(|if\s*\(|case\s+when\b)")),
        ("quote-keyword", "closes a quoted literal and continues with SQL",
            R(@"(?:^\s*|[\w)])['""]\s*\)*\s*(?:;|\|\||\+\s*\(|\b(?:union|select|insert|update|delete|drop|exec|execute|having|group\s+by|order\s+by|procedure\s+analyse|into|where|limit|offset)\b)")),
        ("order-by-probe", "column-count probe with ORDER BY/GROUP BY",
            R(@"\b(?:order|group)\s+by\s+\d+\s*(?:--|#|/\*|;|$)")),
    ];

    public static ScreeningResult Screen(string? value)
    {
        if (string.IsNullOrWhiteSpace(value)) return ScreeningResult.Clean;
        foreach (var candidate in Decodings(value))
        {
            foreach (var (rule, reason, pattern) in Rules)
            {
                try
                {
                    if (pattern.IsMatch(candidate)) return new(true, rule, reason);
                }
                catch (RegexMatchTimeoutException)
                {
                    // A value built to make the screener slow is itself suspicious.
                    return new(true, "screening-timeout", "the value is too complex to screen in time");
                }
            }
        }
        return ScreeningResult.Clean;
    }

    /// <summary>Screens every string value; typed values (numbers, dates, booleans) cannot carry SQL.</summary>
    public static IReadOnlyList<ScreeningFinding> ScreenAll(IEnumerable<TypedParameter> parameters) =>
        parameters.Where(p => p.Value is string)
            .Select(p => (p, r: Screen((string)p.Value!)))
            .Where(x => x.r.Suspicious)
            .Select(x => new ScreeningFinding($"parameters.{x.p.Name}", x.r.Rule!, x.r.Reason!))
            .ToList();

    private static IEnumerable<string> Decodings(string value)
    {
        yield return value;
        // Attack tools send URL- and HTML-encoded payloads in the hope that something downstream decodes them.
        string decoded;
        try { decoded = WebUtility.HtmlDecode(Uri.UnescapeDataString(value.Replace('+', ' '))); }
        catch (UriFormatException) { yield break; }
        if (decoded != value) yield return decoded;
    }
}
