using Microsoft.Extensions.DependencyInjection;
using System.Xml.Linq;
using Microsoft.AspNetCore.DataProtection.XmlEncryption;


namespace Portal.Domain.Security;

/// <summary>
/// Encrypts the portal's ASP.NET data-protection keys (which protect sign-in cookies and antiforgery tokens) at rest
/// with the same versioned keys as every other secret. The framework's own encryptors need Windows DPAPI or an X.509
/// certificate, neither of which this deployment has.
/// </summary>
public sealed class SecretXmlEncryptor(SecretProtector protector) : IXmlEncryptor
{
    public const string Purpose = "aspnet-data-protection-key";

    public EncryptedXmlInfo Encrypt(XElement plaintextElement)
    {
        var element = new XElement("encryptedKey",
            new XComment(" Encrypted with the portal's Security:EncryptionKeys (AES-256-GCM). "),
            new XElement("value", protector.Protect(plaintextElement.ToString(SaveOptions.DisableFormatting), Purpose)));
        return new EncryptedXmlInfo(element, typeof(SecretXmlDecryptor));
    }
}

public sealed class SecretXmlDecryptor(IServiceProvider services) : IXmlDecryptor
{
    public XElement Decrypt(XElement encryptedElement) =>
        XElement.Parse(services.GetRequiredService<SecretProtector>().Unprotect(
            (string?)encryptedElement.Element("value") ?? throw new InvalidOperationException("The encrypted key has no value."), SecretXmlEncryptor.Purpose));
}
