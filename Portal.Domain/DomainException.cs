namespace Portal.Domain;

public enum ErrorKind { Validation, NotFound, Conflict, Forbidden, Unavailable }

/// <summary>
/// A command was refused. The message is safe to show to the user; <see cref="Field"/> names the bad input
/// when there is one. Endpoints turn it into RFC 9457 problem details and pages show the same message.
/// </summary>
public sealed class DomainException(ErrorKind kind, string message, string? field = null) : Exception(message)
{
    public ErrorKind Kind { get; } = kind;
    public string? Field { get; } = field;

    public static DomainException NotFound(string what) => new(ErrorKind.NotFound, $"{what} was not found.");
    public static DomainException Invalid(string field, string message) => new(ErrorKind.Validation, message, field);
    public static DomainException Conflict(string message, string? field = null) => new(ErrorKind.Conflict, message, field);
    public static DomainException Forbidden(string message) => new(ErrorKind.Forbidden, message);
}

/// <summary>One page of a server-side paginated list.</summary>
public sealed record Page<T>(IReadOnlyList<T> Items, int Total, int Skip, int Take);
