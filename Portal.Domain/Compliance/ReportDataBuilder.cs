using System.Data.Common;
using System.Globalization;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Portal.Domain.Audit;
using Portal.Domain.Persistence;

namespace Portal.Domain.Compliance;

/// <summary>
/// What the retention policy says about a period: the instant before which events have been archived out of the live
/// trail, and the policies in force (implemented over retention policies and archive manifests by
/// <see cref="Retention.RetentionHorizon"/>).
/// </summary>
public interface IRetentionHorizon
{
    /// <summary>The oldest instant still in the live trail, or null when nothing has been archived.</summary>
    Task<DateTimeOffset?> ArchivedBeforeAsync(Guid projectId, CancellationToken ct);
    /// <summary>Human-readable retention settings in force, for the GDPR report.</summary>
    Task<IReadOnlyList<string>> DescribeAsync(Guid projectId, CancellationToken ct);
}

/// <summary>
/// Gathers a report's figures and rows from the database (see <see cref="ReportQueries"/>) and verifies the project's
/// audit chain. Lists shown in the PDF are capped at <see cref="MaxRows"/> rows each; the CSV holds every event.
/// </summary>
public sealed class ReportDataBuilder(IDbContextFactory<PortalDbContext> dbFactory, PortalDatabase database, AuditVerifier verifier, IRetentionHorizon retention)
{
    public const int MaxRows = 1000;
    public const string NoneInPeriod = "None in period.";

    /// <summary>Classification labels treated as protected health information.</summary>
    public static readonly string[] PhiLabels = ["phi", "custom:phi", "health", "custom:health"];

    public const int BusinessHourStart = 7, BusinessHourEnd = 19;

    public async Task<ReportData> BuildAsync(ComplianceReport report, ReportParameters p, string generatedBy, DateTimeOffset generatedAt,
        Func<int, string, Task> progress, CancellationToken ct)
    {
        // The chain verification re-hashes the project's whole chain and does not depend on anything below: it runs
        // from the start, on its own connection and thread, alongside the aggregation. Its result is awaited (never
        // skipped or cached) before the report is assembled.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        // Without the file map: a report has a memory budget (300 MB for a million events), and mapped pages of a
        // large SQLite file would count against it although they are only page cache.
        var verification = Task.Run(() => verifier.WithoutFileMap().VerifyAsync(report.ProjectId, stop.Token), stop.Token);
        Task<ReportTotals>? totalsTask = null;
        try
        {
            await using var q = await ReportQueries.OpenAsync(database, report.ProjectId, p.From, p.To, report.MaxSeq, p, ct);
            // The period's single aggregation pass, on a second connection and thread of its own.
            totalsTask = Task.Run(async () =>
            {
                await using var fold = await q.OpenSiblingAsync(stop.Token);
                return await ReportTotals.LoadAsync(fold, stop.Token);
            }, stop.Token);
            await progress(10, "Counting events and verifying the audit chain");
            return await BuildAsync(report, p, generatedBy, generatedAt, q, totalsTask, verification, progress, ct);
        }
        catch
        {
            await stop.CancelAsync();
            try { await verification; } catch (Exception) { /* the first failure is the one reported */ }
            if (totalsTask is not null) try { await totalsTask; } catch (Exception) { /* likewise */ }
            throw;
        }
    }

    private async Task<ReportData> BuildAsync(ComplianceReport report, ReportParameters p, string generatedBy, DateTimeOffset generatedAt,
        ReportQueries q, Task<ReportTotals> totalsTask, Task<AuditVerification> verification, Func<int, string, Task> progress, CancellationToken ct)
    {
        await using var ef = await dbFactory.CreateDbContextAsync(ct);
        var projectName = await ef.Projects.AsNoTracking().Where(x => x.Id == report.ProjectId).Select(x => x.Name).FirstOrDefaultAsync(ct) ?? "(deleted project)";
        var keys = await ef.ApiKeys.AsNoTracking().Where(k => k.ProjectId == report.ProjectId).OrderBy(k => k.CreatedAt).ToListAsync(ct);
        var keyNames = keys.ToDictionary(k => k.Id.ToString(), k => $"key \"{k.Name}\" ({k.Prefix}…)", StringComparer.OrdinalIgnoreCase);
        var queryInfo = (await ef.Set<Gateway.Catalog.ApprovedQuery>().AsNoTracking().Where(q => q.ProjectId == report.ProjectId)
            .Select(q => new { q.Id, q.Name, q.Description }).ToListAsync(ct))
            .ToDictionary(q => q.Id.ToString(), q => (q.Name, q.Description), StringComparer.OrdinalIgnoreCase);
        // Sections read from other tables are gathered while the aggregation runs.
        var members = p.Type == ReportTypes.Soc2 ? await MembersSection(ef, report.ProjectId, ct) : null;
        var roleChanges = p.Type == ReportTypes.Soc2 ? await RoleChangesSection(ef, report.ProjectId, p, ct) : null;
        var retentionNotes = p.Type == ReportTypes.Gdpr ? await retention.DescribeAsync(report.ProjectId, ct) : null;
        var archivedBefore = await retention.ArchivedBeforeAsync(report.ProjectId, ct);

        string Principal(string? type, string? id, string? email) =>
            email is { Length: > 0 } ? email
            : type == "api_key" && id is not null && keyNames.TryGetValue(id, out var n) ? n
            : type == "api_key" ? $"API key {id ?? "(unknown)"}"
            : id is { Length: > 0 } ? $"{type} {id}" : type ?? "unknown";

        var totals = await totalsTask;
        var days = new List<DayActivity>();
        for (var d = DateOnly.FromDateTime(p.From.UtcDateTime); d.ToDateTime(TimeOnly.MinValue) < p.To.UtcDateTime; d = d.AddDays(1))
            days.Add(totals.Daily.TryGetValue(d, out var v) ? new DayActivity(d, v.Ok, v.Failed) : new DayActivity(d, 0, 0));
        var reasons = new Dictionary<string, long>();
        foreach (var (k, t) in totals.FailuresBy)
        {
            var reason = ReportTotals.Reason(k);
            reasons[reason] = reasons.GetValueOrDefault(reason) + t.Count;
        }
        var byReason = reasons.OrderByDescending(x => x.Value).ThenBy(x => x.Key, StringComparer.Ordinal).Select(x => new ReasonCount(x.Key, x.Value)).ToList();
        long total = totals.Total;

        var sections = new List<ReportSection>();
        var notes = new List<string>();
        var headlines = new List<Headline>
        {
            new("Events in period", N(total)),
            new("Queries executed", N(totals.Executed)),
            new("Queries denied", N(totals.Denied)),
            new("API keys rejected", N(totals.KeyRejected)),
            new("Failed or refused actions", N(totals.Failures)),
            new("Configuration changes", N(totals.Changes)),
        };

        await progress(40, "Collecting report sections");
        switch (p.Type)
        {
            case ReportTypes.Soc2:
            {
                headlines.Add(new("Alert-level events", N(totals.AlertLevel)));
                sections.Add(members!);
                sections.Add(roleChanges!);
                sections.Add(KeysSection(keys, p.To));
                sections.Add(ExecutionsByPrincipal(totals, Principal, "Query executions by principal and classification",
                    "Successful gateway executions in the period, grouped by who ran them and the classifications of the data read."));
                sections.Add(DenialsByPrincipal(totals, Principal));
                // The totals name the event types present, so each list reads only its own types through the
                // (project_id, event_type, occurred_at) index instead of filtering every event of the period.
                var suggestionTypes = totals.Types.Where(x => x.Value.Suggestion).Select(x => x.Key).ToList();
                var changeTypes = totals.Types.Where(x => !x.Value.Suggestion && !x.Value.Alert && x.Value.WithState > 0).Select(x => x.Key).ToList();
                var alertTypes = totals.Types.Where(x => x.Value.Alert).Select(x => x.Key).ToList();
                sections.Add(await EventList(q, Principal, "Approvals given",
                    "Governance decisions recorded in the trail (suggestion.* events): who approved or rejected what.",
                    "event_type LIKE 'suggestion.%'", [], false, ct,
                    only: (suggestionTypes, totals.Types.Where(x => x.Value.Suggestion).Sum(x => x.Value.Count))));
                sections.Add(await ConfigChanges(q, Principal, ct, (changeTypes, totals.Types.Where(x => !x.Value.Suggestion && !x.Value.Alert).Sum(x => x.Value.WithState))));
                sections.Add(await AlertsSection(q, ct, alertTypes));
                sections.Add(await SignInsSection(q, p, ct));
                break;
            }
            case ReportTypes.Gdpr:
                sections.Add(await ExecutionsByQuery(q, Principal, queryInfo, ["pii", "custom:pii"], "Access to personal data",
                    "Gateway calls whose query is classified pii, by principal and purpose (the approved query's description).", ct));
                sections.Add(await ExportsSection(q, Principal, ct));
                sections.Add(await SubjectSection(q, Principal, p.SubjectIdentifier, ct));
                sections.Add(new ReportSection("Retention settings in force", null,
                    new ReportTable([new ReportColumn("Setting", 1)], retentionNotes!.Select(s => new[] { s }).ToList(), 1)));
                notes.Add("The audit trail records each call's parameters and a response summary (row counts, masking), not the result rows themselves: " +
                    "a data subject who appears only in returned rows cannot be found by the subject search.");
                break;
            case ReportTypes.Hipaa:
                sections.Add(await ExecutionsByQuery(q, Principal, queryInfo, PhiLabels, "Access to PHI-classified data",
                    "Gateway calls whose query is classified phi (or health), by principal and purpose.", ct));
                sections.Add(await EventList(q, Principal, "Unusual access (alerts)",
                    "Security alerts (alert.* events) and events the gateway marked alert-level.",
                    "event_type LIKE 'alert.%' OR security_level = 'alert'", [], false, ct));
                sections.Add(await OffHours(q, Principal, ct));
                sections.Add(await EventList(q, Principal, "Emergency (break-glass) access",
                    "Events recorded as emergency or break-glass access.",
                    "event_type LIKE '%emergency%' OR event_type LIKE '%break_glass%'", [], false, ct));
                sections.Add(await ExportsSection(q, Principal, ct));
                break;
            default:
                sections.Add(await GroupSection(q, "Events by type", "event_type", ["Event type"], ct));
                sections.Add(await GroupSection(q, "Events by actor", "actor_type, actor_id, actor_email", ["Actor"], ct, r => [Principal(ReportQueries.Str(r, 0), ReportQueries.Str(r, 1), ReportQueries.Str(r, 2))]));
                sections.Add(await EventList(q, Principal, "Events", "The events matching the report's filters, newest first.", null, [], true, ct));
                break;
        }

        // Retention: say which part of the period is no longer in the live trail.
        if (archivedBefore is { } horizon && horizon > p.From)
            notes.Insert(0, $"Events before {Stamp(horizon)} have been archived by the retention policy: the part of the period from {Stamp(p.From)} " +
                $"to {Stamp(horizon < p.To ? horizon : p.To)} is not in the live trail and is not counted in this report.");
        if (total == 0) notes.Insert(0, "No activity: the audit trail holds no events for this project in the period.");

        await progress(70, "Verifying the audit chain");
        var chain = await ChainAsync(q, totals, await verification, ct);

        return new ReportData
        {
            ReportId = report.Id, Type = p.Type, Title = report.Title, ProjectName = projectName, ProjectId = report.ProjectId,
            From = p.From, To = p.To, GeneratedBy = generatedBy, GeneratedAt = generatedAt, Generator = report.Generator,
            EventCount = total, Headlines = headlines, DailyActivity = days, DenialsByReason = byReason, Sections = sections, Notes = notes,
            Chain = chain, Filters = Describe(p),
        };
    }

    private static List<string> Describe(ReportParameters p)
    {
        var list = new List<string>();
        if (p.SubjectIdentifier is { Length: > 0 } s) list.Add($"Data subject: {s}");
        if (p.EventTypes is { Count: > 0 } t) list.Add("Event types: " + string.Join(", ", t));
        if (p.Classifications is { Count: > 0 } c) list.Add("Classifications: " + string.Join(", ", c));
        if (p.Users is { Count: > 0 } u) list.Add("Users: " + string.Join(", ", u));
        return list;
    }

    private static async Task<ChainResult> ChainAsync(ReportQueries q, ReportTotals totals, AuditVerification v, CancellationToken ct)
    {
        long first = totals.FirstSeq, last = totals.LastSeq;
        string? lastHash = null;
        if (last > 0)
            await q.RawAsync("SELECT hash FROM audit_events WHERE project_id = @p AND seq = @s", r => lastHash = Convert.ToHexStringLower((byte[])r.GetValue(0)), ct, ("@s", last));
        // Archived events left the database: the chain is anchored on (or re-read from) the archive files' manifests.
        var archived = v.ArchivedEvents > 0 ? $" ({N(v.ArchivedEvents)} of them in archive files, linked through the archive manifests)" : "";
        var message = v.Ok
            ? $"Intact: all {N(v.EventsChecked)} events of the project's chain re-hashed and linked correctly{archived}."
            : $"BROKEN at seq {v.FirstBrokenSeq}: {v.Problem}";
        return new ChainResult(v.Ok, v.EventsChecked, message, first, last, lastHash);
    }

    private static async Task<ReportSection> MembersSection(PortalDbContext ef, Guid projectId, CancellationToken ct)
    {
        var rows = await ef.ProjectMembers.AsNoTracking().Where(m => m.ProjectId == projectId)
            .Join(ef.Users, m => m.UserId, u => u.Id, (m, u) => new { u.Email, m.Role, m.Suspended, m.AddedAt })
            .ToListAsync(ct);
        var table = rows.OrderBy(r => r.Role, StringComparer.Ordinal).ThenBy(r => r.Email, StringComparer.Ordinal)
            .Select(r => new[] { r.Email ?? "", r.Role, Stamp(r.AddedAt), r.Suspended ? "suspended" : "active" }).ToList();
        return Section("Members and roles (at generation)", "Who holds which role in the project now; changes in the period follow.",
            [new("Member", 3), new("Role", 1.2), new("Member since", 2), new("Status", 1.2)], table, table.Count);
    }

    private static async Task<ReportSection> RoleChangesSection(PortalDbContext ef, Guid projectId, ReportParameters p, CancellationToken ct)
    {
        var rows = (await ef.MembershipChanges.AsNoTracking().Where(c => c.ProjectId == projectId)
                .Select(c => new { c.ChangedAt, c.UserEmail, c.OldRole, c.NewRole, c.ChangedByEmail }).ToListAsync(ct))
            .Where(c => c.ChangedAt >= p.From && c.ChangedAt < p.To).OrderBy(c => c.ChangedAt).ToList();
        var table = rows.Take(MaxRows).Select(c => new[]
        {
            Stamp(c.ChangedAt), c.UserEmail ?? "", c.OldRole ?? "(none)", c.NewRole ?? "(removed)", c.ChangedByEmail ?? "system",
        }).ToList();
        return Section("Role changes in the period", "Every grant, change and removal of a project role.",
            [new("When (UTC)", 2), new("Member", 3), new("Before", 1.2), new("After", 1.2), new("Changed by", 3)], table, rows.Count);
    }

    private static ReportSection KeysSection(List<Security.ApiKeys.ApiKey> keys, DateTimeOffset periodEnd)
    {
        var table = keys.Where(k => k.CreatedAt < periodEnd).Select(k =>
        {
            string scopes;
            try { scopes = string.Join(", ", JsonSerializer.Deserialize<string[]>(k.ScopesJson) ?? []); } catch (JsonException) { scopes = k.ScopesJson; }
            var status = k.RevokedAt is { } rv && rv < periodEnd ? "revoked " + Stamp(rv)
                : k.ExpiresAt <= periodEnd ? "expired" : "active";
            return new[]
            {
                $"{k.Name} ({k.Prefix}…)", k.Role, scopes.Length == 0 ? "all the role allows" : scopes,
                ((int)(periodEnd - k.CreatedAt).TotalDays).ToString(CultureInfo.InvariantCulture) + " d",
                k.LastUsedAt is { } lu ? Stamp(lu) : "never", status,
            };
        }).ToList();
        return Section("API keys", "Keys of the project that existed during the period: scope, age at the end of the period, last use and status.",
            [new("Key", 3), new("Role", 1.1), new("Scopes", 2.4), new("Age", 0.9, ColumnAlign.Right), new("Last used", 2), new("Status", 1.6)], table, table.Count);
    }

    private static ReportSection ExecutionsByPrincipal(ReportTotals totals, Func<string?, string?, string?, string> principal, string title, string intro)
    {
        var rows = totals.Executions.Select(x => (Who: principal(x.Key.Who.Type, x.Key.Who.Id, x.Key.Who.Email), Labels: Labels(x.Key.Classifications),
            x.Value.Count, x.Value.Rows, x.Value.Last)).ToList();
        // Ties after count and principal are ordered by every shown column, so a report is the same on both databases.
        var table = rows.OrderByDescending(r => r.Count).ThenBy(r => r.Who, StringComparer.Ordinal).ThenBy(r => r.Labels, StringComparer.Ordinal)
            .ThenByDescending(r => r.Rows).ThenByDescending(r => r.Last).Take(MaxRows)
            .Select(r => new[] { r.Who, r.Labels, N(r.Count), N(r.Rows), Stamp(r.Last) }).ToList();
        return Section(title, intro, [new("Principal", 3.4), new("Classifications", 2.2), new("Executions", 1.3, ColumnAlign.Right),
            new("Rows", 1.1, ColumnAlign.Right), new("Last (UTC)", 2.15)], table, rows.Count);
    }

    private static async Task<ReportSection> ExecutionsByQuery(ReportQueries q, Func<string?, string?, string?, string> principal,
        Dictionary<string, (string Name, string Description)> queries, string[] labels, string title, string intro, CancellationToken ct)
    {
        var ps = labels.Select((l, i) => ($"@lab{i}", (object)("%\"" + ReportQueries.Escape(l) + "\"%"))).ToArray();
        var where = $"event_type IN ('{ReportQueries.ExecutedEvent}', '{ReportQueries.DeniedEvent}') AND (" +
            string.Join(" OR ", ps.Select(x => $"data_classifications {q.ILike} {x.Item1} ESCAPE '\\'")) + ")";
        var rows = new List<string[]>();
        var stats = new List<(long Count, string[] Row)>();
        await q.QueryAsync("actor_type, actor_id, actor_email, resource_id, count(*), sum(CASE WHEN " + q.SuccessTrue + " THEN 1 ELSE 0 END), sum(coalesce(rows_returned, 0)), max(occurred_at)",
            where, "GROUP BY actor_type, actor_id, actor_email, resource_id", r =>
            {
                var qid = ReportQueries.Str(r, 3);
                var (name, purpose) = qid is not null && queries.TryGetValue(qid, out var info) ? info : (qid ?? "(unknown query)", "");
                var n = ReportQueries.Long(r, 4); var ok = ReportQueries.Long(r, 5);
                stats.Add((n, [principal(ReportQueries.Str(r, 0), ReportQueries.Str(r, 1), ReportQueries.Str(r, 2)), name,
                    purpose.Length == 0 ? "(no description)" : purpose, N(ok), N(n - ok), N(ReportQueries.Long(r, 6)), Stamp(q.Time(r.GetValue(7)))]));
            }, ct, ps);
        rows.AddRange(stats.OrderByDescending(s => s.Count).Take(MaxRows).Select(s => s.Row));
        return Section(title, intro, [new("Principal", 2.6), new("Query", 2), new("Purpose", 3), new("Runs", 0.9, ColumnAlign.Right),
            new("Denied", 1.15, ColumnAlign.Right), new("Rows", 1, ColumnAlign.Right), new("Last (UTC)", 2.15)], rows, stats.Count);
    }

    private static ReportSection DenialsByPrincipal(ReportTotals totals, Func<string?, string?, string?, string> principal)
    {
        var stats = totals.FailuresBy.Select(x => (x.Value.Count, Last: x.Value.Last,
            Row: new[] { principal(x.Key.Who.Type, x.Key.Who.Id, x.Key.Who.Email), ReportTotals.Reason(x.Key), N(x.Value.Count), Stamp(x.Value.Last) })).ToList();
        var rows = stats.OrderByDescending(s => s.Count).ThenBy(s => s.Row[0], StringComparer.Ordinal).ThenBy(s => s.Row[1], StringComparer.Ordinal)
            .ThenByDescending(s => s.Last).Take(MaxRows).Select(s => s.Row).ToList();
        return Section("Denied and blocked attempts", "Refused gateway calls, rejected API keys and other failed actions, by principal and reason.",
            [new("Principal", 3.4), new("Reason", 2.6), new("Attempts", 1.2, ColumnAlign.Right), new("Last (UTC)", 2.15)], rows, stats.Count);
    }

    private static async Task<ReportSection> ConfigChanges(ReportQueries q, Func<string?, string?, string?, string> principal, CancellationToken ct,
        (IReadOnlyList<string> Types, long Total)? only = null) =>
        await EventList(q, principal, "Configuration changes", "Portal changes with their state before and after (members, modules, keys, rate limits, queries, masks).",
            "(before_state IS NOT NULL OR after_state IS NOT NULL) AND event_type NOT LIKE 'suggestion.%' AND event_type NOT LIKE 'alert.%'", [], false, ct, withStates: true, only: only);

    /// <param name="only">
    /// When the caller already knows which event types can match <paramref name="where"/> and how many events do (from
    /// <see cref="ReportTotals"/>): the list reads only those types and skips the count.
    /// </param>
    private static async Task<ReportSection> EventList(ReportQueries q, Func<string?, string?, string?, string> principal, string title, string intro,
        string? where, (string, object)[] ps, bool newestFirst, CancellationToken ct, bool withStates = false, string? highlight = null,
        (IReadOnlyList<string> Types, long Total)? only = null)
    {
        var rows = new List<string[]>();
        if (only is { } o)
        {
            if (o.Types.Count == 0) return Section(title, intro, [], rows, 0);
            (where, ps) = WithTypes(where, ps, o.Types);
        }
        await q.QueryAsync("occurred_at, event_type, actor_type, actor_id, actor_email, resource_type, resource_id, before_state, after_state, success, error_message, details",
            where, $"ORDER BY occurred_at {(newestFirst ? "DESC" : "ASC")}, seq LIMIT {MaxRows + 1}", r =>
            {
                var resource = string.Join(" ", new[] { ReportQueries.Str(r, 5), ReportQueries.Str(r, 6) }.Where(s => !string.IsNullOrEmpty(s)));
                var ok = Convert.ToBoolean(r.GetValue(9), CultureInfo.InvariantCulture);
                var outcome = withStates ? $"{Short(ReportQueries.Str(r, 7)) ?? "—"} → {Short(ReportQueries.Str(r, 8)) ?? "—"}"
                    : highlight is not null ? Snippet(ReportQueries.Str(r, 11), highlight) ?? Snippet(ReportQueries.Str(r, 7), highlight) ?? Snippet(ReportQueries.Str(r, 8), highlight) ?? "(in the prompt, SQL or resource)"
                    : ok ? Short(ReportQueries.Str(r, 11)) ?? "ok" : "failed: " + (ReportQueries.Str(r, 10) ?? "");
                rows.Add([Stamp(q.Time(r.GetValue(0))), ReportQueries.Str(r, 1)!, principal(ReportQueries.Str(r, 2), ReportQueries.Str(r, 3), ReportQueries.Str(r, 4)),
                    resource.Length == 0 ? "—" : resource, outcome]);
            }, ct, ps);
        long total = rows.Count;
        if (rows.Count > MaxRows)
        {
            rows.RemoveAt(rows.Count - 1);
            if (only is { } known) total = known.Total;
            else await q.QueryAsync("count(*)", where, null, r => total = ReportQueries.Long(r, 0), ct, ps);
        }
        return Section(title, intro, [new("When (UTC)", 2.45), new("Event", 3.05), new("Actor", 2.5), new("Resource", 2.3),
            new(withStates ? "Before → after" : "Detail", 3.4)], rows, total);
    }

    private static async Task<ReportSection> ExportsSection(ReportQueries q, Func<string?, string?, string?, string> principal, CancellationToken ct) =>
        await EventList(q, principal, "Exports and disclosures", "Audit-trail exports and compliance report downloads made in the period.",
            "event_type IN ('audit.exported', 'report.downloaded')", [], false, ct);

    private static async Task<ReportSection> SubjectSection(ReportQueries q, Func<string?, string?, string?, string> principal, string? subject, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(subject))
            return new ReportSection("Data subject search", null, null, "No subject identifier was given for this report. Enter an e-mail address or customer id to list every event that referenced it.");
        var like = q.ILike;
        var where = string.Join(" OR ", new[] { "details", "prompt", "sql_text", "before_state", "after_state", "resource_id", "error_message" }
            .Select(c => $"{c} {like} @subject ESCAPE '\\'"));
        var section = await EventList(q, principal, $"Data subject search: \"{subject}\"",
            "Every event whose parameters, details, prompt or before/after state referenced this identifier (case-insensitive). " +
            "Result rows are not recorded in the audit trail, so events are matched on what was asked, not on what was returned.",
            where, [("@subject", ReportQueries.Like(subject.Trim()))], false, ct, highlight: subject.Trim());
        return section.Table is null || section.Table.Rows.Count > 0 ? section
            : section with { Empty = $"No event in the period referenced \"{subject}\"." };
    }

    private static async Task<ReportSection> OffHours(ReportQueries q, Func<string?, string?, string?, string> principal, CancellationToken ct)
    {
        var stats = new List<(long Count, string[] Row)>();
        await q.QueryAsync($"actor_type, actor_id, actor_email, count(*), sum(CASE WHEN {q.WeekdayExpr} >= 5 THEN 1 ELSE 0 END), max(occurred_at)",
            $"event_type = '{ReportQueries.ExecutedEvent}' AND ({q.WeekdayExpr} >= 5 OR {q.HourExpr} < {BusinessHourStart} OR {q.HourExpr} >= {BusinessHourEnd})",
            "GROUP BY actor_type, actor_id, actor_email", r =>
            {
                var n = ReportQueries.Long(r, 3);
                stats.Add((n, [principal(ReportQueries.Str(r, 0), ReportQueries.Str(r, 1), ReportQueries.Str(r, 2)), N(n), N(ReportQueries.Long(r, 4)), Stamp(q.Time(r.GetValue(5)))]));
            }, ct);
        var rows = stats.OrderByDescending(s => s.Count).Take(MaxRows).Select(s => s.Row).ToList();
        return Section("Off-hours access", $"Query executions outside business hours ({BusinessHourStart:00}:00–{BusinessHourEnd:00}:00 UTC, Monday to Friday), by principal.",
            [new("Principal", 3.6), new("Off-hours runs", 1.4, ColumnAlign.Right), new("On weekends", 1.4, ColumnAlign.Right), new("Last (UTC)", 2.15)], rows, stats.Count);
    }

    private static (string Where, (string, object)[] Parameters) WithTypes(string? where, (string, object)[] ps, IReadOnlyList<string> types)
    {
        var names = types.Select((_, i) => $"@only{i}").ToArray();
        var sql = $"event_type IN ({string.Join(", ", names)})" + (where is null ? "" : $" AND ({where})");
        return (sql, [.. ps, .. types.Select((t, i) => (names[i], (object)t))]);
    }

    /// <param name="alertTypes">The period's event types matching alert.* (from <see cref="ReportTotals"/>).</param>
    private static async Task<ReportSection> AlertsSection(ReportQueries q, CancellationToken ct, IReadOnlyList<string> alertTypes)
    {
        var rows = new List<(DateTimeOffset Raised, string[] Row)>();
        if (alertTypes.Count > 0)
        {
            var (where, ps) = WithTypes("event_type LIKE 'alert.%'", [], alertTypes);
            await q.QueryAsync("resource_id, min(occurred_at), " +
                "min(CASE WHEN event_type LIKE '%acknowledg%' THEN occurred_at END), min(CASE WHEN event_type LIKE '%resolv%' THEN occurred_at END), max(action), count(*)",
                where, "GROUP BY resource_id", r =>
                {
                    var raised = q.Time(r.GetValue(1));
                    DateTimeOffset? ack = r.IsDBNull(2) ? null : q.Time(r.GetValue(2));
                    DateTimeOffset? res = r.IsDBNull(3) ? null : q.Time(r.GetValue(3));
                    rows.Add((raised, [ReportQueries.Str(r, 0) ?? "(no id)", ReportQueries.Str(r, 4) ?? "", Stamp(raised),
                        ack is { } a ? Duration(a - raised) : "not acknowledged", res is { } s ? Duration(s - raised) : "not resolved"]));
                }, ct, ps);
        }
        var table = rows.OrderBy(r => r.Raised).Take(MaxRows).Select(r => r.Row).ToList();
        return Section("Security alerts", "Alerts raised in the period (alert.* events) with the time to acknowledge and to resolve.",
            [new("Alert", 2.6), new("Kind", 1.8), new("Raised (UTC)", 2), new("To acknowledge", 1.6), new("To resolve", 1.6)], table, rows.Count);
    }

    private static async Task<ReportSection> SignInsSection(ReportQueries q, ReportParameters p, CancellationToken ct)
    {
        var rows = new List<string[]>();
        await q.RawAsync("SELECT event_type, count(*), sum(CASE WHEN " + q.SuccessTrue + " THEN 0 ELSE 1 END) FROM audit_events " +
            "WHERE project_id = @org AND occurred_at >= @from AND occurred_at < @to AND event_type LIKE 'auth.%' GROUP BY event_type ORDER BY event_type",
            r => rows.Add([ReportQueries.Str(r, 0)!, N(ReportQueries.Long(r, 1)), N(ReportQueries.Long(r, 2))]), ct,
            ("@org", Guid.Empty), ("@from", p.From), ("@to", p.To));
        return Section("Portal sign-ins (organization-wide)", "Sign-in events are kept on the organization's chain, not a project's: these counts cover every portal user.",
            [new("Event", 3), new("Events", 1.2, ColumnAlign.Right), new("Failed", 1.2, ColumnAlign.Right)], rows, rows.Count);
    }

    private static async Task<ReportSection> GroupSection(ReportQueries q, string title, string groupBy, string[] headers, CancellationToken ct,
        Func<DbDataReader, string[]>? label = null)
    {
        var width = groupBy.Split(',').Length;
        var stats = new List<(long Count, string[] Row)>();
        await q.QueryAsync($"{groupBy}, count(*), sum(CASE WHEN {q.SuccessTrue} THEN 0 ELSE 1 END)", null, $"GROUP BY {groupBy}", r =>
        {
            var n = ReportQueries.Long(r, width);
            var l = label?.Invoke(r) ?? [ReportQueries.Str(r, 0) ?? ""];
            stats.Add((n, [.. l, N(n), N(ReportQueries.Long(r, width + 1))]));
        }, ct);
        var rows = stats.OrderByDescending(s => s.Count).ThenBy(s => s.Row[0], StringComparer.Ordinal).Take(MaxRows).Select(s => s.Row).ToList();
        return Section(title, null, [.. headers.Select(h => new ReportColumn(h, 4)), new("Events", 1.2, ColumnAlign.Right), new("Failed", 1.2, ColumnAlign.Right)], rows, stats.Count);
    }

    private static ReportSection Section(string title, string? intro, ReportColumn[] columns, List<string[]> rows, long total) =>
        new(title, intro, rows.Count == 0 ? null : new ReportTable(columns, rows, total), rows.Count == 0 ? NoneInPeriod : null);

    private static string Labels(string? json)
    {
        if (string.IsNullOrEmpty(json)) return "(none)";
        try { return JsonSerializer.Deserialize<string[]>(json) is { Length: > 0 } a ? string.Join(", ", a) : "(none)"; }
        catch (JsonException) { return json; }
    }

    /// <summary>The text around the first case-insensitive occurrence of <paramref name="needle"/>, so the match is visible in the table.</summary>
    private static string? Snippet(string? text, string needle)
    {
        if (text is null) return null;
        var at = text.IndexOf(needle, StringComparison.OrdinalIgnoreCase);
        if (at < 0) return null;
        // The match on a line of its own, so it stays whole in a narrow column.
        var start = Math.Max(0, at - 16);
        var end = Math.Min(text.Length, at + needle.Length + 16);
        return (start > 0 ? "…" : "") + text[start..at] + "\n" + text.Substring(at, needle.Length) + "\n" + text[(at + needle.Length)..end] + (end < text.Length ? "…" : "");
    }

    private static string? Short(string? s) => s is null ? null : s.Length <= 160 ? s : s[..157] + "…";

    /// <summary>"rateLimited" → "Rate limited".</summary>
    public static string Humanize(string outcome)
    {
        var sb = new System.Text.StringBuilder();
        foreach (var c in outcome)
        {
            if (char.IsUpper(c) && sb.Length > 0) sb.Append(' ').Append(char.ToLowerInvariant(c));
            else if (c == '_') sb.Append(' ');
            else sb.Append(sb.Length == 0 ? char.ToUpperInvariant(c) : c);
        }
        return sb.ToString();
    }

    public static string N(long n) => n.ToString("N0", CultureInfo.InvariantCulture);
    public static string Stamp(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture);

    private static string Duration(TimeSpan t) =>
        t.TotalMinutes < 1 ? "< 1 min" : t.TotalHours < 1 ? $"{(int)t.TotalMinutes} min" : t.TotalDays < 2 ? $"{t.TotalHours:F1} h" : $"{t.TotalDays:F1} d";
}
