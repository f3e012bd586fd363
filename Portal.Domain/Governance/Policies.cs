using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Portal.Domain.Audit;
using Portal.Domain.Gateway.Catalog;
using Portal.Domain.Persistence;
using Portal.Domain.Tenancy;

namespace Portal.Domain.Governance;

public static class GovernanceDefaults
{
    public const int PendingExpiryHours = 24 * 14;
    public const int MaxExpiryHours = 24 * 365;
    public const int MaxPrompt = 8000;
    public const int MaxJustification = 4000;
    public const int MaxReason = 2000;
    public const int MaxApprovals = 5;
    public const string AnyClassification = "*";
    /// <summary>A project without an "any" policy needs one approval from an admin.</summary>
    public static readonly QuorumRule DefaultRule = new(AnyClassification, 1, [Roles.Admin], false);
}

/// <summary>One requirement of an approval policy: <see cref="Required"/> approvals from <see cref="Roles"/>.</summary>
public sealed record QuorumRule(string Classification, int Required, IReadOnlyList<string> Roles, bool DistinctRoles);

/// <summary>How far a suggestion is from approval: each applicable rule with the approvals that count for it.</summary>
public sealed record QuorumProgress(QuorumRule Rule, int Have)
{
    public bool Met => Have >= Rule.Required;
}

public sealed record ApprovalPolicyRow(Guid Id, string Classification, int RequiredApprovals, IReadOnlyList<string> ReviewerRoles, bool DistinctRoles,
    IReadOnlyList<string> RolesWithoutReviewPermission, DateTimeOffset UpdatedAt);

public sealed record ApprovalPolicyRequest(string? Classification, int RequiredApprovals, IReadOnlyList<string>? ReviewerRoles, bool DistinctRoles = false);

public sealed record GovernanceSettingsRow(int PendingExpiryHours, IReadOnlyList<string> DefaultGrantRoles);

/// <summary>
/// Approval policies and settings of a project. A policy names the classification it governs ("*" for every
/// suggestion), how many approvals it needs and from which roles. A role named here may approve the suggestions the
/// policy governs even if it does not hold suggestions.review (its members review from the Suggestions page);
/// <see cref="ApprovalPolicyRow.RolesWithoutReviewPermission"/> lets the page say so.
/// </summary>
public sealed class ApprovalPolicyService(IDbContextFactory<PortalDbContext> dbFactory, TimeProvider clock, PortalAudit audit)
{
    public async Task<IReadOnlyList<ApprovalPolicyRow>> ListAsync(Guid projectId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var rows = await db.Set<ApprovalPolicy>().AsNoTracking().Where(p => p.ProjectId == projectId).ToListAsync(ct);
        return rows.OrderBy(p => p.Classification == GovernanceDefaults.AnyClassification ? 0 : 1).ThenBy(p => p.Classification).Select(ToRow).ToList();
    }

    public async Task<ApprovalPolicyRow> SetAsync(Guid projectId, ApprovalPolicyRequest request, Guid actor, CancellationToken ct = default)
    {
        var classification = request.Classification?.Trim().ToLowerInvariant();
        if (classification != GovernanceDefaults.AnyClassification)
        {
            if (string.IsNullOrEmpty(classification)) throw DomainException.Invalid("classification", "Choose a classification, or * for every suggestion.");
            classification = Classifications.Normalize([classification], "classification").Single();
        }
        if (request.RequiredApprovals is < 1 or > GovernanceDefaults.MaxApprovals)
            throw DomainException.Invalid("requiredApprovals", $"Between 1 and {GovernanceDefaults.MaxApprovals} approvals.");
        var roles = (request.ReviewerRoles ?? []).Select(r => r?.Trim().ToLowerInvariant()).Distinct().ToList();
        if (roles.Count == 0) throw DomainException.Invalid("reviewerRoles", "Name at least one role whose members may approve.");
        foreach (var r in roles)
            if (!Roles.IsValid(r)) throw DomainException.Invalid("reviewerRoles", $"'{r}' is not a role; roles are {string.Join(", ", Roles.All)}.");
        if (request.DistinctRoles && roles.Count < request.RequiredApprovals)
            throw DomainException.Invalid("reviewerRoles", $"{request.RequiredApprovals} approvals from different roles need at least {request.RequiredApprovals} roles.");

        await using var db = await dbFactory.CreateDbContextAsync(ct);
        if (!await db.Projects.AnyAsync(p => p.Id == projectId, ct)) throw DomainException.NotFound("Project");
        var now = clock.GetUtcNow();
        var policy = await db.Set<ApprovalPolicy>().FirstOrDefaultAsync(p => p.ProjectId == projectId && p.Classification == classification, ct);
        var before = policy is null ? null : ToRow(policy);
        if (policy is null) db.Add(policy = new ApprovalPolicy { ProjectId = projectId, Classification = classification! });
        policy.RequiredApprovals = request.RequiredApprovals;
        policy.ReviewerRolesJson = JsonSerializer.Serialize(roles);
        policy.DistinctRoles = request.DistinctRoles;
        policy.UpdatedBy = actor;
        policy.UpdatedAt = now;
        try { await db.SaveChangesAsync(ct); }
        catch (DbUpdateException) { throw DomainException.Conflict("A policy for this classification was saved at the same time; reload and try again.", "classification"); }
        var row = ToRow(policy);
        await audit.RecordAsync(new AuditEventDraft
        {
            ProjectId = projectId, EventType = "governance.policy_set", Actor = await PortalAudit.UserAsync(db, projectId, actor, ct),
            ResourceType = "approval_policy", ResourceId = policy.Id.ToString(), Action = before is null ? "create" : "update",
            BeforeState = PortalAudit.Json(before), AfterState = PortalAudit.Json(row), OccurredAt = now,
        }, ct);
        return row;
    }

    public async Task DeleteAsync(Guid projectId, Guid policyId, Guid actor, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var policy = await db.Set<ApprovalPolicy>().FirstOrDefaultAsync(p => p.Id == policyId && p.ProjectId == projectId, ct)
            ?? throw DomainException.NotFound("Approval policy");
        db.Remove(policy);
        await db.SaveChangesAsync(ct);
        await audit.RecordAsync(new AuditEventDraft
        {
            ProjectId = projectId, EventType = "governance.policy_deleted", Actor = await PortalAudit.UserAsync(db, projectId, actor, ct),
            ResourceType = "approval_policy", ResourceId = policy.Id.ToString(), Action = "delete", BeforeState = PortalAudit.Json(ToRow(policy)),
            OccurredAt = clock.GetUtcNow(),
        }, ct);
    }

    public async Task<GovernanceSettingsRow> GetSettingsAsync(Guid projectId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        return ToRow(await SettingsAsync(db, projectId, ct));
    }

    public async Task<GovernanceSettingsRow> SetSettingsAsync(Guid projectId, int pendingExpiryHours, IReadOnlyList<string>? defaultGrantRoles, Guid actor, CancellationToken ct = default)
    {
        if (pendingExpiryHours is < 1 or > GovernanceDefaults.MaxExpiryHours)
            throw DomainException.Invalid("pendingExpiryHours", $"Pending suggestions expire after 1 to {GovernanceDefaults.MaxExpiryHours} hours.");
        var roles = (defaultGrantRoles ?? []).Select(r => r?.Trim().ToLowerInvariant()).Distinct().ToList();
        foreach (var r in roles)
            if (!Roles.IsValid(r)) throw DomainException.Invalid("defaultGrantRoles", $"'{r}' is not a role.");
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        if (!await db.Projects.AnyAsync(p => p.Id == projectId, ct)) throw DomainException.NotFound("Project");
        var s = await db.Set<GovernanceSettings>().FirstOrDefaultAsync(x => x.ProjectId == projectId, ct);
        var before = s is null ? null : ToRow(s);
        if (s is null) db.Add(s = new GovernanceSettings { ProjectId = projectId });
        s.PendingExpiryHours = pendingExpiryHours;
        s.DefaultGrantRolesJson = JsonSerializer.Serialize(roles);
        s.UpdatedBy = actor;
        s.UpdatedAt = clock.GetUtcNow();
        await db.SaveChangesAsync(ct);
        await audit.RecordAsync(new AuditEventDraft
        {
            ProjectId = projectId, EventType = "governance.settings_changed", Actor = await PortalAudit.UserAsync(db, projectId, actor, ct),
            ResourceType = "governance_settings", ResourceId = projectId.ToString(), Action = "update",
            BeforeState = PortalAudit.Json(before), AfterState = PortalAudit.Json(ToRow(s)), OccurredAt = s.UpdatedAt,
        }, ct);
        return ToRow(s);
    }

    internal static async Task<GovernanceSettings> SettingsAsync(PortalDbContext db, Guid projectId, CancellationToken ct) =>
        await db.Set<GovernanceSettings>().AsNoTracking().FirstOrDefaultAsync(x => x.ProjectId == projectId, ct)
        ?? new GovernanceSettings { ProjectId = projectId, DefaultGrantRolesJson = JsonSerializer.Serialize(new[] { Roles.Data }) };

    /// <summary>The rules a suggestion reading <paramref name="classifications"/> must meet: the "*" rule (or the default) and one per classification with a policy.</summary>
    internal static async Task<IReadOnlyList<QuorumRule>> RulesForAsync(PortalDbContext db, Guid projectId, IEnumerable<string> classifications, CancellationToken ct)
    {
        var policies = await db.Set<ApprovalPolicy>().AsNoTracking().Where(p => p.ProjectId == projectId).ToListAsync(ct);
        return RulesFor(policies, classifications);
    }

    public static IReadOnlyList<QuorumRule> RulesFor(IEnumerable<ApprovalPolicy> policies, IEnumerable<string> classifications)
    {
        var list = policies.ToList();
        var any = list.FirstOrDefault(p => p.Classification == GovernanceDefaults.AnyClassification);
        var rules = new List<QuorumRule> { any is null ? GovernanceDefaults.DefaultRule : ToRule(any) };
        foreach (var c in classifications.Distinct())
            if (list.FirstOrDefault(p => p.Classification == c) is { } p) rules.Add(ToRule(p));
        return rules;
    }

    /// <summary>
    /// Counts, per rule, the approvals that fit it: given for <paramref name="contentHash"/> (an edit restarts the count),
    /// by a role the rule names, one per reviewer — or one per role when the rule wants different roles.
    /// </summary>
    public static IReadOnlyList<QuorumProgress> Progress(IReadOnlyList<QuorumRule> rules, IEnumerable<SuggestionApproval> approvals, string contentHash)
    {
        var current = approvals.Where(a => a.ContentHash == contentHash).ToList();
        return rules.Select(rule =>
        {
            var fitting = current.Where(a => rule.Roles.Contains(a.ReviewerRole)).ToList();
            var have = rule.DistinctRoles ? fitting.Select(a => a.ReviewerRole).Distinct().Count() : fitting.Select(a => a.ReviewerId).Distinct().Count();
            return new QuorumProgress(rule, have);
        }).ToList();
    }

    private static QuorumRule ToRule(ApprovalPolicy p) => new(p.Classification, p.RequiredApprovals, ReadRoles(p.ReviewerRolesJson), p.DistinctRoles);

    internal static IReadOnlyList<string> ReadRoles(string json) => JsonSerializer.Deserialize<List<string>>(json) ?? [];

    private static ApprovalPolicyRow ToRow(ApprovalPolicy p)
    {
        var roles = ReadRoles(p.ReviewerRolesJson);
        return new(p.Id, p.Classification, p.RequiredApprovals, roles, p.DistinctRoles,
            roles.Where(r => !Permissions.RoleHas(r, Permissions.SuggestionsReview)).ToList(), p.UpdatedAt);
    }

    private static GovernanceSettingsRow ToRow(GovernanceSettings s) => new(s.PendingExpiryHours, ReadRoles(s.DefaultGrantRolesJson));
}
