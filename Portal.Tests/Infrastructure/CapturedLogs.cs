using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Portal.Tests.Infrastructure;

/// <summary>Keeps what the app logs so a failing test can show the server-side error.</summary>
public sealed class CapturedLogs : ILoggerProvider
{
    public ConcurrentQueue<string> Lines { get; } = new();
    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);
    public void Dispose() { }
    public string Errors => string.Join("\n", Lines.Where(l => (l.StartsWith("Error") || l.StartsWith("Critical")) && !IsCircuitTeardown(l)));

    /// <summary>
    /// A component's JS call racing the browser leaving the page: Blazor logs it while it disposes the circuit. It says
    /// nothing about the portal (the page is already gone), so it does not count as a server error.
    /// </summary>
    private static bool IsCircuitTeardown(string line) =>
        line.Contains("Microsoft.JSInterop.JSDisconnectedException", StringComparison.Ordinal)
        && line.Contains("the circuit has disconnected and is being disposed", StringComparison.Ordinal);

    private sealed class Logger(CapturedLogs owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (owner.Lines.Count > 5000) owner.Lines.TryDequeue(out _);
            owner.Lines.Enqueue($"{logLevel} {category}: {formatter(state, exception)}{(exception is null ? "" : "\n" + exception)}");
        }
    }
}
