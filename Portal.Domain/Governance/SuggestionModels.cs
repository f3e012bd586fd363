using Portal.Domain.Gateway;
using Portal.Domain.Gateway.Catalog;

namespace Portal.Domain.Governance;

/// <summary>What a suggester sends. <see cref="QueryId"/> makes it a change to that approved query.</summary>
public sealed record SuggestionRequest(
    Guid? DatasourceId, string? Name, string? Prompt, string? Sql,
    IReadOnlyList<QueryParameter>? Parameters = null, string? Justification = null, string? Description = null,
    IReadOnlyList<string>? Classifications = null, Guid? QueryId = null,
    int RowCap = ApprovedQueryService.DefaultRowCap, int TimeoutMs = ApprovedQueryService.DefaultTimeoutMs);

/// <summary>Who suggests: a portal user, or an API key acting for an agent (its creator is told about decisions).</summary>
public sealed record Submitter(string Type, Guid Id, string Name, Guid? UserId, string Role)
{
    public static Submitter ApiKey(Guid keyId, string keyName, Guid keyCreator, string role) => new(SubmitterTypes.ApiKey, keyId, keyName, keyCreator, role);
}

public static class RiskCodes
{
    public const string PiiColumn = "pii_column";
    public const string FinancialColumn = "financial_column";
    public const string SelectStar = "select_star";
    public const string NoRowFilter = "no_row_filter";
    public const string CrossJoin = "cross_join";
    public static readonly IReadOnlyList<string> All = [PiiColumn, FinancialColumn, SelectStar, NoRowFilter, CrossJoin];

    public static string Label(string code) => code switch
    {
        PiiColumn => "Reads PII",
        FinancialColumn => "Reads financial data",
        SelectStar => "SELECT *",
        NoRowFilter => "No row filter",
        CrossJoin => "Cross join",
        _ => code,
    };
}

public sealed record SuggestionColumn(string Table, string Column, string? Classification, string? Mask);

public sealed record RiskFlag(string Code, string Message);

/// <summary>The engine's report on a suggestion: what it reads, how those columns are classified and masked, and the risks.</summary>
public sealed record SuggestionAnalysis(IReadOnlyList<string> Tables, IReadOnlyList<SuggestionColumn> Columns, IReadOnlyList<string> Classifications, IReadOnlyList<RiskFlag> Risks)
{
    public static readonly SuggestionAnalysis Empty = new([], [], [], []);
}

public sealed record SuggestionRow(
    Guid Id, Guid DatasourceId, Guid? QueryId, int? BaseVersion, string Name, string Description, string Prompt, string Justification,
    string Sql, IReadOnlyList<QueryParameter> Parameters, IReadOnlyList<string> DeclaredClassifications, SuggestionAnalysis Analysis,
    int RowCap, int TimeoutMs, string ContentHash, string Status, string SubmittedByType, Guid SubmittedBy, string SubmittedByName,
    DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt, DateTimeOffset ExpiresAt, DateTimeOffset? DecidedAt, string? DecisionReason,
    Guid? ResultQueryId, int? ResultVersion);

public sealed record ApprovalRow(Guid ReviewerId, string ReviewerName, string Role, string Reason, DateTimeOffset At, bool Current);

public sealed record SuggestionEventRow(string Action, string ActorType, string? ActorName, string? Reason, DateTimeOffset At);

/// <summary>Everything the review screen shows about one suggestion.</summary>
public sealed record SuggestionDetail(
    SuggestionRow Suggestion, string? DatasourceName, IReadOnlyList<ApprovalRow> Approvals, IReadOnlyList<QuorumProgress> Quorum,
    IReadOnlyList<SuggestionEventRow> History, ApprovedQueryRow? CurrentQuery, IReadOnlyList<ConsumerRow> Consumers)
{
    public bool QuorumMet => Quorum.All(q => q.Met);
}

public sealed record SuggestionFilter(
    string? Status = SuggestionStatuses.Pending, Guid? DatasourceId = null, string? Classification = null, string? Suggester = null,
    int? OlderThanHours = null, string? Risk = null, Guid? SubmittedBy = null);

public sealed record SuggestionCounts(int Pending, int Approved, int Rejected, int Expired, int Withdrawn);

/// <summary>A reviewer's approval; optionally with edited SQL/parameters (the count then restarts for the new content).</summary>
public sealed record ApproveRequest(string? Reason, string? Sql = null, IReadOnlyList<QueryParameter>? Parameters = null, bool ConfirmConsumers = false);

public sealed record ApproveOutcome(SuggestionRow Suggestion, IReadOnlyList<QuorumProgress> Quorum, ApprovedQueryRow? Query)
{
    public bool Approved => Query is not null;
}

public sealed record TestRunResult(IReadOnlyList<GatewayColumn> Columns, IReadOnlyList<object?[]> Rows, bool Truncated, long DurationMs, int RowCap);
