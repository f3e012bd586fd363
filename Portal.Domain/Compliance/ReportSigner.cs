using System.Security.Cryptography;
using System.Security.Cryptography.Pkcs;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using PdfSharp.Pdf;
using PdfSharp.Pdf.Signatures;
using Portal.Domain.Persistence;
using Portal.Domain.Security;

namespace Portal.Domain.Compliance;

/// <summary>The outcome of checking a report PDF.</summary>
public sealed record SignatureCheck(bool Valid, string Message, string? SignerSubject = null, string? SignerThumbprint = null, bool SignedByPortal = false);

/// <summary>
/// The portal's report-signing certificate and PDF signatures. By default a self-signed certificate is generated once
/// (RSA 3072, 5 years) and stored in report_signing_certificates as PKCS#12 encrypted with <see cref="SecretProtector"/>;
/// an operator can instead point Reports:SigningCertificatePath at a PFX issued by their CA, with its password in
/// Reports:SigningCertificatePassword supplied from the environment or a secret store (never appsettings.json).
/// </summary>
public sealed class ReportSigner(IDbContextFactory<PortalDbContext> dbFactory, SecretProtector protector, TimeProvider clock, IConfiguration configuration)
{
    public const string Purpose = "report-signing-certificate";
    private readonly SemaphoreSlim gate = new(1, 1);
    private X509Certificate2? cached;

    public async Task<X509Certificate2> CertificateAsync(CancellationToken ct = default)
    {
        if (cached is not null) return cached;
        await gate.WaitAsync(ct);
        try
        {
            return cached ??= await LoadAsync(ct);
        }
        finally { gate.Release(); }
    }

    private async Task<X509Certificate2> LoadAsync(CancellationToken ct)
    {
        if (configuration["Reports:SigningCertificatePath"] is { Length: > 0 } path)
        {
            if (!File.Exists(path)) throw new ConfigurationException($"Reports:SigningCertificatePath: no file at '{path}'.");
            try
            {
                var cert = X509CertificateLoader.LoadPkcs12FromFile(path, configuration["Reports:SigningCertificatePassword"], X509KeyStorageFlags.EphemeralKeySet);
                if (!cert.HasPrivateKey) throw new ConfigurationException("Reports:SigningCertificatePath: the certificate has no private key.");
                return cert;
            }
            catch (CryptographicException e)
            {
                throw new ConfigurationException($"Reports:SigningCertificatePath: cannot open the certificate ({e.Message}); check Reports:SigningCertificatePassword.", e);
            }
        }
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var row = await db.ReportSigningCertificates.AsNoTracking().OrderBy(c => c.CreatedAt).ThenBy(c => c.Id).FirstOrDefaultAsync(ct);
        if (row is null)
        {
            var now = clock.GetUtcNow();
            using var rsa = RSA.Create(3072);
            var org = await db.Organizations.AsNoTracking().OrderBy(o => o.CreatedAt).Select(o => o.Name).FirstOrDefaultAsync(ct) ?? "Governance Portal";
            var name = new X500DistinguishedNameBuilder();
            name.AddCommonName("Governance Portal report signing");
            name.AddOrganizationName(org.Length > 64 ? org[..64] : org);
            var request = new CertificateRequest(name.Build(), rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
            request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.NonRepudiation, true));
            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.4.1.311.10.3.12", "Document Signing")], false));
            request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
            using var generated = request.CreateSelfSigned(now.AddMinutes(-5), now.AddYears(5));
            var pfx = generated.Export(X509ContentType.Pkcs12);
            db.ReportSigningCertificates.Add(new ReportSigningCertificate
            {
                Subject = generated.Subject, Thumbprint = generated.GetCertHashString(HashAlgorithmName.SHA256),
                NotBefore = generated.NotBefore.ToUniversalTime(), NotAfter = generated.NotAfter.ToUniversalTime(),
                PfxProtected = protector.Protect(Convert.ToBase64String(pfx), Purpose), CreatedAt = now,
            });
            await db.SaveChangesAsync(ct);
            // Two processes may have generated one each at the same moment: everyone uses the oldest.
            row = await db.ReportSigningCertificates.AsNoTracking().OrderBy(c => c.CreatedAt).ThenBy(c => c.Id).FirstAsync(ct);
        }
        return X509CertificateLoader.LoadPkcs12(Convert.FromBase64String(protector.Unprotect(row.PfxProtected, Purpose)), null, X509KeyStorageFlags.EphemeralKeySet);
    }

    public static string Thumbprint(X509Certificate2 cert) => cert.GetCertHashString(HashAlgorithmName.SHA256);

    /// <summary>Saves the document with an embedded PKCS#7 (detached CMS, SHA-256) signature covering the whole file.</summary>
    public async Task<byte[]> SaveSignedAsync(PdfDocument document, Guid reportId, CancellationToken ct = default)
    {
        var cert = await CertificateAsync(ct);
        DigitalSignatureHandler.ForDocument(document, new PdfSharpDefaultSigner(cert, PdfMessageDigestType.SHA256, null), new DigitalSignatureOptions
        {
            ContactInfo = "Governance Portal",
            Location = "Governance Portal",
            Reason = $"Compliance report {reportId}",
            AppName = "Governance Portal",
        });
        using var ms = new MemoryStream();
        await document.SaveAsync(ms, false);
        return ms.ToArray();
    }

    /// <summary>Thumbprints (SHA-256) of the certificates this portal signs with or has signed with.</summary>
    public async Task<HashSet<string>> KnownThumbprintsAsync(CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var set = (await db.ReportSigningCertificates.AsNoTracking().Select(c => c.Thumbprint).ToListAsync(ct)).ToHashSet(StringComparer.OrdinalIgnoreCase);
        set.Add(Thumbprint(await CertificateAsync(ct)));
        return set;
    }

    /// <summary>
    /// Checks the last signature of a PDF: its byte range must cover the whole file except the signature itself, and the
    /// CMS signature must verify over exactly those bytes. Any edited byte fails one of the two.
    /// </summary>
    public static SignatureCheck Verify(ReadOnlySpan<byte> pdf, ICollection<string>? portalThumbprints = null)
    {
        var text = Encoding.Latin1.GetString(pdf);
        var at = text.LastIndexOf("/ByteRange", StringComparison.Ordinal);
        if (at < 0) return new(false, "The file carries no digital signature.");
        var open = text.IndexOf('[', at);
        var close = text.IndexOf(']', open + 1);
        if (open < 0 || close < 0) return new(false, "The signature's byte range is malformed.");
        var parts = text[(open + 1)..close].Split([' ', '\n', '\r', '\t'], StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length != 4 || !parts.All(p => long.TryParse(p, out _))) return new(false, "The signature's byte range is malformed.");
        var r = parts.Select(long.Parse).ToArray();
        if (r[0] != 0 || r[1] < 0 || r[2] < r[1] || r[3] < 0 || r[2] + r[3] != pdf.Length)
            return new(false, "The signature does not cover the whole file: content was added or removed after signing.");
        var gap = text[(int)r[1]..(int)r[2]];
        if (gap.Length < 2 || gap[0] != '<' || gap[^1] != '>') return new(false, "The signature's contents are malformed.");
        byte[] cmsBytes;
        try { cmsBytes = Convert.FromHexString(gap[1..^1].Trim()); }
        catch (FormatException) { return new(false, "The signature's contents are not valid hex."); }
        var signed = new byte[r[1] + r[3]];
        pdf[..(int)r[1]].CopyTo(signed);
        pdf.Slice((int)r[2], (int)r[3]).CopyTo(signed.AsSpan((int)r[1]));
        try
        {
            var cms = new SignedCms(new ContentInfo(signed), detached: true);
            cms.Decode(TrimDer(cmsBytes));
            cms.CheckSignature(verifySignatureOnly: true);
            var signer = cms.SignerInfos[0].Certificate;
            if (signer is null) return new(false, "The signature names no certificate.");
            var thumb = Thumbprint(signer);
            var ours = portalThumbprints?.Contains(thumb) == true;
            return new(true, ours ? $"Signature valid: signed by this portal's certificate ({signer.Subject})." : $"Signature valid, by a certificate this portal does not know: {signer.Subject}.",
                signer.Subject, thumb, ours);
        }
        catch (CryptographicException e)
        {
            return new(false, $"The signature does not match the file: it was changed after signing ({e.Message.TrimEnd('.')}).");
        }
    }

    /// <summary>The signature field is zero-padded after the DER structure; cut it to the DER length.</summary>
    private static byte[] TrimDer(byte[] b)
    {
        if (b.Length < 2 || b[0] != 0x30) return b;
        int len, header;
        if (b[1] < 0x80) { len = b[1]; header = 2; }
        else
        {
            var n = b[1] & 0x7F;
            if (n is 0 or > 4 || b.Length < 2 + n) return b;
            len = 0;
            for (var i = 0; i < n; i++) len = (len << 8) | b[2 + i];
            header = 2 + n;
        }
        return header + len <= b.Length ? b[..(header + len)] : b;
    }
}
