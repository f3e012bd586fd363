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
    private const string Element = "encryptedKey", Value = "value";

    public EncryptedXmlInfo Encrypt(XElement plaintextElement)
    {
        var element = new XElement(Element,
            new XComment(" Encrypted with the portal's Security:EncryptionKeys (AES-256-GCM). "),
            new XElement(Value, protector.Protect(plaintextElement.ToString(SaveOptions.DisableFormatting), Purpose)));
        return new EncryptedXmlInfo(element, typeof(SecretXmlDecryptor));
    }

    /// <summary>The protected values (SecretProtector text) this encryptor wrote into a stored key's XML.</summary>
    public static IEnumerable<XElement> ProtectedValues(XElement storedKey) =>
        storedKey.DescendantsAndSelf(Element).Select(e => e.Element(Value)).OfType<XElement>();
}

public sealed class SecretXmlDecryptor(IServiceProvider services) : IXmlDecryptor
{
    public XElement Decrypt(XElement encryptedElement) =>
        XElement.Parse(services.GetRequiredService<SecretProtector>().Unprotect(
            SecretXmlEncryptor.ProtectedValues(encryptedElement).FirstOrDefault()?.Value ?? throw new InvalidOperationException("The encrypted key has no value."),
            SecretXmlEncryptor.Purpose));
}
