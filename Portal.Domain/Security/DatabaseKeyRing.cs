using System.Xml.Linq;
using Microsoft.AspNetCore.DataProtection.EntityFrameworkCore;
using Microsoft.AspNetCore.DataProtection.Repositories;
using Microsoft.Extensions.Logging;
using Portal.Domain.Persistence;

namespace Portal.Domain.Security;

/// <summary>
/// The ASP.NET data-protection key ring (it protects sign-in cookies, antiforgery and Identity tokens) kept in the
/// portal database, so every portal node and job worker reads the same keys without a shared folder. The keys arrive
/// here already encrypted by <see cref="SecretXmlEncryptor"/>. Storage is the framework's EF Core repository; this
/// wrapper only adds the one-time import of a key folder written by earlier versions (keys/ in the data directory),
/// so signed-in users and open forms survive the upgrade.
/// </summary>
public sealed class DatabaseKeyRing(IServiceProvider services, ILoggerFactory loggerFactory, string legacyFolder) : IXmlRepository
{
    private readonly EntityFrameworkCoreXmlRepository<PortalDbContext> inner = new(services, loggerFactory);
    private readonly ILogger logger = loggerFactory.CreateLogger("Portal.Security");
    private int imported;

    public IReadOnlyCollection<XElement> GetAllElements()
    {
        var elements = inner.GetAllElements();
        if (elements.Count > 0 || Interlocked.Exchange(ref imported, 1) == 1 || !Directory.Exists(legacyFolder)) return elements;
        var files = Directory.GetFiles(legacyFolder, "key-*.xml").Order(StringComparer.Ordinal).ToList();
        if (files.Count == 0) return elements;
        foreach (var file in files)
            inner.StoreElement(XElement.Load(file), Path.GetFileNameWithoutExtension(file));
        logger.LogInformation("Moved {Count} data-protection keys from {Folder} into the portal database; the folder is no longer read and may be deleted.",
            files.Count, legacyFolder);
        return inner.GetAllElements();
    }

    public void StoreElement(XElement element, string friendlyName) => inner.StoreElement(element, friendlyName);

    /// <summary>
    /// Called at startup, after the scripts ran: when the database already holds a key ring and this process's
    /// Security:EncryptionKeys open none of it, another node (or an earlier start) used other keys. Starting anyway
    /// would sign every user out and write keys the other nodes cannot read, so startup stops with one line instead.
    /// </summary>
    public static async Task EnsureReadableAsync(Microsoft.EntityFrameworkCore.IDbContextFactory<PortalDbContext> dbFactory, SecretProtector secrets, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var rows = await Microsoft.EntityFrameworkCore.EntityFrameworkQueryableExtensions.ToListAsync(
            db.DataProtectionKeys.Where(k => k.Xml != null).OrderByDescending(k => k.Id).Select(k => k.Xml!).Take(50), ct);
        if (rows.Count == 0) return;
        foreach (var xml in rows)
        {
            var value = SecretXmlEncryptor.ProtectedValues(XElement.Parse(xml)).FirstOrDefault()?.Value;
            if (value is null) return; // not written by this portal's encryptor: nothing to judge
            try
            {
                secrets.Unprotect(value, SecretXmlEncryptor.Purpose);
                return;
            }
            catch (System.Security.Cryptography.CryptographicException) { }
        }
        throw new ConfigurationException(
            $"Security:EncryptionKeys opens none of the {rows.Count} sign-in cookie key(s) in the portal database: this process has other keys than the " +
            "nodes (or the earlier start) that wrote them. Give every portal node and worker the same Security:EncryptionKeys.");
    }
}
