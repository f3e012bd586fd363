using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Portal.Domain.Access;
using Portal.Domain.Audit;
using Portal.Domain.Gateway;
using Portal.Domain.Gateway.Catalog;
using Portal.Domain.Integrations;
using Portal.Domain.Persistence;
using Portal.Domain.Suite;
using Portal.Domain.Tenancy;

namespace Portal.Domain.Governance;

/// <summary>
/// Suggested queries and their approval workflow: pending → approved | rejected | expired | withdrawn.
/// <para>
/// Every transition is one transaction holding the suggestion's new state, its <see cref="SuggestionEvent"/>, the
/// approved query and its version (on approval), notifications and outbox messages; then the audit event is appended
/// (see <see cref="PortalAudit"/> for why in that order). A suggestion's <see cref="Suggestion.RowVersion"/> is bumped
/// by every write and checked by the save, so two reviewers acting at once produce one outcome and one conflict.
/// </para>
/// Every method is scoped by project id; another project's suggestion answers NotFound, exactly like a missing one.
/// </summary>
public sealed class SuggestionService(
    IDbContextFactory<PortalDbContext> dbFactory, ApprovedQueryService queries, DatasourceService datasources, SuiteService suite,
    PortalAudit audit, GatewayOptions gatewayOptions, TimeProvider clock, ILogger<SuggestionService>? logger = null)
{
    public const int TestRunRowCap = 20;
    public static readonly TimeSpan TestRunTimeout = TimeSpan.FromSeconds(10);
    private readonly ILogger log = (ILogger?)logger ?? NullLogger.Instance;

    // ---------------------------------------------------------------- submit

    public async Task<SuggestionRow> SubmitAsync(Guid projectId, SuggestionRequest request, Submitter submitter, AuditActor? actor = null, CancellationToken ct = default)
    {
        await RequireModuleAsync(projectId, ct);
        if (!Permissions.RoleHas(submitter.Role, Permissions.SuggestionsSubmit))
            throw DomainException.Forbidden($"The {submitter.Role} role may not suggest queries.");
        var prompt = request.Prompt?.Trim() ?? "";
        if (prompt.Length == 0) throw DomainException.Invalid("prompt", "Describe in plain words what the query is for (the prompt).");
        if (prompt.Length > GovernanceDefaults.MaxPrompt) throw DomainException.Invalid("prompt", $"The prompt is limited to {GovernanceDefaults.MaxPrompt} characters.");
        var justification = request.Justification?.Trim() ?? "";
        if (justification.Length > GovernanceDefaults.MaxJustification)
            throw DomainException.Invalid("justification", $"The justification is limited to {GovernanceDefaults.MaxJustification} characters.");

        await using var db = await dbFactory.CreateDbContextAsync(ct);
        ApprovedQuery? target = null;
        if (request.QueryId is { } qid)
        {
            target = await db.Set<ApprovedQuery>().AsNoTracking().FirstOrDefaultAsync(q => q.Id == qid && q.ProjectId == projectId, ct)
                ?? throw new DomainException(ErrorKind.NotFound, "Approved query was not found.", "queryId");
            if (target.Status != QueryStatuses.Active) throw DomainException.Conflict("This query is archived; it cannot be changed.", "queryId");
        }
        var datasourceId = request.DatasourceId ?? target?.DatasourceId ?? throw DomainException.Invalid("datasourceId", "Choose the datasource the query reads.");
        var name = string.IsNullOrWhiteSpace(request.Name) ? target?.Name : request.Name;
        var valid = ApprovedQueryService.Validate(new ApprovedQueryRequest(datasourceId, name, request.Description ?? target?.Description, request.Sql,
            request.Parameters, request.Classifications, request.RowCap, request.TimeoutMs));
        var ds = await ApprovedQueryService.FindDatasourceAsync(db, projectId, datasourceId, ct);
        var analysis = await AnalyzeAsync(db, projectId, ds, valid.Sql, valid.Parameters, valid.Classifications, ct);
        var hash = ContentHash(valid.Sql, valid.Parameters);
        if (await db.Set<Suggestion>().AnyAsync(s => s.ProjectId == projectId && s.DatasourceId == ds.Id && s.ContentHash == hash && s.Status == SuggestionStatuses.Pending, ct))
            throw DomainException.Conflict("An identical suggestion (same SQL and parameters on this datasource) is already pending review.", "sql");

        var settings = await ApprovalPolicyService.SettingsAsync(db, projectId, ct);
        var now = clock.GetUtcNow();
        var s = new Suggestion
        {
            ProjectId = projectId, DatasourceId = ds.Id, QueryId = target?.Id, BaseVersion = target?.Version, Name = valid.Name,
            Description = valid.Description, Prompt = prompt, Justification = justification, Sql = valid.Sql,
            ParametersJson = CatalogJson.Write(valid.Parameters), ClassificationsJson = CatalogJson.Write(valid.Classifications),
            RowCap = request.RowCap, TimeoutMs = request.TimeoutMs, Status = SuggestionStatuses.Pending,
            SubmittedByType = submitter.Type, SubmittedBy = submitter.Id, SubmittedByName = Cut(submitter.Name, 256), SubmitterUserId = submitter.UserId,
            CreatedAt = now, UpdatedAt = now, ExpiresAt = now.AddHours(settings.PendingExpiryHours), RowVersion = 1,
        };
        SetAnalysis(s, analysis, hash);
        db.Add(s);
        db.Add(Event(s, "submitted", submitter.Type, submitter.Id, submitter.Name, justification.Length == 0 ? null : justification, now));
        var link = ReviewLink(projectId, s.Id);
        await NotifyReviewersAsync(db, s, analysis.Classifications, "suggestion.created", $"New suggestion: {s.Name}",
            $"{submitter.Name} suggested a query{(target is null ? "" : $" change to {target.Name}")}. Risks: {RiskSummary(analysis)}.", link, now, ct);
        Outbox.Add(db, projectId, OutboxEvents.SuggestionCreated, new
        {
            suggestionId = s.Id, name = s.Name, queryId = s.QueryId, submittedBy = s.SubmittedByName, risks = analysis.Risks.Select(r => r.Code), link,
        }, now, "suggestion", s.Id.ToString());
        try { await db.SaveChangesAsync(ct); }
        catch (DbUpdateException)
        {
            throw DomainException.Conflict("An identical suggestion (same SQL and parameters on this datasource) is already pending review.", "sql");
        }
        await RecordAsync(db, s, "suggestion.submitted", "submit", actor ?? await ActorOfAsync(db, projectId, submitter, ct), null,
            new { s.Name, queryId = s.QueryId, risks = analysis.Risks.Select(r => r.Code), classifications = analysis.Classifications, hash }, now, ct,
            prompt: s.Prompt, sql: s.Sql, tables: analysis.Tables, classifications: analysis.Classifications);
        return ToRow(s);
    }

    // ---------------------------------------------------------------- read

    public async Task<Page<SuggestionRow>> ListAsync(Guid projectId, SuggestionFilter filter, int skip, int take, CancellationToken ct = default)
    {
        take = Math.Clamp(take, 1, 200);
        skip = Math.Max(0, skip);
        await ExpireDueAsync(projectId, ct);
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var q = Filtered(db, projectId, filter);
        var total = await q.CountAsync(ct);
        var items = await q.OrderByDescending(s => s.CreatedAt).ThenByDescending(s => s.Id).Skip(skip).Take(take).ToListAsync(ct);
        return new Page<SuggestionRow>(items.Select(ToRow).ToList(), total, skip, take);
    }

    public async Task<SuggestionCounts> CountsAsync(Guid projectId, SuggestionFilter filter, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var counts = await Filtered(db, projectId, filter with { Status = null }).GroupBy(s => s.Status).Select(g => new { g.Key, N = g.Count() }).ToListAsync(ct);
        int N(string status) => counts.FirstOrDefault(c => c.Key == status)?.N ?? 0;
        return new(N(SuggestionStatuses.Pending), N(SuggestionStatuses.Approved), N(SuggestionStatuses.Rejected), N(SuggestionStatuses.Expired), N(SuggestionStatuses.Withdrawn));
    }

    private IQueryable<Suggestion> Filtered(PortalDbContext db, Guid projectId, SuggestionFilter f)
    {
        var q = db.Set<Suggestion>().AsNoTracking().Where(s => s.ProjectId == projectId);
        if (!string.IsNullOrEmpty(f.Status)) q = q.Where(s => s.Status == f.Status);
        if (f.DatasourceId is { } ds) q = q.Where(s => s.DatasourceId == ds);
        if (!string.IsNullOrWhiteSpace(f.Classification)) { var c = "," + f.Classification.Trim().ToLowerInvariant() + ","; q = q.Where(s => s.ReadClassifications.Contains(c)); }
        if (!string.IsNullOrWhiteSpace(f.Risk)) { var r = "," + f.Risk.Trim().ToLowerInvariant() + ","; q = q.Where(s => s.RiskFlags.Contains(r)); }
        if (!string.IsNullOrWhiteSpace(f.Suggester)) { var who = f.Suggester.Trim().ToLower(); q = q.Where(s => s.SubmittedByName.ToLower().Contains(who)); }
        if (f.SubmittedBy is { } by) q = q.Where(s => s.SubmittedBy == by || s.SubmitterUserId == by);
        if (f.OlderThanHours is { } hours) { var before = clock.GetUtcNow().AddHours(-hours); q = q.Where(s => s.CreatedAt <= before); }
        return q;
    }

    public async Task<SuggestionRow> GetAsync(Guid projectId, Guid suggestionId, CancellationToken ct = default)
    {
        await ExpireDueAsync(projectId, ct);
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        return ToRow(await FindAsync(db, projectId, suggestionId, ct, tracking: false));
    }

    public async Task<SuggestionDetail> GetDetailAsync(Guid projectId, Guid suggestionId, CancellationToken ct = default)
    {
        await ExpireDueAsync(projectId, ct);
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var s = await FindAsync(db, projectId, suggestionId, ct, tracking: false);
        var row = ToRow(s);
        var dsName = await db.Set<Datasource>().AsNoTracking().Where(d => d.Id == s.DatasourceId && d.ProjectId == projectId).Select(d => d.Name).FirstOrDefaultAsync(ct);
        var approvals = await db.Set<SuggestionApproval>().AsNoTracking().Where(a => a.SuggestionId == s.Id).OrderBy(a => a.CreatedAt).ToListAsync(ct);
        var ids = approvals.Select(a => a.ReviewerId).Distinct().ToList();
        var names = await db.Users.AsNoTracking().Where(u => ids.Contains(u.Id)).ToDictionaryAsync(u => u.Id, u => u.Email ?? u.Id.ToString(), ct);
        var rules = await ApprovalPolicyService.RulesForAsync(db, projectId, row.Analysis.Classifications, ct);
        var events = await db.Set<SuggestionEvent>().AsNoTracking().Where(e => e.SuggestionId == s.Id).OrderBy(e => e.CreatedAt).ThenBy(e => e.Id).ToListAsync(ct);
        ApprovedQueryRow? current = null;
        IReadOnlyList<ConsumerRow> consumers = [];
        var queryId = s.QueryId ?? s.ResultQueryId;
        if (queryId is { } qid && await db.Set<ApprovedQuery>().AsNoTracking().FirstOrDefaultAsync(q => q.Id == qid && q.ProjectId == projectId, ct) is { } q)
        {
            current = ApprovedQueryService.ToRow(q);
            consumers = await QueryHistoryService.ConsumersAsync(db, projectId, qid, ct);
        }
        return new SuggestionDetail(row, dsName,
            approvals.Select(a => new ApprovalRow(a.ReviewerId, names.GetValueOrDefault(a.ReviewerId, "(removed user)"), a.ReviewerRole, a.Reason, a.CreatedAt, a.ContentHash == s.ContentHash)).ToList(),
            ApprovalPolicyService.Progress(rules, approvals, s.ContentHash),
            events.Select(e => new SuggestionEventRow(e.Action, e.ActorType, e.ActorName, e.Reason, e.CreatedAt)).ToList(), current, consumers);
    }

    /// <summary>
    /// Whether <paramref name="userId"/> may approve or reject this suggestion, and why not: they must be an active
    /// member whose role an applicable policy names, and not the person who suggested it.
    /// </summary>
    public async Task<string?> WhyCannotReviewAsync(Guid projectId, Guid suggestionId, Guid userId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var s = await FindAsync(db, projectId, suggestionId, ct, tracking: false);
        try { await ReviewerRoleAsync(db, s, userId, ct); return null; }
        catch (DomainException e) when (e.Kind == ErrorKind.Forbidden) { return e.Message; }
    }

    /// <summary>The roles named by any policy of the project plus those holding suggestions.review: who reviews anything here.</summary>
    public async Task<bool> IsReviewerAsync(Guid projectId, Guid userId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var role = await db.ProjectMembers.AsNoTracking().Where(m => m.ProjectId == projectId && m.UserId == userId && !m.Suspended).Select(m => m.Role).FirstOrDefaultAsync(ct);
        if (role is null) return false;
        if (Permissions.RoleHas(role, Permissions.SuggestionsReview)) return true;
        var policies = await db.Set<ApprovalPolicy>().AsNoTracking().Where(p => p.ProjectId == projectId).Select(p => p.ReviewerRolesJson).ToListAsync(ct);
        return policies.Any(p => ApprovalPolicyService.ReadRoles(p).Contains(role));
    }

    // ---------------------------------------------------------------- decide

    public async Task<ApproveOutcome> ApproveAsync(Guid projectId, Guid suggestionId, ApproveRequest request, Guid reviewer, CancellationToken ct = default)
    {
        await RequireModuleAsync(projectId, ct);
        var reason = RequireText(request.Reason, "reason", "Give a reason for the approval.");
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var s = await FindAsync(db, projectId, suggestionId, ct);
        var now = clock.GetUtcNow();
        await RequirePendingAsync(db, s, now, ct);
        var role = await ReviewerRoleAsync(db, s, reviewer, ct);
        var reviewerName = await UserNameAsync(db, reviewer, ct);
        var expected = s.RowVersion;

        // An edit by the reviewer is checked by the engine like a submission; approvals given before it no longer count.
        var edited = false;
        if (request.Sql is not null || request.Parameters is not null)
        {
            var valid = ApprovedQueryService.Validate(new ApprovedQueryRequest(s.DatasourceId, s.Name, s.Description, request.Sql ?? s.Sql,
                request.Parameters ?? CatalogJson.ReadParameters(s.ParametersJson), CatalogJson.ReadStrings(s.ClassificationsJson), s.RowCap, s.TimeoutMs));
            var hash = ContentHash(valid.Sql, valid.Parameters);
            if (hash != s.ContentHash)
            {
                var ds = await FindDatasourceForApprovalAsync(db, s, ct);
                var analysis = await AnalyzeAsync(db, projectId, ds, valid.Sql, valid.Parameters, valid.Classifications, ct);
                s.Sql = valid.Sql;
                s.ParametersJson = CatalogJson.Write(valid.Parameters);
                SetAnalysis(s, analysis, hash);
                db.Add(Event(s, "edited", SubmitterTypes.User, reviewer, reviewerName, reason, now));
                edited = true;
            }
        }

        var approvals = await db.Set<SuggestionApproval>().AsNoTracking().Where(a => a.SuggestionId == s.Id).ToListAsync(ct);
        if (approvals.Any(a => a.ReviewerId == reviewer && a.ContentHash == s.ContentHash))
            throw DomainException.Conflict("You have already approved this version of the suggestion; another reviewer must add the next approval.");
        var mine = new SuggestionApproval { ProjectId = projectId, SuggestionId = s.Id, ReviewerId = reviewer, ReviewerRole = role, ContentHash = s.ContentHash, Reason = reason, CreatedAt = now };
        db.Add(mine);
        db.Add(Event(s, "approval", SubmitterTypes.User, reviewer, reviewerName, reason, now, s.ContentHash));
        var rules = await ApprovalPolicyService.RulesForAsync(db, projectId, ReadDelimited(s.ReadClassifications), ct);
        var progress = ApprovalPolicyService.Progress(rules, [.. approvals, mine], s.ContentHash);

        ApprovedQuery? query = null;
        if (progress.All(p => p.Met))
        {
            query = await StageApprovedQueryAsync(db, s, reviewer, reason, request.ConfirmConsumers, ct);
            s.Status = SuggestionStatuses.Approved;
            s.DecidedAt = now;
            s.DecidedBy = reviewer;
            s.DecisionReason = reason;
            s.ResultQueryId = query.Id;
            s.ResultVersion = query.Version;
            db.Add(Event(s, "approved", SubmitterTypes.User, reviewer, reviewerName, reason, now, s.ContentHash));
            NotifySuggester(db, s, "suggestion.approved", $"Approved: {s.Name}", $"{reviewerName}: {reason}", $"/p/{projectId}/suggestions/{s.Id}", now, reviewer);
            Outbox.Add(db, projectId, OutboxEvents.SuggestionApproved, new
            {
                suggestionId = s.Id, name = s.Name, queryId = query.Id, version = query.Version, approvedBy = reviewerName, reason,
            }, now, "suggestion", s.Id.ToString());
        }
        s.UpdatedAt = now;
        s.RowVersion = expected + 1;
        await SaveTransitionAsync(db, s, expected, ct);

        var actor = await PortalAudit.UserAsync(db, projectId, reviewer, ct);
        if (edited)
            await RecordAsync(db, s, "suggestion.edited", "edit", actor, null, new { s.Name, hash = s.ContentHash, reason }, now, ct, sql: s.Sql);
        await RecordAsync(db, s, "suggestion.approval_added", "approve", actor, null,
            new { s.Name, hash = s.ContentHash, reason, quorum = progress.Select(p => new { p.Rule.Classification, p.Have, p.Rule.Required, p.Met }) }, now, ct);
        if (query is not null)
            await RecordAsync(db, s, "suggestion.approved", "approved", actor, new { status = SuggestionStatuses.Pending },
                new { status = s.Status, queryId = query.Id, version = query.Version, reason }, now, ct, sql: s.Sql);
        return new ApproveOutcome(ToRow(s), progress, query is null ? null : ApprovedQueryService.ToRow(query));
    }

    public async Task<SuggestionRow> RejectAsync(Guid projectId, Guid suggestionId, string? notes, Guid reviewer, CancellationToken ct = default)
    {
        await RequireModuleAsync(projectId, ct);
        var reason = RequireText(notes, "notes", "Say why the suggestion is rejected, so its author can improve it.");
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var s = await FindAsync(db, projectId, suggestionId, ct);
        var now = clock.GetUtcNow();
        await RequirePendingAsync(db, s, now, ct);
        await ReviewerRoleAsync(db, s, reviewer, ct);
        var name = await UserNameAsync(db, reviewer, ct);
        var expected = s.RowVersion;
        s.Status = SuggestionStatuses.Rejected;
        s.DecidedAt = now;
        s.DecidedBy = reviewer;
        s.DecisionReason = reason;
        s.UpdatedAt = now;
        s.RowVersion = expected + 1;
        db.Add(Event(s, "rejected", SubmitterTypes.User, reviewer, name, reason, now));
        NotifySuggester(db, s, "suggestion.rejected", $"Rejected: {s.Name}", $"{name}: {reason}", $"/p/{projectId}/suggestions/{s.Id}", now, reviewer);
        Outbox.Add(db, projectId, OutboxEvents.SuggestionRejected, new { suggestionId = s.Id, name = s.Name, rejectedBy = name, notes = reason }, now, "suggestion", s.Id.ToString());
        await SaveTransitionAsync(db, s, expected, ct);
        await RecordAsync(db, s, "suggestion.rejected", "reject", await PortalAudit.UserAsync(db, projectId, reviewer, ct),
            new { status = SuggestionStatuses.Pending }, new { status = s.Status, notes = reason }, now, ct);
        return ToRow(s);
    }

    /// <summary>The person who suggested it takes it back (for an agent's suggestion: the key's creator).</summary>
    public async Task<SuggestionRow> WithdrawAsync(Guid projectId, Guid suggestionId, string? reason, Guid user, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var s = await FindAsync(db, projectId, suggestionId, ct);
        if (s.SubmittedBy != user && s.SubmitterUserId != user) throw DomainException.Forbidden("Only the person who suggested this query can withdraw it.");
        var now = clock.GetUtcNow();
        await RequirePendingAsync(db, s, now, ct);
        var expected = s.RowVersion;
        s.Status = SuggestionStatuses.Withdrawn;
        s.DecidedAt = now;
        s.DecidedBy = user;
        s.DecisionReason = string.IsNullOrWhiteSpace(reason) ? null : Cut(reason.Trim(), GovernanceDefaults.MaxReason);
        s.UpdatedAt = now;
        s.RowVersion = expected + 1;
        db.Add(Event(s, "withdrawn", SubmitterTypes.User, user, await UserNameAsync(db, user, ct), s.DecisionReason, now));
        await SaveTransitionAsync(db, s, expected, ct);
        await RecordAsync(db, s, "suggestion.withdrawn", "withdraw", await PortalAudit.UserAsync(db, projectId, user, ct),
            new { status = SuggestionStatuses.Pending }, new { status = s.Status, reason = s.DecisionReason }, now, ct);
        return ToRow(s);
    }

    /// <summary>
    /// Expires pending suggestions whose time is up (all projects, or one). Safe in several workers at once: each row
    /// is claimed by its row version, so a suggestion expires once and its suggester is told once.
    /// </summary>
    public async Task<int> ExpireDueAsync(Guid? projectId = null, CancellationToken ct = default)
    {
        var now = clock.GetUtcNow();
        var expired = 0;
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var q = db.Set<Suggestion>().Where(s => s.Status == SuggestionStatuses.Pending && s.ExpiresAt <= now);
        if (projectId is { } pid) q = q.Where(s => s.ProjectId == pid);
        var due = await q.OrderBy(s => s.ExpiresAt).Take(500).ToListAsync(ct);
        foreach (var s in due)
        {
            var expected = s.RowVersion;
            s.Status = SuggestionStatuses.Expired;
            s.DecidedAt = now;
            s.UpdatedAt = now;
            s.DecisionReason = $"Not approved within its review period (it expired at {s.ExpiresAt:yyyy-MM-dd HH:mm} UTC).";
            s.RowVersion = expected + 1;
            db.Entry(s).Property(x => x.RowVersion).OriginalValue = expected;
            db.Add(Event(s, "expired", "system", null, "portal", s.DecisionReason, now));
            NotifySuggester(db, s, "suggestion.expired", $"Expired: {s.Name}", s.DecisionReason, $"/p/{s.ProjectId}/suggestions/{s.Id}", now);
            try
            {
                await db.SaveChangesAsync(ct);
                expired++;
            }
            catch (DbUpdateConcurrencyException)
            {
                // Another worker or a reviewer got there first; its outcome stands.
                db.ChangeTracker.Clear();
                continue;
            }
            await RecordAsync(db, s, "suggestion.expired", "expire", AuditActor.System, new { status = SuggestionStatuses.Pending }, new { status = s.Status }, now, ct);
        }
        return expired;
    }

    // ---------------------------------------------------------------- test run

    /// <summary>
    /// Runs the suggestion for its reviewer: the engine executes it read-only with a small row cap and the reviewer's
    /// masks applied, and the run is audited as a governance event (its rows never leave unmasked).
    /// </summary>
    public async Task<TestRunResult> TestRunAsync(Guid projectId, Guid suggestionId, IReadOnlyDictionary<string, string?> values, Guid reviewer, CancellationToken ct = default)
    {
        await RequireModuleAsync(projectId, ct);
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var s = await FindAsync(db, projectId, suggestionId, ct, tracking: false);
        var role = await db.ProjectMembers.AsNoTracking().Where(m => m.ProjectId == projectId && m.UserId == reviewer && !m.Suspended).Select(m => m.Role).FirstOrDefaultAsync(ct);
        if (role is null || (!Permissions.RoleHas(role, Permissions.SuggestionsReview) && await WhyCannotReviewAsync(projectId, suggestionId, reviewer, ct) is { } why))
            throw DomainException.Forbidden("Only reviewers of this suggestion can test-run it.");
        var ds = await FindDatasourceForApprovalAsync(db, s, ct);
        var definitions = CatalogJson.ReadParameters(s.ParametersJson);
        var validation = ParameterValidator.Validate(definitions, values);
        if (!validation.IsValid) throw DomainException.Invalid(validation.Errors[0].Field, validation.Errors[0].Message);
        if (InjectionScreener.ScreenAll(validation.Values) is { Count: > 0 } findings)
            throw DomainException.Invalid(findings[0].Field, $"Blocked: {findings[0].Reason}");
        var rowCap = Math.Min(TestRunRowCap, s.RowCap);
        var timeout = TimeSpan.FromMilliseconds(Math.Min(s.TimeoutMs, TestRunTimeout.TotalMilliseconds));
        QueryResult result;
        try { result = await datasources.EngineFor(ds).ExecuteAsync(s.Sql, validation.Values, rowCap, timeout, ct); }
        catch (DatasourceException e) { throw new DomainException(ErrorKind.Validation, $"The datasource could not run it: {e.Message}", "sql"); }
        catch (NpgsqlException e) when (e is not PostgresException) { throw new DomainException(ErrorKind.Unavailable, $"The datasource '{ds.Name}' cannot be reached: {e.Message}", "datasourceId"); }
        var masks = await db.Set<ColumnMask>().AsNoTracking().Where(m => m.ProjectId == projectId && m.DatasourceId == ds.Id).ToListAsync(ct);
        var rules = masks.Select(m => new MaskRule(m.TableName, m.ColumnName, ColumnMaskService.ParseMaskType(m.MaskType),
            JsonSerializer.Deserialize<List<string>>(m.VisibleToRolesJson), m.ShowFirst, m.ShowLast)).ToList();
        var masked = new MaskingEngine(rules, gatewayOptions.MaskingHashKey).Apply(result, role);
        var duration = (long)result.Duration.TotalMilliseconds;
        await audit.RecordAsync(new AuditEventDraft
        {
            ProjectId = projectId, EventType = "suggestion.test_run", Actor = await PortalAudit.UserAsync(db, projectId, reviewer, ct),
            ResourceType = "suggestion", ResourceId = s.Id.ToString(), Action = "test_run", SqlText = s.Sql, TablesAccessed = result.Analysis.TablesRead,
            RowsReturned = masked.Rows.Count, DurationMs = duration, DataClassifications = ReadDelimited(s.ReadClassifications),
            Details = PortalAudit.Json(new
            {
                suggestionId = s.Id, hash = s.ContentHash, role, rowCap, truncated = masked.Truncated,
                masking = masked.Masking.Where(m => m.Mask is not null).Select(m => new { column = m.Column, origin = m.Origin, mask = ColumnMaskService.MaskTypeName(m.Mask!.Value) }),
            }),
            OccurredAt = clock.GetUtcNow(),
        }, ct);
        var columns = masked.Masking.Select(m => new GatewayColumn(m.Column, m.Mask is not null, m.Mask is { } t ? ColumnMaskService.MaskTypeName(t) : null)).ToList();
        return new TestRunResult(columns, masked.Rows, masked.Truncated, duration, rowCap);
    }

    // ---------------------------------------------------------------- helpers

    private async Task<ApprovedQuery> StageApprovedQueryAsync(PortalDbContext db, Suggestion s, Guid reviewer, string reason, bool confirmConsumers, CancellationToken ct)
    {
        await FindDatasourceForApprovalAsync(db, s, ct);
        var request = new ApprovedQueryRequest(s.DatasourceId, s.Name, s.Description, s.Sql, CatalogJson.ReadParameters(s.ParametersJson),
            CatalogJson.ReadStrings(s.ClassificationsJson), s.RowCap, s.TimeoutMs);
        if (s.QueryId is { } qid)
        {
            if (!await db.Set<ApprovedQuery>().AnyAsync(q => q.Id == qid && q.ProjectId == s.ProjectId, ct))
                throw DomainException.Conflict("The approved query this suggestion changes has been deleted; the suggestion cannot be approved. Reject it instead.");
            var consumers = await QueryHistoryService.ConsumersAsync(db, s.ProjectId, qid, ct);
            if (consumers.Count > 0 && !confirmConsumers)
                throw DomainException.Conflict($"This query is used by {QueryHistoryService.Describe(consumers)}. Confirm that they may change: {string.Join(", ", consumers.Select(c => c.Name))}.", "confirmConsumers");
            try { return await queries.StageUpdateAsync(db, s.ProjectId, qid, request, reviewer, reason, s.Id, QueryChanges.Updated, null, ct); }
            catch (DomainException e) when (e.Kind == ErrorKind.NotFound && e.Field is null)
            {
                throw DomainException.Conflict("The approved query this suggestion changes has been deleted; the suggestion cannot be approved. Reject it instead.");
            }
        }
        var q = await queries.StageCreateAsync(db, s.ProjectId, request, reviewer, reason, s.Id, ct);
        // Permissions default from the project's settings, plus the suggester's own role so the agent can run what it asked for.
        var settings = await ApprovalPolicyService.SettingsAsync(db, s.ProjectId, ct);
        var roles = ApprovalPolicyService.ReadRoles(settings.DefaultGrantRolesJson).ToList();
        var suggesterRole = await SuggesterRoleAsync(db, s, ct);
        if (suggesterRole is not null && !roles.Contains(suggesterRole)) roles.Add(suggesterRole);
        foreach (var role in roles)
            db.Add(new QueryPermission
            {
                ProjectId = s.ProjectId, QueryId = q.Id, PrincipalType = PrincipalTypes.Role, Principal = role, CanView = true, CanExecute = true,
                CanEdit = false, UpdatedBy = reviewer, UpdatedAt = q.CreatedAt,
            });
        return q;
    }

    private static async Task<string?> SuggesterRoleAsync(PortalDbContext db, Suggestion s, CancellationToken ct) => s.SubmittedByType == SubmitterTypes.ApiKey
        ? await db.ApiKeys.AsNoTracking().Where(k => k.Id == s.SubmittedBy && k.ProjectId == s.ProjectId).Select(k => k.Role).FirstOrDefaultAsync(ct)
        : await db.ProjectMembers.AsNoTracking().Where(m => m.ProjectId == s.ProjectId && m.UserId == s.SubmittedBy).Select(m => m.Role).FirstOrDefaultAsync(ct);

    private static async Task<Datasource> FindDatasourceForApprovalAsync(PortalDbContext db, Suggestion s, CancellationToken ct) =>
        await db.Set<Datasource>().AsNoTracking().FirstOrDefaultAsync(d => d.Id == s.DatasourceId && d.ProjectId == s.ProjectId, ct)
        ?? throw DomainException.Conflict("The datasource of this suggestion has been deleted; it cannot be run or approved. Reject it instead.", "datasourceId");

    /// <summary>The reviewer's role if they may decide this suggestion; Forbidden (with the reason) otherwise.</summary>
    private static async Task<string> ReviewerRoleAsync(PortalDbContext db, Suggestion s, Guid reviewer, CancellationToken ct)
    {
        // An agent's suggestion is the agent's: the admin who created its key may still review it (admins create every key).
        if (reviewer == s.SubmittedBy)
            throw DomainException.Forbidden("You suggested this query; someone else must review it.");
        var role = await db.ProjectMembers.AsNoTracking().Where(m => m.ProjectId == s.ProjectId && m.UserId == reviewer && !m.Suspended)
            .Select(m => m.Role).FirstOrDefaultAsync(ct) ?? throw DomainException.Forbidden("Only members of this project can review its suggestions.");
        var rules = await ApprovalPolicyService.RulesForAsync(db, s.ProjectId, ReadDelimited(s.ReadClassifications), ct);
        if (!rules.Any(r => r.Roles.Contains(role)))
            throw DomainException.Forbidden($"The approval policy for this suggestion accepts approvals from {string.Join(", ", rules.SelectMany(r => r.Roles).Distinct())}; your role is {role}.");
        return role;
    }

    private async Task RequirePendingAsync(PortalDbContext db, Suggestion s, DateTimeOffset now, CancellationToken ct)
    {
        if (s.Status == SuggestionStatuses.Pending && s.ExpiresAt <= now)
        {
            await ExpireDueAsync(s.ProjectId, ct);
            throw DomainException.Conflict($"This suggestion expired at {s.ExpiresAt:yyyy-MM-dd HH:mm} UTC; it can no longer be decided.");
        }
        if (s.Status != SuggestionStatuses.Pending)
            throw DomainException.Conflict($"This suggestion is already {s.Status}; it can no longer be decided.");
    }

    private async Task RequireModuleAsync(Guid projectId, CancellationToken ct)
    {
        if (!await suite.IsModuleEnabledAsync(projectId, Modules.Governance, ct))
            throw DomainException.Forbidden("The governance module is not enabled for this project.");
    }

    private async Task SaveTransitionAsync(PortalDbContext db, Suggestion s, int expected, CancellationToken ct)
    {
        db.Entry(s).Property(x => x.RowVersion).OriginalValue = expected;
        // An approval writes the approved query, its version and default grants in this save: the gateway's next
        // call must see them, so its lookup cache is told once the save has committed.
        try { await db.SaveChangesAsync(ct); queries.Committed(s.ProjectId); }
        catch (DbUpdateConcurrencyException)
        {
            throw DomainException.Conflict("Another reviewer acted on this suggestion at the same moment; reload it to see the outcome.");
        }
        catch (DbUpdateException)
        {
            throw DomainException.Conflict("The change could not be saved: an approved query with this name, or an identical pending suggestion, already exists.", "name");
        }
    }

    /// <summary>Asks the engine what the SQL reads, then classifies those columns by their masks and flags risks.</summary>
    private async Task<SuggestionAnalysis> AnalyzeAsync(PortalDbContext db, Guid projectId, Datasource ds, string sql, IReadOnlyList<QueryParameter> parameters,
        IReadOnlyList<string> declared, CancellationToken ct)
    {
        var statement = await queries.AnalyzeAsync(ds, sql, parameters, ct);
        var masks = await db.Set<ColumnMask>().AsNoTracking().Where(m => m.ProjectId == projectId && m.DatasourceId == ds.Id).ToListAsync(ct);
        ColumnMask? MaskOf(ColumnRead c) => masks.FirstOrDefault(m => string.Equals(m.TableName, c.Table, StringComparison.OrdinalIgnoreCase)
            && string.Equals(m.ColumnName, c.Column, StringComparison.OrdinalIgnoreCase));
        var columns = statement.ColumnsRead.Distinct().Select(c => MaskOf(c) is { } m
            ? new SuggestionColumn(c.Table, c.Column, m.Classification, m.MaskType)
            : new SuggestionColumn(c.Table, c.Column, null, null)).ToList();
        // A "*" read (PostgreSQL reports whole-row reads so) touches every masked column of that table.
        foreach (var star in statement.ColumnsRead.Where(c => c.Column == "*"))
            foreach (var m in masks.Where(m => string.Equals(m.TableName, star.Table, StringComparison.OrdinalIgnoreCase)))
                if (!columns.Any(c => c.Table == m.TableName && c.Column == m.ColumnName)) columns.Add(new(m.TableName, m.ColumnName, m.Classification, m.MaskType));
        var classes = columns.Where(c => c.Classification is not null).Select(c => c.Classification!).Concat(declared).Distinct().OrderBy(c => c).ToList();

        var tokens = SqlText.Significant(sql);
        var risks = new List<RiskFlag>();
        var pii = columns.Where(c => c.Classification == Classifications.Pii).Select(c => $"{c.Table}.{c.Column}").ToList();
        if (pii.Count > 0 || declared.Contains(Classifications.Pii))
            risks.Add(new(RiskCodes.PiiColumn, pii.Count > 0 ? $"Reads PII: {string.Join(", ", pii)}" : "Declared as reading PII"));
        var fin = columns.Where(c => c.Classification == Classifications.Financial).Select(c => $"{c.Table}.{c.Column}").ToList();
        if (fin.Count > 0 || declared.Contains(Classifications.Financial))
            risks.Add(new(RiskCodes.FinancialColumn, fin.Count > 0 ? $"Reads financial data: {string.Join(", ", fin)}" : "Declared as reading financial data"));
        if (SqlText.SelectsStar(tokens)) risks.Add(new(RiskCodes.SelectStar, "SELECT * returns every column, including any added to the table later"));
        if (!SqlText.HasRowFilter(tokens) && statement.TablesRead.Count > 0)
            risks.Add(new(RiskCodes.NoRowFilter, $"No WHERE or LIMIT: reads every row of {string.Join(", ", statement.TablesRead)} (up to the row cap)"));
        if (SqlText.HasCrossJoin(tokens) || (statement.TablesRead.Count > 1 && !SqlText.HasKeyword(tokens, "where") && !SqlText.HasKeyword(tokens, "on") && !SqlText.HasKeyword(tokens, "using")))
            risks.Add(new(RiskCodes.CrossJoin, "Combines every row of one table with every row of another (cross join)"));
        return new SuggestionAnalysis(statement.TablesRead, columns, classes, risks);
    }

    private static void SetAnalysis(Suggestion s, SuggestionAnalysis analysis, string hash)
    {
        s.AnalysisJson = JsonSerializer.Serialize(analysis, CatalogJson.Options);
        s.RiskFlags = Delimited(analysis.Risks.Select(r => r.Code));
        s.ReadClassifications = Cut(Delimited(analysis.Classifications), 500);
        s.ContentHash = hash;
    }

    /// <summary>SHA-256 over the exact SQL and the parameter definitions as stored: any change gives another hash.</summary>
    public static string ContentHash(string sql, IReadOnlyList<QueryParameter> parameters) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(sql + "\n\u0000\n" + CatalogJson.Write(parameters))));

    private static string Delimited(IEnumerable<string> items) { var list = items.ToList(); return list.Count == 0 ? "" : "," + string.Join(",", list) + ","; }

    internal static IReadOnlyList<string> ReadDelimited(string s) => s.Split(',', StringSplitOptions.RemoveEmptyEntries);

    private static string RiskSummary(SuggestionAnalysis a) => a.Risks.Count == 0 ? "none flagged" : string.Join(", ", a.Risks.Select(r => RiskCodes.Label(r.Code)));

    private static string ReviewLink(Guid projectId, Guid id) => $"/p/{projectId}/approvals/{id}";

    /// <summary>Everyone who may review: holders of suggestions.review and members of roles an applicable policy names.</summary>
    private static async Task NotifyReviewersAsync(PortalDbContext db, Suggestion s, IReadOnlyList<string> classes, string kind, string title, string body, string link,
        DateTimeOffset now, CancellationToken ct)
    {
        var rules = await ApprovalPolicyService.RulesForAsync(db, s.ProjectId, classes, ct);
        var roles = Roles.All.Where(r => Permissions.RoleHas(r, Permissions.SuggestionsReview)).Concat(rules.SelectMany(r => r.Roles)).Distinct().ToList();
        var users = await db.ProjectMembers.AsNoTracking().Where(m => m.ProjectId == s.ProjectId && !m.Suspended && roles.Contains(m.Role)).Select(m => m.UserId).ToListAsync(ct);
        foreach (var u in users.Where(u => u != s.SubmittedBy))
            NotificationService.AddForUser(db, s.ProjectId, u, kind, title, body, link, now);
    }

    private static void NotifySuggester(PortalDbContext db, Suggestion s, string kind, string title, string? body, string link, DateTimeOffset now, Guid? actor = null)
    {
        if (s.SubmitterUserId is { } user && user != actor) NotificationService.AddForUser(db, s.ProjectId, user, kind, title, body, link, now);
    }

    private static SuggestionEvent Event(Suggestion s, string action, string actorType, Guid? actorId, string? actorName, string? reason, DateTimeOffset now, string? hash = null) => new()
    {
        ProjectId = s.ProjectId, SuggestionId = s.Id, Action = action, ActorType = actorType, ActorId = actorId, ActorName = actorName is null ? null : Cut(actorName, 256),
        Reason = reason is null ? null : Cut(reason, GovernanceDefaults.MaxReason), ContentHash = hash, CreatedAt = now,
    };

    private static string RequireText(string? text, string field, string message)
    {
        var t = text?.Trim();
        if (string.IsNullOrEmpty(t)) throw DomainException.Invalid(field, message);
        if (t.Length > GovernanceDefaults.MaxReason) throw DomainException.Invalid(field, $"At most {GovernanceDefaults.MaxReason} characters.");
        return t;
    }

    private static async Task<string> UserNameAsync(PortalDbContext db, Guid user, CancellationToken ct) =>
        await db.Users.AsNoTracking().Where(u => u.Id == user).Select(u => u.Email).FirstOrDefaultAsync(ct) ?? user.ToString();

    private static async Task<AuditActor> ActorOfAsync(PortalDbContext db, Guid projectId, Submitter submitter, CancellationToken ct) =>
        submitter.Type == SubmitterTypes.ApiKey
            ? new AuditActor("api_key", submitter.Id.ToString(), Role: submitter.Role)
            : await PortalAudit.UserAsync(db, projectId, submitter.Id, ct);

    private async Task RecordAsync(PortalDbContext db, Suggestion s, string eventType, string action, AuditActor actor, object? before, object after, DateTimeOffset now,
        CancellationToken ct, string? prompt = null, string? sql = null, IReadOnlyList<string>? tables = null, IReadOnlyList<string>? classifications = null)
    {
        _ = db;
        await audit.RecordAsync(new AuditEventDraft
        {
            ProjectId = s.ProjectId, EventType = eventType, Actor = actor, ResourceType = "suggestion", ResourceId = s.Id.ToString(), Action = action,
            BeforeState = PortalAudit.Json(before), AfterState = PortalAudit.Json(after), Prompt = prompt, SqlText = sql, TablesAccessed = tables,
            DataClassifications = classifications ?? ReadDelimited(s.ReadClassifications), OccurredAt = now,
            Details = PortalAudit.Json(new { suggestionId = s.Id, s.Name, status = s.Status, queryId = s.ResultQueryId ?? s.QueryId, version = s.ResultVersion }),
        }, ct);
        log.LogInformation("Suggestion {SuggestionId} {Action} in project {ProjectId}", s.Id, action, s.ProjectId);
    }

    internal static async Task<Suggestion> FindAsync(PortalDbContext db, Guid projectId, Guid id, CancellationToken ct, bool tracking = true)
    {
        var q = db.Set<Suggestion>().Where(s => s.Id == id && s.ProjectId == projectId);
        if (!tracking) q = q.AsNoTracking();
        return await q.FirstOrDefaultAsync(ct) ?? throw DomainException.NotFound("Suggestion");
    }

    private static string Cut(string s, int max) => s.Length <= max ? s : s[..(max - 1)] + "…";

    public static SuggestionRow ToRow(Suggestion s) => new(
        s.Id, s.DatasourceId, s.QueryId, s.BaseVersion, s.Name, s.Description, s.Prompt, s.Justification, s.Sql, CatalogJson.ReadParameters(s.ParametersJson),
        CatalogJson.ReadStrings(s.ClassificationsJson), JsonSerializer.Deserialize<SuggestionAnalysis>(s.AnalysisJson, CatalogJson.Options) ?? SuggestionAnalysis.Empty,
        s.RowCap, s.TimeoutMs, s.ContentHash, s.Status, s.SubmittedByType, s.SubmittedBy, s.SubmittedByName, s.CreatedAt, s.UpdatedAt, s.ExpiresAt,
        s.DecidedAt, s.DecisionReason, s.ResultQueryId, s.ResultVersion);
}
