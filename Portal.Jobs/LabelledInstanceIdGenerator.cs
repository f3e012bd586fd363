using Quartz.Extensibility;

namespace Portal.Jobs;

/// <summary>A cluster-unique instance id that still says which process it is: label, host, then a random part.</summary>
public sealed class LabelledInstanceIdGenerator(string label) : IInstanceIdGenerator
{
    public ValueTask<string> GenerateInstanceId(CancellationToken cancellationToken = default) => ValueTask.FromResult(Create(label));

    public static string Create(string label)
    {
        var host = Environment.MachineName;
        if (host.Length > 60) host = host[..60];
        return $"{label}@{host}-{Guid.NewGuid().ToString("N")[..10]}";
    }
}
