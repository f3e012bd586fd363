namespace Portal.Domain.Compliance;

/// <summary>
/// The figures every report type starts from, from a single GROUP BY over the period's events: one row per day × event
/// type × outcome × principal × classification set × failure reason, rolled up here into the daily chart, the
/// headline totals, denials by reason, executions by principal and classification, failures by principal, and per
/// event type counts (which tell the list sections whether they have anything to read, and how many rows in all).
/// <para>
/// One pass instead of one per figure: each extra pass re-reads every row of the period, which at a million events is
/// most of a report's cost. Memory holds the rolled-up figures (a few entries per principal), never the partial groups
/// or the events: partial rows are folded into the dictionaries as the reader hands them over.
/// </para>
/// </summary>
internal sealed class ReportTotals
{
    public readonly record struct Principal(string? Type, string? Id, string? Email);

    public readonly record struct ExecutionKey(Principal Who, string? Classifications);

    /// <summary>Outcome is the details' "outcome" and Action the event's action, as the reason label needs them.</summary>
    public readonly record struct FailureKey(Principal Who, string EventType, string? Outcome, string? Action);

    public sealed class Tally
    {
        public long Count, Rows;
        public DateTimeOffset Last = DateTimeOffset.MinValue;

        public void Add(long count, long rows, DateTimeOffset last)
        {
            Count += count;
            Rows += rows;
            if (last > Last) Last = last;
        }
    }

    public sealed class TypeTally
    {
        public long Count, WithState;
        /// <summary>The database's own answer to <c>event_type LIKE 'suggestion.%'</c> / <c>LIKE 'alert.%'</c>, so the lists select exactly what they did.</summary>
        public bool Suggestion, Alert;
    }

    public SortedDictionary<DateOnly, (long Ok, long Failed)> Daily { get; } = [];
    public long Total { get; private set; }
    public long Failures { get; private set; }
    public long Executed { get; private set; }
    public long Denied { get; private set; }
    public long KeyRejected { get; private set; }
    public long Changes { get; private set; }
    public long AlertLevel { get; private set; }
    /// <summary>The chain positions the period's events occupy (0 when the period is empty).</summary>
    public long FirstSeq { get; private set; }
    public long LastSeq { get; private set; }
    public Dictionary<ExecutionKey, Tally> Executions { get; } = [];
    public Dictionary<FailureKey, Tally> FailuresBy { get; } = [];
    public Dictionary<string, TypeTally> Types { get; } = new(StringComparer.Ordinal);

    public static async Task<ReportTotals> LoadAsync(ReportQueries q, CancellationToken ct)
    {
        var t = new ReportTotals();
        await q.PreferHashAggregationAsync(ct);
        var failed = $"NOT ({q.SuccessTrue})";
        // Classifications only matter for executions, outcome and action only for failures: leaving them NULL elsewhere
        // keeps the number of groups near principals × days instead of growing with every distinct value.
        await q.QueryAsync(
            $"{q.DayExpr}, event_type, CASE WHEN {q.SuccessTrue} THEN 1 ELSE 0 END, actor_type, actor_id, actor_email, " +
            $"CASE WHEN event_type = '{ReportQueries.ExecutedEvent}' THEN data_classifications END, " +
            $"CASE WHEN {failed} THEN {q.OutcomeExpr} END, CASE WHEN {failed} THEN action END, " +
            "count(*), sum(coalesce(rows_returned, 0)), max(occurred_at), min(seq), max(seq), " +
            "sum(CASE WHEN before_state IS NOT NULL OR after_state IS NOT NULL THEN 1 ELSE 0 END), sum(CASE WHEN security_level = 'alert' THEN 1 ELSE 0 END), " +
            "CASE WHEN event_type LIKE 'suggestion.%' THEN 1 ELSE 0 END, CASE WHEN event_type LIKE 'alert.%' THEN 1 ELSE 0 END",
            null, "GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9", r => t.Add(q, r), ct);
        return t;
    }

    private void Add(ReportQueries q, System.Data.Common.DbDataReader r)
    {
        var day = q.Day(ReportQueries.Long(r, 0));
        var type = ReportQueries.Str(r, 1)!;
        var ok = ReportQueries.Long(r, 2) == 1;
        var who = new Principal(ReportQueries.Str(r, 3), ReportQueries.Str(r, 4), ReportQueries.Str(r, 5));
        var n = ReportQueries.Long(r, 9);
        var rows = ReportQueries.Long(r, 10);
        var last = q.Time(r.GetValue(11));
        var firstSeq = ReportQueries.Long(r, 12);
        var lastSeq = ReportQueries.Long(r, 13);
        var withState = ReportQueries.Long(r, 14);

        var d = Daily.GetValueOrDefault(day);
        Daily[day] = ok ? (d.Ok + n, d.Failed) : (d.Ok, d.Failed + n);
        Total += n;
        if (!ok) Failures += n;
        Changes += withState;
        AlertLevel += ReportQueries.Long(r, 15);
        if (FirstSeq == 0 || firstSeq < FirstSeq) FirstSeq = firstSeq;
        if (lastSeq > LastSeq) LastSeq = lastSeq;

        if (type == ReportQueries.ExecutedEvent)
        {
            Executed += n;
            Get(Executions, new ExecutionKey(who, ReportQueries.Str(r, 6))).Add(n, rows, last);
        }
        else if (type == ReportQueries.DeniedEvent) Denied += n;
        else if (type == ReportQueries.KeyRejectedEvent) KeyRejected += n;
        if (!ok) Get(FailuresBy, new FailureKey(who, type, ReportQueries.Str(r, 7), ReportQueries.Str(r, 8))).Add(n, 0, last);

        if (!Types.TryGetValue(type, out var tt))
            Types[type] = tt = new TypeTally { Suggestion = ReportQueries.Long(r, 16) == 1, Alert = ReportQueries.Long(r, 17) == 1 };
        tt.Count += n;
        tt.WithState += withState;
    }

    private static Tally Get<TKey>(Dictionary<TKey, Tally> map, TKey key) where TKey : notnull
    {
        if (!map.TryGetValue(key, out var tally)) map[key] = tally = new Tally();
        return tally;
    }

    /// <summary>The label a failure is reported under: the gateway's outcome for denials, the rejection for API keys, else the event type.</summary>
    public static string Reason(FailureKey k) =>
        k.EventType == ReportQueries.DeniedEvent ? ReportDataBuilder.Humanize(k.Outcome ?? "denied")
        : k.EventType == ReportQueries.KeyRejectedEvent ? "API key " + (k.Action ?? "rejected")
        : k.EventType;
}
