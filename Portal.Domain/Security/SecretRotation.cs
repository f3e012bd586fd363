using System.Xml.Linq;
using Microsoft.AspNetCore.DataProtection.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore;
using Portal.Domain.Compliance;
using Portal.Domain.Gateway.Catalog;
using Portal.Domain.Integrations;
using Portal.Domain.Persistence;

namespace Portal.Domain.Security;

public sealed record SecretRotationResult(int Datasources, int Webhooks, int SiemIntegrations, int SigningCertificates, int DataProtectionKeys, int Unreadable = 0)
{
    public int Total => Datasources + Webhooks + SiemIntegrations + SigningCertificates + DataProtectionKeys;
}

/// <summary>
/// Re-encrypts every secret stored at rest under the active key of Security:EncryptionKeys (the first one), so that an
/// older key can be removed from the configuration afterwards: datasource passwords, webhook and Slack/Teams secrets
/// (current and previous), SIEM tokens, the report-signing certificate and the data-protection key ring. Each row is
/// replaced only if it still holds the value that was read, so a secret someone changes at the same moment (already
/// written under the active key) is never overwritten. Run by the hourly housekeeping job.
/// </summary>
public sealed class SecretRotation(IDbContextFactory<PortalDbContext> dbFactory, SecretProtector secrets, DatasourceService datasources)
{
    public async Task<SecretRotationResult> RotateAsync(CancellationToken ct = default)
    {
        var ds = await datasources.RotateSecretsAsync(ct);
        await using var db = await dbFactory.CreateDbContextAsync(ct);

        var webhooks = 0;
        foreach (var e in await db.Set<WebhookEndpoint>().AsNoTracking().Select(e => new { e.Id, e.SecretProtected, e.PreviousSecretProtected }).ToListAsync(ct))
        {
            var purpose = WebhookService.SecretPurpose(e.Id);
            var secret = Stale(e.SecretProtected) ? secrets.Rotate(e.SecretProtected, purpose) : e.SecretProtected;
            var previous = e.PreviousSecretProtected is { } p && Stale(p) ? secrets.Rotate(p, purpose) : e.PreviousSecretProtected;
            if (secret == e.SecretProtected && previous == e.PreviousSecretProtected) continue;
            webhooks += await db.Set<WebhookEndpoint>()
                .Where(x => x.Id == e.Id && x.SecretProtected == e.SecretProtected && x.PreviousSecretProtected == e.PreviousSecretProtected)
                .ExecuteUpdateAsync(s => s.SetProperty(x => x.SecretProtected, secret).SetProperty(x => x.PreviousSecretProtected, previous), ct);
        }

        var siem = 0;
        foreach (var i in await db.Set<SiemIntegration>().AsNoTracking().Where(i => i.SecretProtected != null).Select(i => new { i.Id, i.SecretProtected }).ToListAsync(ct))
        {
            if (!Stale(i.SecretProtected!)) continue;
            var fresh = secrets.Rotate(i.SecretProtected!, SiemExporter.SecretPurpose(i.Id));
            siem += await db.Set<SiemIntegration>().Where(x => x.Id == i.Id && x.SecretProtected == i.SecretProtected)
                .ExecuteUpdateAsync(s => s.SetProperty(x => x.SecretProtected, fresh), ct);
        }

        var certificates = 0;
        foreach (var c in await db.Set<ReportSigningCertificate>().AsNoTracking().Select(c => new { c.Id, c.PfxProtected }).ToListAsync(ct))
        {
            if (!Stale(c.PfxProtected)) continue;
            var fresh = secrets.Rotate(c.PfxProtected, ReportSigner.Purpose);
            certificates += await db.Set<ReportSigningCertificate>().Where(x => x.Id == c.Id && x.PfxProtected == c.PfxProtected)
                .ExecuteUpdateAsync(s => s.SetProperty(x => x.PfxProtected, fresh), ct);
        }

        // Data-protection keys: the key material sits in the values SecretXmlEncryptor wrote into each key's XML.
        var keys = 0;
        var unreadable = 0;
        foreach (var k in await db.DataProtectionKeys.AsNoTracking().Where(k => k.Xml != null).Select(k => new { k.Id, k.Xml }).ToListAsync(ct))
        {
            var xml = XElement.Parse(k.Xml!);
            var values = SecretXmlEncryptor.ProtectedValues(xml).Where(v => Stale(v.Value)).ToList();
            if (values.Count == 0) continue;
            // A key written by a node with other encryption keys cannot be opened here; leave it as it is.
            var rotatedValues = new List<string>();
            foreach (var v in values)
                if (TryRotate(v.Value, SecretXmlEncryptor.Purpose, out var r)) rotatedValues.Add(r);
            if (rotatedValues.Count < values.Count) { unreadable++; continue; }
            for (var i = 0; i < values.Count; i++) values[i].Value = rotatedValues[i];
            var fresh = xml.ToString(SaveOptions.DisableFormatting);
            keys += await db.DataProtectionKeys.Where(x => x.Id == k.Id && x.Xml == k.Xml).ExecuteUpdateAsync(s => s.SetProperty(x => x.Xml, fresh), ct);
        }
        return new SecretRotationResult(ds, webhooks, siem, certificates, keys, unreadable);
    }

    private bool TryRotate(string value, string purpose, out string rotated)
    {
        try
        {
            rotated = secrets.Rotate(value, purpose);
            return true;
        }
        catch (System.Security.Cryptography.CryptographicException)
        {
            rotated = value;
            return false;
        }
    }

    private bool Stale(string protectedValue) => protectedValue.Length > 0 && secrets.NeedsRotation(protectedValue);
}
