namespace Portal.Domain.Compliance;

/// <summary>What a compliance officer asks for. <see cref="To"/> is exclusive.</summary>
public sealed record ReportParameters
{
    public string Type { get; init; } = ReportTypes.Soc2;
    public DateTimeOffset From { get; init; }
    public DateTimeOffset To { get; init; }
    /// <summary>GDPR: an e-mail address or customer id to find in every event's parameters and details.</summary>
    public string? SubjectIdentifier { get; init; }
    /// <summary>Custom: only these event types (exact, or a prefix ending in '.' such as "member.").</summary>
    public IReadOnlyList<string>? EventTypes { get; init; }
    /// <summary>Custom: only events touching one of these classification labels.</summary>
    public IReadOnlyList<string>? Classifications { get; init; }
    /// <summary>Custom: only events by these actors (user e-mail, user id or API key id).</summary>
    public IReadOnlyList<string>? Users { get; init; }
}

public enum ColumnAlign { Left, Right }

public sealed record ReportColumn(string Header, double Weight, ColumnAlign Align = ColumnAlign.Left);

/// <summary>A table of the report. <see cref="TotalRows"/> exceeds Rows.Count when the PDF shows only the first rows.</summary>
public sealed record ReportTable(IReadOnlyList<ReportColumn> Columns, IReadOnlyList<string[]> Rows, long TotalRows);

/// <summary>A section: a heading, an explanation, and a table or the sentence saying there is nothing in the period.</summary>
public sealed record ReportSection(string Title, string? Intro, ReportTable? Table, string? Empty = null);

public sealed record Headline(string Label, string Value);

public sealed record DayActivity(DateOnly Day, long Succeeded, long Denied);

public sealed record ReasonCount(string Reason, long Count);

public sealed record ChainResult(bool Ok, long EventsChecked, string Message, long FirstSeq, long LastSeq, string? LastHash);

/// <summary>
/// Everything a report shows, gathered from the database before rendering. Its canonical JSON is hashed into the
/// "data set SHA-256" printed on the last page, so the figures and rows can be tied to the signed PDF.
/// </summary>
public sealed record ReportData
{
    public required Guid ReportId { get; init; }
    public required string Type { get; init; }
    public required string Title { get; init; }
    public required string ProjectName { get; init; }
    public required Guid ProjectId { get; init; }
    public required DateTimeOffset From { get; init; }
    public required DateTimeOffset To { get; init; }
    public required string GeneratedBy { get; init; }
    public required DateTimeOffset GeneratedAt { get; init; }
    public required string Generator { get; init; }
    public required long EventCount { get; init; }
    public required IReadOnlyList<Headline> Headlines { get; init; }
    public required IReadOnlyList<DayActivity> DailyActivity { get; init; }
    public required IReadOnlyList<ReasonCount> DenialsByReason { get; init; }
    public required IReadOnlyList<ReportSection> Sections { get; init; }
    /// <summary>Caveats shown in the executive summary (archived part of the period, what the trail does not record).</summary>
    public required IReadOnlyList<string> Notes { get; init; }
    public required ChainResult Chain { get; init; }
    public IReadOnlyList<string> Filters { get; init; } = [];
}
