using Microsoft.Extensions.Logging;
using Portal.Domain.Governance;
using Quartz;

namespace Portal.Jobs.Governance;

/// <summary>Expires pending suggestions past their review period and tells their suggesters (see <see cref="SuggestionService.ExpireDueAsync"/>).</summary>
[DisallowConcurrentExecution]
public sealed class SuggestionExpiryJob(SuggestionService suggestions, ILogger<SuggestionExpiryJob> logger) : IJob
{
    public static readonly JobKey Key = new("suggestion-expiry", "governance");
    public const string Cron = "0 */5 * * * ?";
    public const string Description = "Expires pending suggestions whose review period is over and notifies their suggesters.";

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken = default)
    {
        var expired = await suggestions.ExpireDueAsync(null, cancellationToken);
        context.Result = $"Expired {expired} suggestion(s).";
        if (expired > 0) logger.LogInformation("Expired {Count} pending suggestion(s)", expired);
    }
}
