namespace Portal.Domain.Governance;

public static class SuggestionStatuses
{
    public const string Pending = "pending";
    public const string Approved = "approved";
    public const string Rejected = "rejected";
    public const string Expired = "expired";
    public const string Withdrawn = "withdrawn";
    public static readonly IReadOnlyList<string> All = [Pending, Approved, Rejected, Expired, Withdrawn];
}

public static class SubmitterTypes
{
    public const string User = "user";
    public const string ApiKey = "api_key";
}

/// <summary>
/// A query someone proposes (an agent through the API, or a member in the portal): a new approved query, or a change
/// to an existing one (<see cref="QueryId"/> set). It stays pending until the project's approval policy is met, a
/// reviewer rejects it, its submitter withdraws it or it expires.
/// </summary>
public sealed class Suggestion
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    /// <summary>No foreign key: the datasource may be deleted while this is pending; approval then fails cleanly.</summary>
    public Guid DatasourceId { get; set; }
    /// <summary>The approved query this suggests a change to; null for a new query.</summary>
    public Guid? QueryId { get; set; }
    /// <summary>The query's version the change was written against (the review screen diffs against the current one).</summary>
    public int? BaseVersion { get; set; }
    public string Name { get; set; } = "";
    public string Description { get; set; } = "";
    public string Prompt { get; set; } = "";
    public string Justification { get; set; } = "";
    public string Sql { get; set; } = "";
    public string ParametersJson { get; set; } = "[]";
    public string ClassificationsJson { get; set; } = "[]";
    /// <summary>What the engine reported on submission: tables, columns with their classifications and masks, risks.</summary>
    public string AnalysisJson { get; set; } = "{}";
    /// <summary>",pii_column,select_star," — delimited so the queue filters with LIKE.</summary>
    public string RiskFlags { get; set; } = "";
    /// <summary>",pii,financial," — classifications of the columns read, plus those the suggester declared.</summary>
    public string ReadClassifications { get; set; } = "";
    public int RowCap { get; set; }
    public int TimeoutMs { get; set; }
    /// <summary>SHA-256 of the exact SQL and parameter definitions; an approval counts only for the hash it was given to.</summary>
    public string ContentHash { get; set; } = "";
    public string Status { get; set; } = SuggestionStatuses.Pending;
    public string SubmittedByType { get; set; } = SubmitterTypes.User;
    /// <summary>The user id, or the API key id for an agent.</summary>
    public Guid SubmittedBy { get; set; }
    public string SubmittedByName { get; set; } = "";
    /// <summary>
    /// The person told about decisions: the user, or the key's creator for an agent. A user never approves their own
    /// suggestion; a key's creator may review their agent's (admins create every key).
    /// </summary>
    public Guid? SubmitterUserId { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
    public DateTimeOffset ExpiresAt { get; set; }
    public DateTimeOffset? DecidedAt { get; set; }
    public Guid? DecidedBy { get; set; }
    public string? DecisionReason { get; set; }
    public Guid? ResultQueryId { get; set; }
    public int? ResultVersion { get; set; }
    /// <summary>Bumped by every change; a write that read an older value loses (two reviewers at once).</summary>
    public int RowVersion { get; set; }
}

/// <summary>One reviewer's approval of one exact content (hash); an edit after it makes it stale.</summary>
public sealed class SuggestionApproval
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    public Guid SuggestionId { get; set; }
    public Guid ReviewerId { get; set; }
    public string ReviewerRole { get; set; } = "";
    public string ContentHash { get; set; } = "";
    public string Reason { get; set; } = "";
    public DateTimeOffset CreatedAt { get; set; }
}

/// <summary>The history of a suggestion (submitted, approval, edited, approved, rejected, expired, withdrawn), written with each transition.</summary>
public sealed class SuggestionEvent
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    public Guid SuggestionId { get; set; }
    public string Action { get; set; } = "";
    public string ActorType { get; set; } = SubmitterTypes.User;
    public Guid? ActorId { get; set; }
    public string? ActorName { get; set; }
    public string? Reason { get; set; }
    public string? ContentHash { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}

/// <summary>Project-wide governance settings; a project without a row uses <see cref="GovernanceDefaults"/>.</summary>
public sealed class GovernanceSettings
{
    public Guid ProjectId { get; set; }
    public int PendingExpiryHours { get; set; } = GovernanceDefaults.PendingExpiryHours;
    /// <summary>Roles granted view and execute on a query created from a suggestion (the suggester's role is always added).</summary>
    public string DefaultGrantRolesJson { get; set; } = "[]";
    public Guid UpdatedBy { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
}

/// <summary>
/// How many approvals a suggestion that touches <see cref="Classification"/> needs, and from which roles. The
/// classification "*" applies to every suggestion. With <see cref="DistinctRoles"/> the approvals must come from
/// that many different roles.
/// </summary>
public sealed class ApprovalPolicy
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    public string Classification { get; set; } = "*";
    public int RequiredApprovals { get; set; } = 1;
    public string ReviewerRolesJson { get; set; } = "[]";
    public bool DistinctRoles { get; set; }
    public Guid UpdatedBy { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
}

public static class QueryChanges
{
    public const string Created = "created";
    public const string Updated = "updated";
    public const string Archived = "archived";
    public const string Restored = "restored";
    public const string RolledBack = "rolled_back";
}

/// <summary>One version of an approved query, written in the same transaction as the change that made it.</summary>
public sealed class QueryVersion
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    public Guid QueryId { get; set; }
    public int Version { get; set; }
    public Guid DatasourceId { get; set; }
    public string Name { get; set; } = "";
    public string Description { get; set; } = "";
    public string Sql { get; set; } = "";
    public string ParametersJson { get; set; } = "[]";
    public string ClassificationsJson { get; set; } = "[]";
    public int RowCap { get; set; }
    public int TimeoutMs { get; set; }
    public string Status { get; set; } = "";
    public string Change { get; set; } = QueryChanges.Created;
    public string? Reason { get; set; }
    public Guid? SuggestionId { get; set; }
    public int? RestoredFromVersion { get; set; }
    public Guid CreatedBy { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}

public static class ConsumerKinds
{
    public const string Dashboard = "dashboard";
    public const string Report = "report";
    public const string Export = "export";
    public const string Api = "api";
    public static readonly IReadOnlyList<string> All = [Dashboard, Report, Export, Api];
}

/// <summary>Something outside the portal that depends on a query (lineage): changing or deleting the query affects it.</summary>
public sealed class QueryConsumer
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    public Guid QueryId { get; set; }
    public string Kind { get; set; } = ConsumerKinds.Dashboard;
    public string Name { get; set; } = "";
    public string? ExternalId { get; set; }
    public string? Owner { get; set; }
    public Guid CreatedBy { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}
