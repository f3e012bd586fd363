using System.Security.Cryptography;
using Microsoft.Extensions.Configuration;
using Portal.Domain.Persistence;

namespace Portal.Domain.Gateway;

/// <summary>Where a gateway call came from; copied onto every audit event of the call.</summary>
public sealed record GatewayRequestContext(string? ClientIp, string? UserAgent, string? RequestId);

/// <summary>
/// Who walks the pipeline: an API key that passed authentication (the project it belongs to, the role it acts as and
/// its scopes), or a signed-in portal member running queries as themselves (<see cref="UserId"/> set; see
/// <see cref="ForMember"/>). Both take the same steps; only the identity in rate limits and audit events differs.
/// </summary>
public sealed record GatewayPrincipal(Guid ProjectId, Guid KeyId, string KeyPrefix, string KeyName, string Role, IReadOnlyList<string>? Scopes = null)
{
    /// <summary>The portal member, for a principal made by <see cref="ForMember"/>; null for an API key.</summary>
    public Guid? UserId { get; init; }
    public string? Email { get; init; }
    /// <summary>The key's own role when a "role:" scope narrows it to act as <see cref="Role"/>.</summary>
    public string? KeyRole { get; init; }

    public bool IsUser => UserId is not null;

    /// <summary>The key prefix as audited; a member has none.</summary>
    public string? AuditKeyPrefix => IsUser ? null : KeyPrefix;

    public static GatewayPrincipal ForMember(Guid projectId, Guid userId, string email, string role) =>
        new(projectId, Guid.Empty, "", email, role) { UserId = userId, Email = email };

    /// <summary>A key with "query:&lt;id&gt;" scopes may reach only those queries; a key without any reaches all its role may.</summary>
    public bool InScope(Guid queryId)
    {
        var queries = (Scopes ?? []).Where(s => s.StartsWith("query:", StringComparison.Ordinal)).ToList();
        return queries.Count == 0 || queries.Any(s => Guid.TryParse(s.AsSpan(6), out var id) && id == queryId);
    }
}

public enum GatewayDenialKind
{
    Unauthenticated, ModuleDisabled, Forbidden, NotFound, RateLimited, InvalidParameters, InjectionBlocked,
    DatasourceFailed, Timeout, AuditUnavailable, PayloadTooLarge,
}

/// <summary>Why the gateway refused a call. <see cref="Errors"/> name the bad fields; the message is safe to return.</summary>
public sealed record GatewayDenial(GatewayDenialKind Kind, string Title, IReadOnlyList<FieldError> Errors, TimeSpan? RetryAfter = null, Guid? EventId = null)
{
    public int StatusCode => Kind switch
    {
        GatewayDenialKind.Unauthenticated => 401,
        GatewayDenialKind.ModuleDisabled or GatewayDenialKind.Forbidden => 403,
        GatewayDenialKind.NotFound => 404,
        GatewayDenialKind.PayloadTooLarge => 413,
        GatewayDenialKind.RateLimited => 429,
        GatewayDenialKind.InvalidParameters or GatewayDenialKind.InjectionBlocked => 400,
        GatewayDenialKind.DatasourceFailed => 502,
        GatewayDenialKind.Timeout => 504,
        GatewayDenialKind.AuditUnavailable => 503,
        _ => 500,
    };

    public int? RetryAfterSeconds => RetryAfter is { } r ? Math.Max(1, (int)Math.Ceiling(r.TotalSeconds)) : null;
}

/// <summary>Either a value or the denial that stopped the call.</summary>
public sealed record GatewayOutcome<T>(T? Value, GatewayDenial? Denial) where T : class
{
    public bool Succeeded => Denial is null;
    public static GatewayOutcome<T> Ok(T value) => new(value, null);
    public static GatewayOutcome<T> Deny(GatewayDenial denial) => new(null, denial);
}

public sealed record GatewayQuerySummary(Guid Id, string Name, string Description, int Version, IReadOnlyList<QueryParameter> Parameters, IReadOnlyList<string> Classifications, int RowCap);

public sealed record GatewayColumn(string Name, bool Masked, string? Mask);

public sealed record GatewayResult(
    Guid QueryId, int Version, IReadOnlyList<GatewayColumn> Columns, IReadOnlyList<object?[]> Rows, bool Truncated, long DurationMs, Guid EventId);

/// <summary>Gateway settings read once at start.</summary>
public sealed class GatewayOptions
{
    public const string Section = "Gateway";

    /// <summary>HMAC key for hash masks; stable so hashed values can still be joined across queries.</summary>
    public required byte[] MaskingHashKey { get; init; }

    /// <summary>
    /// What to do with a value that looks like an injection attempt, for projects that have not chosen on the Access
    /// page (<see cref="Access.GatewaySettingsService"/>): "Gateway:InjectionScreening", default block (fail closed).
    /// </summary>
    public InjectionScreeningMode InjectionScreening { get; init; } = InjectionScreeningMode.Block;

    /// <summary>
    /// Reads "Gateway:MaskingHashKey" (base64, at least 16 bytes); without it a key is generated once into the data
    /// directory, as the encryption keys are, so hashes stay stable across restarts of a single-node install.
    /// </summary>
    public static GatewayOptions FromConfiguration(IConfiguration configuration, DatabaseOptions db)
    {
        var spec = configuration[$"{Section}:MaskingHashKey"];
        if (string.IsNullOrWhiteSpace(spec))
        {
            Directory.CreateDirectory(db.DataDirectory);
            var file = Path.Combine(db.DataDirectory, "masking.key");
            if (!File.Exists(file))
            {
                File.WriteAllText(file, Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)));
                if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }
            spec = File.ReadAllText(file).Trim();
        }
        byte[] key;
        try { key = Convert.FromBase64String(spec); }
        catch (FormatException) { throw new ConfigurationException($"{Section}:MaskingHashKey is not valid base64."); }
        if (key.Length < 16) throw new ConfigurationException($"{Section}:MaskingHashKey must be at least 16 bytes.");

        var modeText = configuration[$"{Section}:InjectionScreening"];
        var mode = InjectionScreeningMode.Block;
        if (!string.IsNullOrWhiteSpace(modeText) && !Enum.TryParse(modeText, ignoreCase: true, out mode))
            throw new ConfigurationException($"{Section}:InjectionScreening must be 'block' or 'flag'.");
        return new GatewayOptions { MaskingHashKey = key, InjectionScreening = mode };
    }
}

/// <summary>An audited gateway event worth a second look: every denial, and successes flagged above normal (e.g. injection in flag mode).</summary>
public sealed record GatewayAuditedEvent(Audit.AuditEventDraft Draft, GatewayDenial? Denial, Audit.AuditReceipt Receipt);

/// <summary>
/// Called after a gateway event is durable in the audit trail, in the request's path (the security module raises
/// real-time alerts here). Register implementations in DI; they must be quick and must not throw for ordinary input.
/// </summary>
public interface IGatewayEventListener
{
    ValueTask OnAuditedAsync(GatewayAuditedEvent e, CancellationToken ct);
}
