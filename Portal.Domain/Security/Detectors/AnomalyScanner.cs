using System.Data.Common;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Portal.Domain.Audit;
using Portal.Domain.Persistence;
using Portal.Domain.Security.Alerts;

namespace Portal.Domain.Security.Detectors;

/// <summary>What one scan did: chains read, events examined (new since the watermark), findings per rule and alerts.</summary>
public sealed record ScanReport(int Chains, long EventsExamined, int Findings, RaiseResult Alerts, IReadOnlyDictionary<string, int> FindingsByRule, TimeSpan Elapsed)
{
    public string Summary =>
        $"Examined {EventsExamined:N0} new event(s) in {Chains} chain(s): {Findings} finding(s), {Alerts.Created} new alert(s), {Alerts.Updated} updated, " +
        $"{Alerts.Suppressed} suppressed, {Alerts.AlreadyKnown} already known.";
}

/// <summary>
/// The scheduled anomaly scan. It reads each audit chain from its watermark (the last seq examined) to the chain head,
/// aggregates the new events in the database (per user/key, UTC day and hour; per source; filtered failures, exports
/// and privilege events), keeps what it learned in security_activity_profiles and security_known_sources, evaluates the
/// scan rules (<see cref="DetectorRules"/>) with each project's thresholds, and commits the alerts, the learned rows and
/// the advanced watermark in one transaction. The watermark advances with a compare-and-set, so two workers can never
/// both commit the same range, and findings no later than an existing alert's last sighting are already known, so
/// re-running a range raises nothing new.
/// <para>
/// Organization chain (sign-ins, unknown API keys): only the brute-force rule runs there. A finding is raised in every
/// project where a targeted account is a member; failures that name no existing account (unknown e-mails, unknown key
/// prefixes) are raised in every project, since they attack the whole installation.
/// </para>
/// </summary>
public sealed class AnomalyScanner(IDbContextFactory<PortalDbContext> dbFactory, PortalDatabase database, TimeProvider clock, ILogger<AnomalyScanner>? logger = null)
{
    private readonly ILogger log = (ILogger?)logger ?? NullLogger.Instance;
    private bool Sqlite => database.Provider == DatabaseProvider.Sqlite;

    /// <summary>At most this many events of one chain per transaction; a longer backlog is read in several.</summary>
    public long BatchSize { get; init; } = 2_000_000;

    private const string Failures = "'auth.sign_in_failed', 'auth.api_key_rejected'";
    private const string Executed = "gateway.query_executed";

    public async Task<ScanReport> ScanAsync(CancellationToken ct = default)
    {
        var sw = Stopwatch.StartNew();
        List<(Guid Chain, long Head)> heads;
        Dictionary<Guid, long> marks;
        await using (var db = await dbFactory.CreateDbContextAsync(ct))
        {
            heads = (await db.AuditChainHeads.AsNoTracking().Select(h => new { h.ProjectId, h.Seq }).ToListAsync(ct)).Select(h => (h.ProjectId, h.Seq)).ToList();
            marks = await db.Set<ScanWatermark>().AsNoTracking().ToDictionaryAsync(w => w.ChainId, w => w.LastSeq, ct);
        }
        long examined = 0;
        var chains = 0;
        var findings = 0;
        var raised = RaiseResult.None;
        var byRule = DetectorRules.All.Where(r => !r.RealTime).ToDictionary(r => r.Rule, _ => 0);
        // The organization chain last, so per-project settings it needs are loaded once projects are known.
        foreach (var (chain, head) in heads.OrderBy(h => h.Chain == AuditEventDraft.OrganizationChain ? 1 : 0))
        {
            var lo = marks.TryGetValue(chain, out var m) ? m : 0;
            if (head <= lo) continue;
            chains++;
            while (lo < head)
            {
                ct.ThrowIfCancellationRequested();
                var hi = Math.Min(head, lo + BatchSize);
                var r = await ScanRangeAsync(chain, lo, hi, marks.ContainsKey(chain) || lo > 0, ct);
                examined += r.Examined;
                findings += r.Findings.Count;
                raised = raised.Add(r.Raised);
                foreach (var f in r.Findings) byRule[f.Rule] = byRule.GetValueOrDefault(f.Rule) + 1;
                lo = hi;
                marks[chain] = hi;
            }
        }
        var report = new ScanReport(chains, examined, findings, raised, byRule, sw.Elapsed);
        log.LogInformation("Anomaly scan: {Summary}", report.Summary);
        return report;
    }

    private sealed record RangeResult(long Examined, List<AlertFinding> Findings, RaiseResult Raised);

    private async Task<RangeResult> ScanRangeAsync(Guid chain, long lo, long hi, bool markExists, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var org = chain == AuditEventDraft.OrganizationChain;
        var projects = org ? await db.Projects.AsNoTracking().Select(p => p.Id).ToListAsync(ct)
            : await db.Projects.AsNoTracking().AnyAsync(p => p.Id == chain, ct) ? [chain] : new List<Guid>();
        var settings = await DetectorSettingsService.LoadAllAsync(db, projects, ct);

        await using var conn = AuditReader.Open(database);
        var (count, minAt, _) = await StatsAsync(conn, chain, lo, hi, ct);
        var findings = new List<AlertFinding>();
        var profiles = new List<ProfileGroup>();
        var sources = new List<SourceRow>();
        if (count > 0 && projects.Count > 0)
        {
            if (org)
                findings.AddRange(await BruteForceAsync(conn, db, chain, lo, hi, minAt, projects, settings, ct));
            else
            {
                // The rules read the range independently, each on its own connection and thread, so a full scan uses
                // every core (Microsoft.Data.Sqlite runs "async" calls synchronously, hence Task.Run). Only the brute
                // force rule touches the DbContext. Findings keep the rules' fixed order.
                var s = settings[chain];
                var brute = OnOwnConnection(c => BruteForceAsync(c, db, chain, lo, hi, minAt, projects, settings, ct));
                var profiled = OnOwnConnection(async c =>
                {
                    var groups = await ProfileGroupsAsync(c, chain, lo, hi, ct);
                    return (Groups: groups, Findings: await ProfileRulesAsync(c, chain, groups, s, ct));
                });
                var newSources = OnOwnConnection(c => NewSourcesAsync(c, chain, lo, hi, s[DetectorRules.NewSource], ct));
                var exports = OnOwnConnection(c => ExportsAsync(c, chain, lo, hi, minAt, s[DetectorRules.BulkExport], ct));
                var privilege = OnOwnConnection(c => PrivilegeAsync(c, chain, lo, hi, s[DetectorRules.PrivilegeChange], ct));
                await Task.WhenAll(brute, profiled, newSources, exports, privilege);
                findings.AddRange(brute.Result);
                profiles = profiled.Result.Groups;
                findings.AddRange(profiled.Result.Findings);
                findings.AddRange(newSources.Result.Item1);
                sources = newSources.Result.Item2;
                findings.AddRange(exports.Result);
                findings.AddRange(privilege.Result);
            }
        }

        var strategy = db.Database.CreateExecutionStrategy();
        var raised = RaiseResult.None;
        await strategy.ExecuteAsync(async () =>
        {
            db.ChangeTracker.Clear();
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            raised = await AlertService.StageAsync(db, findings, now, ct);
            await db.SaveChangesAsync(ct);
            await UpsertProfilesAsync(db, chain, profiles, ct);
            await InsertSourcesAsync(db, chain, sources, ct);
            int advanced;
            if (markExists)
                advanced = await db.Database.ExecuteSqlRawAsync(
                    "UPDATE security_scan_watermarks SET last_seq = {0}, last_scan_at = {1}, events_examined = {2} WHERE chain_id = {3} AND last_seq = {4}",
                    [hi, AuditReader.Time(database, now), count, AuditReader.Id(database, chain), lo], ct);
            else
                advanced = await db.Database.ExecuteSqlRawAsync(
                    "INSERT INTO security_scan_watermarks (chain_id, last_seq, last_scan_at, events_examined) VALUES ({0}, {1}, {2}, {3}) ON CONFLICT (chain_id) DO NOTHING",
                    [AuditReader.Id(database, chain), hi, AuditReader.Time(database, now), count], ct);
            // Another worker committed this range first: ours changes nothing.
            if (advanced != 1) throw DomainException.Conflict("Another scan advanced this audit chain at the same time.");
            await tx.CommitAsync(ct);
        });
        return new RangeResult(count, findings, raised);
    }

    // ---------------------------------------------------------------- reading helpers

    private Task<T> OnOwnConnection<T>(Func<DbConnection, Task<T>> read) => Task.Run(async () =>
    {
        await using var conn = AuditReader.Open(database);
        return await read(conn);
    });

    private DbCommand Command(DbConnection conn, string sql, Guid chain, long lo, long hi)
    {
        var cmd = conn.CreateCommand();
        cmd.CommandText = sql;
        cmd.CommandTimeout = 0;
        AuditReader.Add(cmd, "@p", AuditReader.Id(database, chain));
        AuditReader.Add(cmd, "@lo", lo);
        AuditReader.Add(cmd, "@hi", hi);
        return cmd;
    }

    private DateTimeOffset Time(DbDataReader r, int i) => Sqlite ? new DateTimeOffset(r.GetInt64(i), TimeSpan.Zero) : r.GetFieldValue<DateTimeOffset>(i);
    private Guid Id(DbDataReader r, int i) => Sqlite ? Guid.Parse(r.GetString(i)) : r.GetGuid(i);
    private static string? Str(DbDataReader r, int i) => r.IsDBNull(i) ? null : r.GetString(i);
    private static long Long(DbDataReader r, int i) => r.IsDBNull(i) ? 0 : Convert.ToInt64(r.GetValue(i), System.Globalization.CultureInfo.InvariantCulture);

    private string DayExpr => Sqlite ? "((occurred_at - 621355968000000000) / 864000000000)" : "CAST(floor(extract(epoch from occurred_at) / 86400) AS integer)";
    private string HourExpr => Sqlite ? "((occurred_at / 36000000000) % 24)" : "CAST(extract(hour from occurred_at at time zone 'UTC') AS integer)";
    private static DateTimeOffset DayStart(int day) => DateTimeOffset.UnixEpoch.AddDays(day);
    private static int DayOf(DateTimeOffset t) => (int)((t.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / TimeSpan.TicksPerDay);

    private async Task<(long Count, DateTimeOffset MinAt, DateTimeOffset MaxAt)> StatsAsync(DbConnection conn, Guid chain, long lo, long hi, CancellationToken ct)
    {
        await using var cmd = Command(conn, "SELECT count(*), min(occurred_at), max(occurred_at) FROM audit_events WHERE project_id = @p AND seq > @lo AND seq <= @hi", chain, lo, hi);
        await using var r = await cmd.ExecuteReaderAsync(ct);
        await r.ReadAsync(ct);
        var n = Long(r, 0);
        return n == 0 ? (0, default, default) : (n, Time(r, 1), Time(r, 2));
    }

    private async Task<List<Guid>> EventIdsAsync(DbConnection conn, Guid chain, string actorId, DateTimeOffset from, DateTimeOffset to, string? extraWhere, object? extraValue, CancellationToken ct, int take = 10)
    {
        await using var cmd = Command(conn,
            $"SELECT id FROM audit_events WHERE project_id = @p AND actor_id = @a AND occurred_at >= @f AND occurred_at <= @t {(extraWhere is null ? "" : "AND " + extraWhere)} ORDER BY occurred_at, seq LIMIT {take}",
            chain, 0, 0);
        AuditReader.Add(cmd, "@a", actorId);
        AuditReader.Add(cmd, "@f", AuditReader.Time(database, from));
        AuditReader.Add(cmd, "@t", AuditReader.Time(database, to));
        if (extraValue is not null) AuditReader.Add(cmd, "@x", extraValue);
        var ids = new List<Guid>();
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct)) ids.Add(Id(r, 0));
        return ids;
    }

    private static (string Type, Guid? Key, Guid? User) Subject(string actorType, string actorId) =>
        actorType == "api_key" && Guid.TryParse(actorId, out var k) ? ("api_key", k, null)
        : actorType == "user" && Guid.TryParse(actorId, out var u) ? ("user", null, u)
        : (actorType, null, null);

    private static AlertFinding Finding(Guid project, string rule, string severity, string actorType, string actorId, string? label, string title, string description,
        object evidence, IReadOnlyList<Guid> ids, DateTimeOffset first, DateTimeOffset last, int count = 1)
    {
        var def = DetectorRules.Get(rule);
        var (type, key, user) = Subject(actorType, actorId);
        return new AlertFinding(project, def.AlertType, rule, severity, "scan", type, actorId, label, key, user, title, description, evidence, ids, first, last, count);
    }

    private static string Label(string actorType, string actorId, string? email) =>
        email ?? (actorType == "api_key" ? $"API key {actorId[..Math.Min(8, actorId.Length)]}…" : $"{actorType} {actorId}");

    // ---------------------------------------------------------------- brute force

    private sealed record Failure(long Seq, Guid Id, DateTimeOffset At, string EventType, string? Ip, string? ActorType, string? ActorId, string? Prefix, string? Email);

    private async Task<List<AlertFinding>> BruteForceAsync(DbConnection conn, PortalDbContext db, Guid chain, long lo, long hi, DateTimeOffset minAt, List<Guid> projects,
        Dictionary<Guid, Dictionary<string, RuleSettings>> settings, CancellationToken ct)
    {
        var enabled = projects.Where(p => settings[p][DetectorRules.BruteForce].Enabled).ToList();
        if (enabled.Count == 0) return [];
        var maxWindow = enabled.Max(p => settings[p][DetectorRules.BruteForce]["window_minutes"]);
        await using var cmd = Command(conn,
            $"SELECT seq, id, occurred_at, event_type, client_ip, actor_type, actor_id, details FROM audit_events WHERE project_id = @p AND event_type IN ({Failures}) AND occurred_at >= @from AND seq <= @hi ORDER BY occurred_at, seq",
            chain, lo, hi);
        AuditReader.Add(cmd, "@from", AuditReader.Time(database, minAt.AddMinutes(-maxWindow)));
        var failures = new List<Failure>();
        await using (var r = await cmd.ExecuteReaderAsync(ct))
            while (await r.ReadAsync(ct))
            {
                string? prefix = null, email = null;
                if (Str(r, 7) is { } json)
                {
                    try
                    {
                        using var doc = JsonDocument.Parse(json);
                        if (doc.RootElement.TryGetProperty("keyPrefix", out var kp) && kp.ValueKind == JsonValueKind.String) prefix = kp.GetString();
                        if (doc.RootElement.TryGetProperty("attempted_email", out var ae) && ae.ValueKind == JsonValueKind.String) email = ae.GetString();
                    }
                    catch (JsonException) { }
                }
                failures.Add(new Failure(r.GetInt64(0), Id(r, 1), Time(r, 2), r.GetString(3), Str(r, 4), Str(r, 5), Str(r, 6), prefix, email));
            }
        if (failures.Count == 0) return [];

        var groups = failures.Where(f => f.Ip is not null).GroupBy(f => ("ip", f.Ip!))
            .Concat(failures.Where(f => f.Prefix is not null).GroupBy(f => ("key_prefix", f.Prefix!)));
        var result = new List<AlertFinding>();
        Dictionary<Guid, List<Guid>>? memberships = null;
        foreach (var g in groups)
        {
            var list = g.ToList();
            foreach (var settingGroup in enabled.GroupBy(p => (settings[p][DetectorRules.BruteForce]["failures"], settings[p][DetectorRules.BruteForce]["window_minutes"])))
            {
                var (n, minutes) = settingGroup.Key;
                foreach (var run in HotRuns(list, f => f.At, f => f.Seq > lo, (int)n, TimeSpan.FromMinutes(minutes), (a, _) => true))
                {
                    var targets = run.Where(f => f.ActorType == "user" && Guid.TryParse(f.ActorId, out _)).Select(f => Guid.Parse(f.ActorId!)).Distinct().ToList();
                    IEnumerable<Guid> raiseIn = settingGroup;
                    if (chain == AuditEventDraft.OrganizationChain && targets.Count > 0)
                    {
                        memberships ??= await db.ProjectMembers.AsNoTracking().GroupBy(m => m.UserId).ToDictionaryAsync(x => x.Key, x => x.Select(m => m.ProjectId).ToList(), ct);
                        var theirs = targets.SelectMany(t => memberships.GetValueOrDefault(t) ?? []).ToHashSet();
                        raiseIn = settingGroup.Where(theirs.Contains);
                    }
                    var (kind, value) = g.Key;
                    var what = kind == "ip" ? $"from {value}" : $"for key prefix {value}";
                    var signIns = run.Count(f => f.EventType == "auth.sign_in_failed");
                    foreach (var project in raiseIn)
                        result.Add(new AlertFinding(project, Alerts.AlertTypes.BruteForce, DetectorRules.BruteForce, run.Count >= 4 * n ? AlertSeverities.Critical : AlertSeverities.Warning,
                            "scan", kind, value, kind == "ip" ? $"IP {value}" : $"key prefix {value}", null, targets.Count == 1 ? targets[0] : null,
                            $"Brute force {what}: {run.Count} failed attempts",
                            $"{run.Count} failed {(signIns == run.Count ? "sign-ins" : signIns == 0 ? "API key attempts" : "sign-ins and API key attempts")} {what} between {run[0].At:yyyy-MM-dd HH:mm} and {run[^1].At:HH:mm} UTC (threshold {n:0} in {minutes:0} minutes).",
                            new
                            {
                                explanation = DetectorRules.Get(DetectorRules.BruteForce).Explanation, threshold = new { failures = n, window_minutes = minutes },
                                observed = run.Count, source = new { kind, value }, sign_in_failures = signIns, api_key_failures = run.Count - signIns,
                                accounts = run.Select(f => f.Email ?? f.ActorId).Where(x => x is not null).Distinct().Take(20),
                                ips = run.Select(f => f.Ip).Where(x => x is not null).Distinct().Take(20),
                            },
                            [.. run.Select(f => f.Id).Take(AlertService.MaxEventIds)], run[0].At, run[^1].At, run.Count));
                }
            }
        }
        return result;
    }

    /// <summary>
    /// Runs of "hot" events: an event is hot when the window ending at it holds at least <paramref name="threshold"/>
    /// qualifying events; consecutive hot events within the window form one run, reported with the events that made
    /// its first event hot. A run is reported only when it holds a new event (past the watermark).
    /// </summary>
    private static List<List<T>> HotRuns<T>(List<T> sorted, Func<T, DateTimeOffset> at, Func<T, bool> isNew, int threshold, TimeSpan window, Func<List<T>, T, bool> counts,
        Func<IEnumerable<T>, int>? measure = null)
    {
        var runs = new List<List<T>>();
        List<T>? current = null;
        var start = 0;
        for (var i = 0; i < sorted.Count; i++)
        {
            while (at(sorted[i]) - at(sorted[start]) > window) start++;
            var span = sorted.GetRange(start, i - start + 1);
            var size = measure?.Invoke(span) ?? span.Count;
            if (size >= threshold)
            {
                if (current is not null && at(sorted[i]) - at(current[^1]) <= window) current.Add(sorted[i]);
                else
                {
                    if (current is not null) runs.Add(current);
                    current = [.. span];
                }
            }
        }
        if (current is not null) runs.Add(current);
        return runs.Where(r => r.Any(isNew)).ToList();
    }

    // ---------------------------------------------------------------- profiles: off-hours, volume, dormancy

    private sealed record ProfileGroup(string ActorId, string ActorType, string? Email, int Day, int Hour, long Events, long Rows, DateTimeOffset First, DateTimeOffset Last);

    private async Task<List<ProfileGroup>> ProfileGroupsAsync(DbConnection conn, Guid chain, long lo, long hi, CancellationToken ct)
    {
        await using var cmd = Command(conn,
            $"SELECT actor_id, actor_type, max(actor_email), {DayExpr} AS d, {HourExpr} AS h, count(*), sum(coalesce(rows_returned, 0)), min(occurred_at), max(occurred_at) " +
            "FROM audit_events WHERE project_id = @p AND seq > @lo AND seq <= @hi AND actor_id IS NOT NULL AND actor_type IN ('user', 'api_key') AND event_type NOT LIKE 'auth.%' " +
            $"GROUP BY actor_id, actor_type, {DayExpr}, {HourExpr}", chain, lo, hi);
        var list = new List<ProfileGroup>();
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
            list.Add(new ProfileGroup(r.GetString(0), r.GetString(1), Str(r, 2), (int)Long(r, 3), (int)Long(r, 4), Long(r, 5), Long(r, 6), Time(r, 7), Time(r, 8)));
        return list;
    }

    private async Task<List<AlertFinding>> ProfileRulesAsync(DbConnection conn, Guid chain, List<ProfileGroup> batch, Dictionary<string, RuleSettings> s, CancellationToken ct)
    {
        var result = new List<AlertFinding>();
        if (batch.Count == 0) return result;
        var off = s[DetectorRules.OffHours];
        var vol = s[DetectorRules.VolumeSpike];
        var dormant = s[DetectorRules.DormantKey];
        var lookback = (int)Math.Max(off["baseline_days"], vol["baseline_days"]);
        var minDay = batch.Min(b => b.Day) - lookback;
        var maxDay = batch.Max(b => b.Day);

        // What was learned before this range, merged with this range: (actor) -> day -> hour -> (events, rows).
        var profile = new Dictionary<string, Dictionary<int, Dictionary<int, (long Events, long Rows)>>>();
        void AddTo(string actor, int day, int hour, long events, long rows)
        {
            if (!profile.TryGetValue(actor, out var days)) profile[actor] = days = new();
            if (!days.TryGetValue(day, out var hours)) days[day] = hours = new();
            var cur = hours.GetValueOrDefault(hour);
            hours[hour] = (cur.Events + events, cur.Rows + rows);
        }
        var actors = batch.Select(b => b.ActorId).ToHashSet();
        await using (var cmd = Command(conn, "SELECT actor_id, day, hour, events, \"rows\" FROM security_activity_profiles WHERE project_id = @p AND day >= @d0 AND day <= @d1", chain, 0, 0))
        {
            AuditReader.Add(cmd, "@d0", minDay);
            AuditReader.Add(cmd, "@d1", maxDay);
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct))
                if (actors.Contains(r.GetString(0))) AddTo(r.GetString(0), (int)Long(r, 1), (int)Long(r, 2), Long(r, 3), Long(r, 4));
        }
        // Each actor's first day ever and last active day before the loaded range (dormancy can span months).
        var firstDay = new Dictionary<string, int>();
        var lastBefore = new Dictionary<string, int>();
        await using (var cmd = Command(conn, "SELECT actor_id, min(day), max(CASE WHEN day < @d0 THEN day END) FROM security_activity_profiles WHERE project_id = @p GROUP BY actor_id", chain, 0, 0))
        {
            AuditReader.Add(cmd, "@d0", minDay);
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct))
            {
                if (!actors.Contains(r.GetString(0))) continue;
                firstDay[r.GetString(0)] = (int)Long(r, 1);
                if (!r.IsDBNull(2)) lastBefore[r.GetString(0)] = (int)Long(r, 2);
            }
        }
        foreach (var b in batch)
        {
            AddTo(b.ActorId, b.Day, b.Hour, b.Events, b.Rows);
            firstDay[b.ActorId] = Math.Min(firstDay.GetValueOrDefault(b.ActorId, int.MaxValue), b.Day);
        }

        foreach (var byActor in batch.GroupBy(b => (b.ActorId, b.ActorType)))
        {
            var (actor, actorType) = byActor.Key;
            var days = profile[actor];
            var label = Label(actorType, actor, byActor.Select(b => b.Email).FirstOrDefault(e => e is not null));
            var first = firstDay[actor];
            foreach (var dayGroup in byActor.GroupBy(b => b.Day).OrderBy(g => g.Key))
            {
                var day = dayGroup.Key;
                var dayFirst = dayGroup.Min(b => b.First);
                var dayLast = dayGroup.Max(b => b.Last);

                if (off.Enabled)
                {
                    var from = day - (int)off["baseline_days"];
                    var history = days.Where(d => d.Key >= from && d.Key < day).ToList();
                    if (history.Count >= off["min_history_days"])
                    {
                        var usual = Enumerable.Range(0, 24).Where(h => history.Count(d => d.Value.ContainsKey(h)) >= off["min_hour_days"]).ToHashSet();
                        var near = WorkingHours(usual);
                        var odd = dayGroup.Where(b => !near.Contains(b.Hour)).OrderBy(b => b.Hour).ToList();
                        if (odd.Count > 0 && usual.Count > 0)
                        {
                            var f0 = odd.Min(b => b.First);
                            var f1 = odd.Max(b => b.Last);
                            var ids = await EventIdsAsync(conn, chain, actor, f0, f1, null, null, ct);
                            result.Add(Finding(chain, DetectorRules.OffHours, AlertSeverities.Warning, actorType, actor, label,
                                $"Off-hours activity ({label})",
                                $"{label} was active at {string.Join(", ", odd.Select(b => $"{b.Hour:00}:00"))} UTC on {DayStart(day):yyyy-MM-dd}; its usual hours are {Hours(usual)} (learned from {history.Count} active days).",
                                new
                                {
                                    explanation = off.Definition.Explanation, threshold = off.Values, baseline = new { usual_hours_utc = usual.OrderBy(h => h), active_days = history.Count },
                                    observed = new { hours_utc = odd.Select(b => b.Hour), events = odd.Sum(b => b.Events), day = DayStart(day).ToString("yyyy-MM-dd") },
                                }, ids, f0, f1, (int)odd.Sum(b => b.Events)));
                        }
                    }
                }

                if (vol.Enabled)
                {
                    var baselineDays = (int)vol["baseline_days"];
                    var start = Math.Max(first, day - baselineDays);
                    var historyLen = day - start;
                    if (historyLen >= vol["min_history_days"])
                    {
                        var totals = Enumerable.Range(start, historyLen).Select(d => days.TryGetValue(d, out var h) ? h.Values.Sum(v => v.Rows) : 0L).Select(x => (double)x).ToList();
                        var observed = days[day].Values.Sum(v => v.Rows);
                        var median = Median(totals);
                        var mad = Median(totals.Select(x => Math.Abs(x - median)).ToList());
                        // Floored at a quarter of the median: daily volumes of people and agents swing widely, and a tiny MAD over a short
                        // history would otherwise turn an ordinary busy day into a "spike".
                        var scale = Math.Max(1.4826 * mad, Math.Max(1, 0.25 * median));
                        var z = (observed - median) / scale;
                        if (z >= vol["z_threshold"] && observed >= vol["min_rows"])
                        {
                            var ids = await EventIdsAsync(conn, chain, actor, dayFirst, dayLast, "rows_returned > 0", null, ct);
                            result.Add(Finding(chain, DetectorRules.VolumeSpike, z >= 3 * vol["z_threshold"] ? AlertSeverities.Critical : AlertSeverities.Warning, actorType, actor, label,
                                $"Volume spike ({label}): {observed:N0} rows in a day",
                                $"{label} received {observed:N0} rows on {DayStart(day):yyyy-MM-dd}; its daily median over {historyLen} days is {median:N0} (robust z-score {z:F1}, threshold {vol["z_threshold"]:0.#}).",
                                new
                                {
                                    explanation = vol.Definition.Explanation, threshold = vol.Values,
                                    baseline = new { median_rows_per_day = median, mad, days = historyLen }, observed = new { rows = observed, z_score = Math.Round(z, 2), day = DayStart(day).ToString("yyyy-MM-dd") },
                                }, ids, dayFirst, dayLast));
                        }
                    }
                }

                if (dormant.Enabled && actorType == "api_key")
                {
                    var earlier = days.Keys.Where(d => d < day).DefaultIfEmpty(int.MinValue).Max();
                    if (earlier == int.MinValue && lastBefore.TryGetValue(actor, out var lb)) earlier = lb;
                    if (earlier != int.MinValue && day - earlier >= dormant["dormant_days"])
                    {
                        var ids = await EventIdsAsync(conn, chain, actor, dayFirst, dayLast, null, null, ct);
                        result.Add(Finding(chain, DetectorRules.DormantKey, AlertSeverities.Warning, actorType, actor, label,
                            $"Dormant key active again ({label})",
                            $"{label} was last used on {DayStart(earlier):yyyy-MM-dd} and is active again on {DayStart(day):yyyy-MM-dd} after {day - earlier} days.",
                            new
                            {
                                explanation = dormant.Definition.Explanation, threshold = dormant.Values,
                                baseline = new { last_active_day = DayStart(earlier).ToString("yyyy-MM-dd") }, observed = new { idle_days = day - earlier, events = dayGroup.Sum(b => b.Events) },
                            }, ids, dayFirst, dayLast));
                    }
                }
            }
        }
        return result;
    }

    /// <summary>
    /// The usual hours widened into a working window: gaps of up to four hours between usual hours are filled (a
    /// quiet user does not touch every hour of its day), then one hour either side.
    /// </summary>
    private static HashSet<int> WorkingHours(HashSet<int> usual)
    {
        var sorted = usual.OrderBy(h => h).ToList();
        var result = new HashSet<int>(usual);
        for (var i = 0; i < sorted.Count; i++)
        {
            var from = sorted[i];
            var to = sorted[(i + 1) % sorted.Count];
            var gap = (to - from + 24) % 24;
            if (gap is > 1 and <= 5) for (var h = 1; h < gap; h++) result.Add((from + h) % 24);
        }
        foreach (var h in result.ToList()) { result.Add((h + 23) % 24); result.Add((h + 1) % 24); }
        return result;
    }

    private static string Hours(IEnumerable<int> hours)
    {
        var sorted = hours.OrderBy(h => h).ToList();
        var parts = new List<string>();
        for (var i = 0; i < sorted.Count;)
        {
            var j = i;
            while (j + 1 < sorted.Count && sorted[j + 1] == sorted[j] + 1) j++;
            parts.Add(i == j ? $"{sorted[i]:00}:00" : $"{sorted[i]:00}:00–{sorted[j]:00}:59");
            i = j + 1;
        }
        return string.Join(", ", parts);
    }

    private static double Median(List<double> values)
    {
        if (values.Count == 0) return 0;
        var s = values.OrderBy(x => x).ToList();
        return s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2;
    }

    private async Task UpsertProfilesAsync(PortalDbContext db, Guid chain, List<ProfileGroup> groups, CancellationToken ct)
    {
        // Several groups of one batch may share a key only if an actor changed type; merge to be safe.
        var merged = groups.GroupBy(g => (g.ActorId, g.Day, g.Hour)).Select(g => (g.Key.ActorId, g.Key.Day, g.Key.Hour, g.First().ActorType, Events: g.Sum(x => x.Events), Rows: g.Sum(x => x.Rows))).ToList();
        foreach (var chunk in merged.Chunk(300))
        {
            var sql = new StringBuilder("INSERT INTO security_activity_profiles (project_id, actor_id, day, hour, actor_type, events, \"rows\") VALUES ");
            var args = new List<object>();
            for (var i = 0; i < chunk.Length; i++)
            {
                var c = chunk[i];
                if (i > 0) sql.Append(", ");
                var b = args.Count;
                sql.Append($"({{{b}}}, {{{b + 1}}}, {{{b + 2}}}, {{{b + 3}}}, {{{b + 4}}}, {{{b + 5}}}, {{{b + 6}}})");
                args.AddRange([AuditReader.Id(database, chain), c.ActorId, c.Day, c.Hour, c.ActorType, c.Events, c.Rows]);
            }
            sql.Append(" ON CONFLICT (project_id, actor_id, day, hour) DO UPDATE SET events = security_activity_profiles.events + excluded.events, \"rows\" = security_activity_profiles.\"rows\" + excluded.\"rows\"");
            await db.Database.ExecuteSqlRawAsync(sql.ToString(), args, ct);
        }
    }

    // ---------------------------------------------------------------- new source

    private sealed record SourceRow(string ActorId, string ActorType, string Kind, string Value, DateTimeOffset First, DateTimeOffset Last, long Events, string? Email);

    private async Task<(List<AlertFinding>, List<SourceRow>)> NewSourcesAsync(DbConnection conn, Guid chain, long lo, long hi, RuleSettings s, CancellationToken ct)
    {
        var batch = new List<SourceRow>();
        foreach (var (kind, column) in new[] { ("ip", "client_ip"), ("ua", "user_agent") })
        {
            await using var cmd = Command(conn,
                $"SELECT actor_id, actor_type, {column}, min(occurred_at), max(occurred_at), count(*), max(actor_email) FROM audit_events WHERE project_id = @p AND seq > @lo AND seq <= @hi " +
                $"AND actor_id IS NOT NULL AND actor_type IN ('user', 'api_key') AND {column} IS NOT NULL AND event_type NOT LIKE 'auth.%' GROUP BY actor_id, actor_type, {column}", chain, lo, hi);
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct))
            {
                var value = r.GetString(2);
                if (value.Length > 512) value = value[..512];
                batch.Add(new SourceRow(r.GetString(0), r.GetString(1), kind, value, Time(r, 3), Time(r, 4), Long(r, 5), Str(r, 6)));
            }
        }
        if (batch.Count == 0) return ([], []);
        var known = new Dictionary<string, Dictionary<(string, string), DateTimeOffset>>();
        var actors = batch.Select(b => b.ActorId).ToHashSet();
        await using (var cmd = Command(conn, "SELECT actor_id, kind, value, first_seen_at FROM security_known_sources WHERE project_id = @p", chain, 0, 0))
        await using (var r = await cmd.ExecuteReaderAsync(ct))
            while (await r.ReadAsync(ct))
            {
                var a = r.GetString(0);
                if (!actors.Contains(a)) continue;
                if (!known.TryGetValue(a, out var set)) known[a] = set = new();
                set[(r.GetString(1), r.GetString(2))] = Time(r, 3);
            }

        var result = new List<AlertFinding>();
        var fresh = new List<SourceRow>();
        foreach (var byActor in batch.GroupBy(b => (b.ActorId, b.ActorType)))
        {
            if (!known.TryGetValue(byActor.Key.ActorId, out var set)) known[byActor.Key.ActorId] = set = new();
            var news = new List<SourceRow>();
            foreach (var src in byActor.OrderBy(b => b.First))
            {
                if (set.ContainsKey((src.Kind, src.Value))) continue;
                var actorFirst = set.Count == 0 ? src.First : set.Values.Min();
                set[(src.Kind, src.Value)] = src.First;
                fresh.Add(src);
                if (s.Enabled && src.First - actorFirst >= TimeSpan.FromDays(s["learning_days"]) && set.Count > 1) news.Add(src);
            }
            if (news.Count == 0) continue;
            var (actor, actorType) = byActor.Key;
            var label = Label(actorType, actor, byActor.Select(b => b.Email).FirstOrDefault(e => e is not null));
            var ids = new List<Guid>();
            foreach (var n in news.Take(5))
                ids.AddRange(await EventIdsAsync(conn, chain, actor, n.First, n.Last, n.Kind == "ip" ? "client_ip = @x" : "user_agent = @x", n.Value, ct, 3));
            var described = string.Join("; ", news.Take(5).Select(n => $"{(n.Kind == "ip" ? "IP" : "user agent")} {n.Value}"));
            result.Add(Finding(chain, DetectorRules.NewSource, AlertSeverities.Info, actorType, actor, label,
                $"New source for {label}", $"{label} was seen from a new {described}, first at {news[0].First:yyyy-MM-dd HH:mm} UTC.",
                new
                {
                    explanation = s.Definition.Explanation, threshold = s.Values,
                    baseline = new { known_ips = set.Keys.Count(k => k.Item1 == "ip") - news.Count(n => n.Kind == "ip"), known_user_agents = set.Keys.Count(k => k.Item1 == "ua") - news.Count(n => n.Kind == "ua") },
                    observed = news.Select(n => new { kind = n.Kind == "ip" ? "ip" : "user_agent", value = n.Value, first_seen = n.First, events = n.Events }),
                }, ids, news.Min(n => n.First), news.Max(n => n.Last), news.Count));
        }
        return (result, fresh);
    }

    private async Task InsertSourcesAsync(PortalDbContext db, Guid chain, List<SourceRow> rows, CancellationToken ct)
    {
        foreach (var chunk in rows.Chunk(300))
        {
            var sql = new StringBuilder("INSERT INTO security_known_sources (project_id, actor_id, kind, value, first_seen_at) VALUES ");
            var args = new List<object>();
            for (var i = 0; i < chunk.Length; i++)
            {
                if (i > 0) sql.Append(", ");
                var b = args.Count;
                sql.Append($"({{{b}}}, {{{b + 1}}}, {{{b + 2}}}, {{{b + 3}}}, {{{b + 4}}})");
                args.AddRange([AuditReader.Id(database, chain), chunk[i].ActorId, chunk[i].Kind, chunk[i].Value, AuditReader.Time(database, chunk[i].First)]);
            }
            sql.Append(" ON CONFLICT (project_id, actor_id, kind, value) DO NOTHING");
            await db.Database.ExecuteSqlRawAsync(sql.ToString(), args, ct);
        }
    }

    // ---------------------------------------------------------------- bulk export / exfiltration

    private sealed record Read(long Seq, Guid Id, DateTimeOffset At, string ActorId, string ActorType, string? Query, long Rows, string? Email, bool Sensitive);

    private async Task<List<AlertFinding>> ExportsAsync(DbConnection conn, Guid chain, long lo, long hi, DateTimeOffset minAt, RuleSettings s, CancellationToken ct)
    {
        var result = new List<AlertFinding>();
        if (!s.Enabled) return result;
        var sensitive = string.Join(" OR ", DetectorRules.SensitiveClassifications.Select(c => $"data_classifications LIKE '%\"{c}\"%'"));
        await using var cmd = Command(conn,
            "SELECT seq, id, occurred_at, actor_id, actor_type, resource_id, coalesce(rows_returned, 0), actor_email, " +
            $"CASE WHEN data_classifications IS NOT NULL AND ({sensitive}) THEN 1 ELSE 0 END " +
            $"FROM audit_events WHERE project_id = @p AND event_type = '{Executed}' AND occurred_at >= @from AND seq <= @hi AND actor_id IS NOT NULL " +
            $"AND (rows_returned >= @big OR (data_classifications IS NOT NULL AND ({sensitive}))) ORDER BY occurred_at, seq", chain, lo, hi);
        AuditReader.Add(cmd, "@from", AuditReader.Time(database, minAt.AddMinutes(-s["window_minutes"])));
        AuditReader.Add(cmd, "@big", (long)s["export_rows"]);
        var reads = new List<Read>();
        await using (var r = await cmd.ExecuteReaderAsync(ct))
            while (await r.ReadAsync(ct))
                reads.Add(new Read(r.GetInt64(0), Id(r, 1), Time(r, 2), r.GetString(3), r.GetString(4), Str(r, 5), Long(r, 6), Str(r, 7), Long(r, 8) == 1));

        foreach (var byActor in reads.GroupBy(x => (x.ActorId, x.ActorType)))
        {
            var (actor, actorType) = byActor.Key;
            var label = Label(actorType, actor, byActor.Select(b => b.Email).FirstOrDefault(e => e is not null));
            var big = byActor.Where(x => x.Seq > lo && x.Rows >= s["export_rows"]).ToList();
            if (big.Count > 0)
                result.Add(Finding(chain, DetectorRules.BulkExport, AlertSeverities.Critical, actorType, actor, label,
                    $"Large export ({label}): {big.Max(x => x.Rows):N0} rows in one call",
                    $"{label} received {big.Count} result(s) of at least {s["export_rows"]:N0} rows (largest {big.Max(x => x.Rows):N0}).",
                    new { explanation = s.Definition.Explanation, threshold = s.Values, observed = new { calls = big.Count, largest = big.Max(x => x.Rows), total_rows = big.Sum(x => x.Rows) } },
                    [.. big.Select(x => x.Id).Take(AlertService.MaxEventIds)], big[0].At, big[^1].At, big.Count));

            var sens = byActor.Where(x => x.Sensitive && x.Query is not null).ToList();
            foreach (var run in HotRuns(sens, x => x.At, x => x.Seq > lo, (int)s["sensitive_queries"], TimeSpan.FromMinutes(s["window_minutes"]), (_, _) => true,
                         span => span.Select(x => x.Query).Distinct().Count()))
            {
                var distinct = run.Select(x => x.Query).Distinct().Count();
                result.Add(Finding(chain, DetectorRules.BulkExport, AlertSeverities.Critical, actorType, actor, label,
                    $"Many sensitive queries ({label}): {distinct} in {s["window_minutes"]:0} minutes",
                    $"{label} ran {distinct} different queries over sensitive data ({run.Count} calls, {run.Sum(x => x.Rows):N0} rows) between {run[0].At:yyyy-MM-dd HH:mm} and {run[^1].At:HH:mm} UTC.",
                    new
                    {
                        explanation = s.Definition.Explanation, threshold = s.Values,
                        observed = new { distinct_sensitive_queries = distinct, calls = run.Count, rows = run.Sum(x => x.Rows), queries = run.Select(x => x.Query).Distinct().Take(20) },
                    },
                    [.. run.Select(x => x.Id).Take(AlertService.MaxEventIds)], run[0].At, run[^1].At, run.Count));
            }
        }
        return result;
    }

    // ---------------------------------------------------------------- privilege change

    private async Task<List<AlertFinding>> PrivilegeAsync(DbConnection conn, Guid chain, long lo, long hi, RuleSettings s, CancellationToken ct)
    {
        var result = new List<AlertFinding>();
        if (!s.Enabled) return result;
        await using var cmd = Command(conn,
            "SELECT id, occurred_at, event_type, resource_type, resource_id, actor_id, actor_email, before_state, after_state, security_level, action, details FROM audit_events " +
            "WHERE project_id = @p AND seq > @lo AND seq <= @hi AND (event_type IN ('member.added', 'member.role_changed', 'member.two_factor_reset', 'api_key.created', 'api_key.rotated') " +
            "OR (resource_type IN ('column_mask', 'mask') AND action IN ('delete', 'remove', 'deleted', 'removed'))) ORDER BY seq", chain, lo, hi);
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
        {
            var id = Id(r, 0);
            var at = Time(r, 1);
            var type = r.GetString(2);
            var resourceId = Str(r, 4) ?? "";
            var by = Str(r, 6) ?? Str(r, 5) ?? "someone";
            var before = Str(r, 7);
            var after = Str(r, 8);
            string? title = null, description = null, subjectType = null, subjectId = null, label = null;
            var severity = AlertSeverities.Warning;
            if (type == "member.two_factor_reset")
            {
                var details = Str(r, 11);
                subjectType = "user";
                subjectId = Prop(details, "user_id") ?? resourceId;
                label = Prop(details, "email") ?? subjectId;
                title = $"Two-factor sign-in turned off for {label}";
                description = $"{by} turned off two-factor sign-in for {label}: the account is protected by its password alone until they set it up again.";
            }
            else if (type.StartsWith("member.", StringComparison.Ordinal))
            {
                if (Prop(after, "role") != "admin" || Prop(before, "role") == "admin") continue;
                var email = Prop(after, "email");
                subjectType = "user";
                subjectId = Prop(after, "user_id") ?? resourceId;
                label = email ?? subjectId;
                severity = AlertSeverities.Critical;
                title = $"Admin role granted to {label}";
                description = $"{by} made {label} an admin of the project.";
            }
            else if (type.StartsWith("api_key.", StringComparison.Ordinal))
            {
                if (Str(r, 9) != "warning") continue;
                subjectType = "api_key";
                subjectId = resourceId;
                var name = Prop(after, "name") ?? Prop(after, "key") ?? resourceId;
                label = $"API key {name}";
                title = $"Broad API key {(type == "api_key.created" ? "issued" : "rotated")}: {name}";
                description = $"{by} {(type == "api_key.created" ? "issued" : "rotated")} a key with broad reach (admin role or no query scopes).";
            }
            else
            {
                subjectType = "resource";
                subjectId = $"mask:{resourceId}";
                label = "column mask";
                title = "Column mask removed";
                description = $"{by} removed a column mask: masked data is now visible to roles that could not read it.";
            }
            var (st, key, user) = Subject(subjectType, subjectId);
            result.Add(new AlertFinding(chain, Alerts.AlertTypes.PrivilegeChange, DetectorRules.PrivilegeChange, severity, "scan", st, subjectId, label, key, user, title, description,
                new { explanation = s.Definition.Explanation, change = type, by, before = Json(before), after = Json(after) }, [id], at, at));
        }
        return result;
    }

    private static string? Prop(string? json, string name)
    {
        if (string.IsNullOrEmpty(json)) return null;
        try
        {
            using var doc = JsonDocument.Parse(json);
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v.ToString() : null;
        }
        catch (JsonException) { return null; }
    }

    private static JsonElement? Json(string? json)
    {
        if (string.IsNullOrEmpty(json)) return null;
        try { using var doc = JsonDocument.Parse(json); return doc.RootElement.Clone(); }
        catch (JsonException) { return null; }
    }
}
