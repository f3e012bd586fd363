using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Portal.Domain.Tenancy;

namespace Portal.Domain.Security.ApiKeys;

/// <summary>
/// The key format: "gpk_" + 8-character prefix + "_" + 40 random characters, all base62. The prefix finds the row;
/// only the SHA-256 of the whole string is stored. 40 base62 characters carry ~238 bits, so a fast hash is enough
/// (no password-style stretching is needed for a secret nobody can guess).
/// </summary>
public static class ApiKeySecret
{
    public const string Marker = "gpk_";
    public const int PrefixLength = 8;
    public const int RandomLength = 40;
    public const int TotalLength = 4 + PrefixLength + 1 + RandomLength;
    private const string Base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    public static string NewPrefix() => RandomBase62(PrefixLength);

    public static string Compose(string prefix) => $"{Marker}{prefix}_{RandomBase62(RandomLength)}";

    public static string Hash(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));

    /// <summary>Checks the shape only; says nothing about whether the key exists.</summary>
    public static bool TryParsePrefix(string? presented, out string prefix)
    {
        prefix = "";
        if (presented is null || presented.Length != TotalLength || !presented.StartsWith(Marker, StringComparison.Ordinal)
            || presented[Marker.Length + PrefixLength] != '_') return false;
        for (var i = Marker.Length; i < presented.Length; i++)
        {
            if (i == Marker.Length + PrefixLength) continue;
            if (!char.IsAsciiLetterOrDigit(presented[i])) return false;
        }
        prefix = presented.Substring(Marker.Length, PrefixLength);
        return true;
    }

    private static string RandomBase62(int length) => RandomNumberGenerator.GetString(Base62, length);
}

/// <summary>Which key roles a member may mint, and how scopes are written.</summary>
public static class ApiKeyRules
{
    public static readonly TimeSpan DefaultLifetime = TimeSpan.FromDays(90);
    public static readonly TimeSpan MaxLifetime = TimeSpan.FromDays(365);
    public static readonly TimeSpan MaxOverlap = TimeSpan.FromDays(7);
    public static readonly TimeSpan ExpiringSoon = TimeSpan.FromDays(14);
    /// <summary>last_used_at is written at most this often per key, so a busy key does not cost a write per request.</summary>
    public static readonly TimeSpan LastUsedResolution = TimeSpan.FromMinutes(1);
    public const int MaxScopes = 50;
    /// <summary>The scope an API key needs to submit suggestions through /api/v1/suggestions.</summary>
    public const string SuggestScope = "suggest";
    public const int MaxScopeLength = 100;

    private static int Rank(string role) => role switch { Roles.Admin => 3, Roles.Data => 2, Roles.User => 1, _ => 0 };

    /// <summary>
    /// Admins mint any role. Otherwise a key may not act above its creator on the admin &gt; data &gt; user ladder, and
    /// compliance/security keys (off the ladder) are for admins only. Security staff, who manage keys to contain
    /// incidents, therefore revoke keys but mint none.
    /// </summary>
    public static bool CanMint(string? actorRole, string? keyRole)
    {
        if (!Roles.IsValid(actorRole) || !Roles.IsValid(keyRole)) return false;
        if (actorRole == Roles.Admin) return true;
        return Rank(keyRole!) > 0 && Rank(actorRole!) >= Rank(keyRole!);
    }

    public static IReadOnlyList<string> MintableRoles(string? actorRole) => Roles.All.Where(r => CanMint(actorRole, r)).ToList();

    /// <summary>
    /// Turns user input into canonical scopes: "role:data" or a bare role name becomes "role:data"; anything else is
    /// a query id ("query:" prefix optional); "suggest" lets the key submit suggestions. A role scope may not exceed the
    /// key's own role, and a key has at most one: it narrows the key to act as that role (see <see cref="ActingRole"/>).
    /// </summary>
    public static IReadOnlyList<string> NormalizeScopes(IEnumerable<string?>? raw, string keyRole)
    {
        var result = new List<string>();
        foreach (var item in raw ?? [])
        {
            var s = item?.Trim();
            if (string.IsNullOrEmpty(s)) continue;
            string canonical;
            if (string.Equals(s, SuggestScope, StringComparison.OrdinalIgnoreCase))
            {
                // Lets an agent submit suggested queries (governance); only a role that may suggest can carry it.
                if (!Permissions.RoleHas(keyRole, Permissions.SuggestionsSubmit))
                    throw DomainException.Invalid("scopes", $"A key acting as {keyRole} cannot have the '{SuggestScope}' scope: the role may not suggest queries.");
                canonical = SuggestScope;
            }
            else if (s.StartsWith("role:", StringComparison.OrdinalIgnoreCase) || Roles.IsValid(s.ToLowerInvariant()))
            {
                var role = (s.StartsWith("role:", StringComparison.OrdinalIgnoreCase) ? s[5..] : s).Trim().ToLowerInvariant();
                if (!Roles.IsValid(role)) throw DomainException.Invalid("scopes", $"'{Short(s)}' is not a role; roles are {string.Join(", ", Roles.All)}.");
                if (role != keyRole && !CanMint(keyRole, role))
                    throw DomainException.Invalid("scopes", $"A key acting as {keyRole} cannot be scoped to role {role}.");
                canonical = "role:" + role;
            }
            else
            {
                var id = s.StartsWith("query:", StringComparison.OrdinalIgnoreCase) ? s[6..].Trim() : s;
                if (id.Length == 0 || id.Length > MaxScopeLength || !id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
                    throw DomainException.Invalid("scopes", $"'{Short(s)}' is not a query id (letters, digits, '-', '_' and '.', up to {MaxScopeLength}).");
                canonical = "query:" + id;
            }
            if (!result.Contains(canonical)) result.Add(canonical);
        }
        if (result.Count > MaxScopes) throw DomainException.Invalid("scopes", $"A key can have at most {MaxScopes} scopes.");
        if (result.Count(s => s.StartsWith("role:", StringComparison.Ordinal)) > 1)
            throw DomainException.Invalid("scopes", "A key acts as one role: give at most one role scope.");
        return result;
    }

    /// <summary>
    /// The role a key acts as in the pipeline: its own role, or the role named by its "role:" scope, which narrows it
    /// (query permissions, per-role rate limits and column masks are those of the scoped role). A scope the key's role
    /// could not have been given (stored before a rule change) or several role scopes fail closed to the least
    /// privileged role, user.
    /// </summary>
    public static string ActingRole(string keyRole, IReadOnlyList<string>? scopes)
    {
        var roles = (scopes ?? []).Where(s => s.StartsWith("role:", StringComparison.Ordinal)).Select(s => s[5..]).Distinct().ToList();
        if (roles.Count == 0) return keyRole;
        if (roles.Count == 1 && (roles[0] == keyRole || CanMint(keyRole, roles[0]))) return roles[0];
        return Roles.User;
    }

    public static string ToJson(IReadOnlyList<string> scopes) => JsonSerializer.Serialize(scopes);

    public static IReadOnlyList<string> FromJson(string? json) =>
        string.IsNullOrWhiteSpace(json) ? [] : JsonSerializer.Deserialize<List<string>>(json) ?? [];

    private static string Short(string s) => s.Length <= 40 ? s : s[..40] + "…";
}
