namespace Portal.Domain.Gateway;

public enum DatasourceErrorKind
{
    /// <summary>The engine parsed the statement but it is not a single read-only query.</summary>
    Rejected,
    /// <summary>The engine could not parse or plan the statement.</summary>
    Syntax,
    /// <summary>The statement ran longer than its timeout and was interrupted.</summary>
    Timeout,
    /// <summary>The declared parameters do not match the placeholders in the SQL.</summary>
    Parameters,
    /// <summary>The engine failed while running the statement.</summary>
    Failed,
}

/// <summary>A refusal or failure reported by a datasource engine; the message is the engine's own words where possible.</summary>
public sealed class DatasourceException(DatasourceErrorKind kind, string message, int? position = null, Exception? inner = null)
    : Exception(message, inner)
{
    public DatasourceErrorKind Kind { get; } = kind;
    /// <summary>
    /// 1-based character position reported by the engine (PostgreSQL only). It counts in the statement as sent, where
    /// each @name became $n, so it can drift by a few characters after a placeholder.
    /// </summary>
    public int? Position { get; } = position;
}

/// <summary>A base-table column the statement reads, as the engine reports it. Column "*" means every column.</summary>
public sealed record ColumnRead(string Table, string Column);

public sealed record StatementAnalysis(
    IReadOnlyList<string> TablesRead,
    IReadOnlyList<ColumnRead> ColumnsRead,
    /// <summary>
    /// False when the statement combines rows from several selects (UNION/EXCEPT/INTERSECT, recursive CTEs, append
    /// plans). Engines then report the origin of a result column from one branch only, so masking must not trust it.
    /// </summary>
    bool OriginsTrusted,
    IReadOnlyList<string> Placeholders);

/// <summary>Where a result column's values come from; null table/column when the engine reports no single origin.</summary>
public sealed record ResultColumn(string Name, string? OriginTable, string? OriginColumn)
{
    public string? Origin => OriginTable is null || OriginColumn is null ? null : $"{OriginTable}.{OriginColumn}";
}

public sealed record QueryResult(
    IReadOnlyList<ResultColumn> Columns,
    IReadOnlyList<object?[]> Rows,
    bool Truncated,
    TimeSpan Duration,
    StatementAnalysis Analysis);

/// <summary>
/// A governed datasource. Every check here is made by the database engine itself (prepare/plan), never by
/// matching SQL text, and every execution runs on a read-only connection or transaction.
/// </summary>
public interface IDatasourceEngine
{
    /// <summary>Verifies the SQL is one read-only query whose placeholders match <paramref name="parameters"/>; lists what it reads.</summary>
    Task<StatementAnalysis> AnalyzeAsync(string sql, IReadOnlyList<QueryParameter> parameters, CancellationToken ct = default);

    /// <summary>Runs the SQL with bound values; reads at most <paramref name="rowCap"/> rows and flags truncation.</summary>
    Task<QueryResult> ExecuteAsync(string sql, IReadOnlyList<TypedParameter> parameters, int rowCap, TimeSpan timeout, CancellationToken ct = default);

    /// <summary>
    /// The base tables and their columns, as masks name them (lower-case, no schema), for the mask editor's choices.
    /// At most <see cref="SchemaColumn.MaxListed"/>; an engine that cannot list them answers an empty list.
    /// </summary>
    Task<IReadOnlyList<SchemaColumn>> ListColumnsAsync(CancellationToken ct = default) => Task.FromResult<IReadOnlyList<SchemaColumn>>([]);
}

public sealed record SchemaColumn(string Table, string Column)
{
    public const int MaxListed = 5000;
}

internal static class EngineChecks
{
    public static void MatchPlaceholders(IReadOnlyCollection<string> placeholders, IEnumerable<string> declared)
    {
        var declaredSet = declared.ToHashSet(StringComparer.Ordinal);
        var undeclared = placeholders.Where(p => !declaredSet.Contains(p)).ToList();
        var unused = declaredSet.Where(d => !placeholders.Contains(d)).Order(StringComparer.Ordinal).ToList();
        if (undeclared.Count > 0)
            throw new DatasourceException(DatasourceErrorKind.Parameters, $"The SQL uses undeclared parameter(s): {string.Join(", ", undeclared.Select(u => "@" + u))}.");
        if (unused.Count > 0)
            throw new DatasourceException(DatasourceErrorKind.Parameters, $"Declared parameter(s) not used in the SQL: {string.Join(", ", unused.Select(u => "@" + u))}.");
    }

    public static void CheckLimits(int rowCap, TimeSpan timeout)
    {
        if (rowCap < 1) throw new ArgumentOutOfRangeException(nameof(rowCap), "The row cap must be at least 1.");
        if (timeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(timeout), "The timeout must be positive.");
    }
}
