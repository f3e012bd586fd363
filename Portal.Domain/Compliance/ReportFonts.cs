using PdfSharp.Fonts;

namespace Portal.Domain.Compliance;

/// <summary>
/// PDFsharp finds no system fonts on Linux: this resolver serves the DejaVu TrueType files (Debian fonts-dejavu-core),
/// which cover Latin, Greek and Cyrillic text and the symbols the reports use (→, …, ✓). The font files are embedded
/// (as subsets) in every PDF, so the reports render the same everywhere and their text stays selectable.
/// </summary>
public sealed class ReportFonts : IFontResolver
{
    public const string Family = "DejaVu Sans";
    public const string Mono = "DejaVu Sans Mono";

    /// <summary>Where the TTFs are looked for; the first folder holding DejaVuSans.ttf wins.</summary>
    public static readonly string[] Folders =
    [
        "/usr/share/fonts/truetype/dejavu",
        "/usr/share/fonts/dejavu",
        "/usr/share/fonts/TTF",
        "/usr/local/share/fonts/dejavu",
    ];

    private static readonly Lock Gate = new();
    private readonly string folder;
    private readonly Dictionary<string, byte[]> cache = new();

    private ReportFonts(string folder) => this.folder = folder;

    /// <summary>Installs the resolver once per process (PDFsharp's font settings are global).</summary>
    public static void EnsureInstalled()
    {
        lock (Gate)
        {
            if (GlobalFontSettings.FontResolver is ReportFonts) return;
            // PDFsharp 6.5 (the only version on the feed) refuses to work until a license is chosen: it is dual-licensed
            // AGPL-3.0 / commercial. A commercial key, when the operator has one, comes from the environment; otherwise
            // the AGPL license is selected, which binds the portal's distribution terms (see README "Compliance reports").
            if (Environment.GetEnvironmentVariable("PORTAL_PDFSHARP_LICENSE") is { Length: > 0 } key) PdfSharp.PdfSharpLicense.LoadLicense(key);
            else PdfSharp.PdfSharpLicense.SetAgplLicense();
            var env = Environment.GetEnvironmentVariable("PORTAL_REPORT_FONTS");
            var found = (env is { Length: > 0 } ? [env, .. Folders] : Folders).FirstOrDefault(f => File.Exists(Path.Combine(f, "DejaVuSans.ttf")))
                ?? throw new DomainException(ErrorKind.Unavailable,
                    "Compliance reports need the DejaVu fonts (Debian package fonts-dejavu-core) in /usr/share/fonts/truetype/dejavu, or PORTAL_REPORT_FONTS naming their folder.");
            GlobalFontSettings.FontResolver = new ReportFonts(found);
        }
    }

    public FontResolverInfo? ResolveTypeface(string familyName, bool bold, bool italic)
    {
        var mono = familyName.Contains("Mono", StringComparison.OrdinalIgnoreCase);
        var face = (mono, bold, italic) switch
        {
            (true, true, _) => "DejaVuSansMono-Bold",
            (true, false, _) => "DejaVuSansMono",
            (false, true, true) => "DejaVuSans-BoldOblique",
            (false, true, false) => "DejaVuSans-Bold",
            (false, false, true) => "DejaVuSans-Oblique",
            _ => "DejaVuSans",
        };
        return new FontResolverInfo(face);
    }

    public byte[]? GetFont(string faceName)
    {
        lock (cache)
        {
            if (cache.TryGetValue(faceName, out var bytes)) return bytes;
            var path = Path.Combine(folder, faceName + ".ttf");
            bytes = File.Exists(path) ? File.ReadAllBytes(path) : File.ReadAllBytes(Path.Combine(folder, "DejaVuSans.ttf"));
            cache[faceName] = bytes;
            return bytes;
        }
    }
}
