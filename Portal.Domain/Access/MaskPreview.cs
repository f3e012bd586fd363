using Portal.Domain.Gateway;
using Portal.Domain.Tenancy;

namespace Portal.Domain.Access;

/// <summary>How one sample value would leave the gateway for one role under a mask being edited.</summary>
public sealed record MaskPreviewRow(string Role, string? Shown, bool Masked);

/// <summary>
/// The live preview on the Access page: runs a sample value through the same <see cref="MaskingEngine"/> (and hash
/// key) the gateway uses, as if a query had read it from the mask's column, once per role.
/// </summary>
public sealed class MaskPreview(GatewayOptions options)
{
    public const int MaxSampleLength = 500;

    public IReadOnlyList<MaskPreviewRow> Preview(MaskType type, int showFirst, int showLast, IReadOnlyList<string>? visibleToRoles, string? sample)
    {
        var value = sample is { Length: > MaxSampleLength } ? sample[..MaxSampleLength] : sample;
        // Bounds as the mask service enforces them, so a half-typed form still previews something sensible.
        var rule = new MaskRule("t", "c", Enum.IsDefined(type) ? type : MaskType.Redact, visibleToRoles ?? [],
            Math.Clamp(showFirst, 0, ColumnMaskService.MaxShown), Math.Clamp(showLast, 0, ColumnMaskService.MaxShown));
        var engine = new MaskingEngine([rule], options.MaskingHashKey);
        var result = new QueryResult([new ResultColumn("c", "t", "c")], [[value]], false, TimeSpan.Zero,
            new StatementAnalysis(["t"], [new ColumnRead("t", "c")], true, []));
        return Roles.All.Select(role =>
        {
            var masked = engine.Apply(result, role);
            return new MaskPreviewRow(role, masked.Rows[0][0]?.ToString(), masked.Masking[0].Mask is not null);
        }).ToList();
    }
}
