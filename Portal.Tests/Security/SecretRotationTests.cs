using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.DependencyInjection;
using Portal.Domain.Compliance;
using Portal.Domain.Gateway.Catalog;
using Portal.Domain.Integrations;
using Portal.Domain.Security;
using Portal.Tests.Infrastructure;
using Portal.Tests.Tenancy;

namespace Portal.Tests.Security;

public class SecretRotationTests
{
    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Every_stored_secret_moves_to_the_new_key_and_stays_readable_once_the_old_key_is_gone(string provider)
    {
        await using var w = await TenancyWorld.CreateAsync(provider);
        var (_, projectId) = await w.SetupAsync();
        // The world runs on the key file generated in its data folder ("k1:..."); the operator then adds k2 in front.
        var oldSpec = (await File.ReadAllTextAsync(Path.Combine(w.Db.DataDirectory, "encryption.keys"))).Trim();
        var newKey = $"k2:{Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32))}";
        var old = new SecretProtector(SecretProtector.Parse(oldSpec));

        var ds = new Datasource { ProjectId = projectId, Name = "warehouse", Engine = DatasourceEngines.Postgres, Host = "db.internal", Port = 5432, DatabaseName = "dw", Username = "reader" };
        ds.PasswordProtected = old.Protect("pg-secret", DatasourceService.PasswordPurpose(ds.Id));
        var hook = new WebhookEndpoint { ProjectId = projectId, Name = "SOC", Url = "https://soc.example/hook", EventTypes = "alert.raised", PreviousSecretUntil = w.Clock.GetUtcNow().AddDays(1) };
        hook.SecretProtected = old.Protect("whsec_new", WebhookService.SecretPurpose(hook.Id));
        hook.PreviousSecretProtected = old.Protect("whsec_old", WebhookService.SecretPurpose(hook.Id));
        var siem = new SiemIntegration { ProjectId = projectId, Name = "Splunk", Endpoint = "https://splunk.example:8088/services/collector/event" };
        siem.SecretProtected = old.Protect("hec-token", SiemExporter.SecretPurpose(siem.Id));
        var cert = new ReportSigningCertificate { Subject = "CN=Portal reports", Thumbprint = "AB", PfxProtected = old.Protect("cGZ4", ReportSigner.Purpose) };
        await w.QueryAsync(async ctx =>
        {
            ctx.Add(ds); ctx.Add(hook); ctx.Add(siem); ctx.Add(cert);
            return await ctx.SaveChangesAsync();
        });
        var cookie = w.Provider.GetRequiredService<IDataProtectionProvider>().CreateProtector("cookie").Protect("signed in"); // a key ring row under k1

        await using (var both = w.Db.Services(w.Clock, s => s.AddSingleton(new SecretProtector(SecretProtector.Parse($"{newKey};{oldSpec}")))))
        {
            var result = await both.GetRequiredService<SecretRotation>().RotateAsync();
            Assert.Equal(new SecretRotationResult(1, 1, 1, 1, 1), result);
            Assert.Equal(0, (await both.GetRequiredService<SecretRotation>().RotateAsync()).Total); // nothing left to do
        }
        foreach (var table in new[] { "datasources", "webhook_endpoints", "siem_integrations", "report_signing_certificates", "data_protection_keys" })
        {
            var rows = string.Join("\n", await w.Db.RawRowsAsync(table));
            Assert.Contains("enc:k2:", rows);
            Assert.DoesNotContain("enc:k1:", rows);
        }

        // The old key can now be removed from the configuration.
        var only = new SecretProtector(SecretProtector.Parse(newKey));
        var rowsNow = await w.QueryAsync(async ctx => (
            Microsoft.EntityFrameworkCore.EntityFrameworkQueryableExtensions.AsNoTracking(ctx.Set<Datasource>()).Single(x => x.Id == ds.Id),
            Microsoft.EntityFrameworkCore.EntityFrameworkQueryableExtensions.AsNoTracking(ctx.Set<WebhookEndpoint>()).Single(x => x.Id == hook.Id),
            Microsoft.EntityFrameworkCore.EntityFrameworkQueryableExtensions.AsNoTracking(ctx.Set<SiemIntegration>()).Single(x => x.Id == siem.Id),
            Microsoft.EntityFrameworkCore.EntityFrameworkQueryableExtensions.AsNoTracking(ctx.Set<ReportSigningCertificate>()).Single(x => x.Id == cert.Id)));
        Assert.Equal("pg-secret", only.Unprotect(rowsNow.Item1.PasswordProtected!, DatasourceService.PasswordPurpose(ds.Id)));
        Assert.Equal("whsec_new", only.Unprotect(rowsNow.Item2.SecretProtected, WebhookService.SecretPurpose(hook.Id)));
        Assert.Equal("whsec_old", only.Unprotect(rowsNow.Item2.PreviousSecretProtected!, WebhookService.SecretPurpose(hook.Id)));
        Assert.Equal("hec-token", only.Unprotect(rowsNow.Item3.SecretProtected!, SiemExporter.SecretPurpose(siem.Id)));
        Assert.Equal("cGZ4", only.Unprotect(rowsNow.Item4.PfxProtected, ReportSigner.Purpose));
        await using var newOnly = w.Db.Services(w.Clock, s => s.AddSingleton(only));
        Assert.Equal("signed in", newOnly.GetRequiredService<IDataProtectionProvider>().CreateProtector("cookie").Unprotect(cookie));
    }
}
