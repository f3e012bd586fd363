using System.Text.RegularExpressions;
using Microsoft.EntityFrameworkCore;
using Portal.Domain.Audit;
using Portal.Domain.Gateway;
using Portal.Domain.Gateway.Catalog;
using Portal.Domain.Persistence;
using Portal.Domain.Tenancy;

namespace Portal.Domain.Access;

/// <summary>A mask as entered. Table is the base table (no schema); roles in VisibleToRoles see raw values.</summary>
public sealed record ColumnMaskRequest(
    Guid DatasourceId, string? Table, string? Column, MaskType MaskType, int ShowFirst = 0, int ShowLast = 0,
    IReadOnlyList<string>? VisibleToRoles = null, string? Classification = null);

public sealed record ColumnMaskRow(
    Guid Id, Guid DatasourceId, string Table, string Column, MaskType MaskType, int ShowFirst, int ShowLast,
    IReadOnlyList<string> VisibleToRoles, string? Classification, DateTimeOffset UpdatedAt)
{
    public MaskRule ToRule() => new(Table, Column, MaskType, VisibleToRoles, ShowFirst, ShowLast);
}

/// <summary>
/// Column masks per datasource, keyed by the origin <c>table.column</c> the engine reports, so a mask follows the
/// column through every approved query. Scoped by project id; another project's mask or datasource answers NotFound.
/// Every change is recorded in access_changes with the change and then appended to the audit trail with before/after;
/// removing or loosening a mask is a warning, since it shows data that was hidden.
/// </summary>
public sealed partial class ColumnMaskService(IDbContextFactory<PortalDbContext> dbFactory, TimeProvider clock, PortalAudit audit, Gateway.GatewayLookupCache? lookups = null)
{
    public const int MaxShown = 32;

    public async Task<ColumnMaskRow> CreateAsync(Guid projectId, ColumnMaskRequest request, Guid actor, CancellationToken ct = default)
    {
        var now = clock.GetUtcNow();
        var mask = new ColumnMask { ProjectId = projectId, TableName = "", ColumnName = "", MaskType = "", CreatedBy = actor, CreatedAt = now };
        Apply(mask, request, actor, now);
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        await RequireDatasourceAsync(db, projectId, request.DatasourceId, ct);
        await RequireUniqueAsync(db, mask, ct);
        db.Add(mask);
        var after = Describe(mask);
        AccessChanges.Stage(db, projectId, AccessSubjects.ColumnMask, mask.Id, "created", null, after, actor, now);
        await SaveAsync(db, mask, ct);
        lookups?.Invalidate(projectId);
        await AccessChanges.RecordAsync(audit, db, projectId, AccessSubjects.ColumnMask, mask.Id, "created", null, after, actor, AuditSecurityLevel.Normal, now, ct);
        return ToRow(mask);
    }

    public async Task<ColumnMaskRow> UpdateAsync(Guid projectId, Guid maskId, ColumnMaskRequest request, Guid actor, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var mask = await FindAsync(db, projectId, maskId, ct);
        await RequireDatasourceAsync(db, projectId, request.DatasourceId, ct);
        var before = Describe(mask);
        var loosened = Loosened(ToRow(mask), request);
        var now = clock.GetUtcNow();
        Apply(mask, request, actor, now);
        await RequireUniqueAsync(db, mask, ct);
        var after = Describe(mask);
        if (after == before) return ToRow(mask);
        AccessChanges.Stage(db, projectId, AccessSubjects.ColumnMask, mask.Id, "updated", before, after, actor, now);
        await SaveAsync(db, mask, ct);
        lookups?.Invalidate(projectId);
        await AccessChanges.RecordAsync(audit, db, projectId, AccessSubjects.ColumnMask, mask.Id, "updated", before, after, actor,
            loosened ? AuditSecurityLevel.Warning : AuditSecurityLevel.Normal, now, ct);
        return ToRow(mask);
    }

    public async Task DeleteAsync(Guid projectId, Guid maskId, Guid actor, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var mask = await FindAsync(db, projectId, maskId, ct);
        var before = Describe(mask);
        var now = clock.GetUtcNow();
        db.Remove(mask);
        AccessChanges.Stage(db, projectId, AccessSubjects.ColumnMask, mask.Id, "deleted", before, null, actor, now);
        try { await db.SaveChangesAsync(ct); }
        catch (DbUpdateConcurrencyException) { throw DomainException.NotFound("Column mask"); }
        lookups?.Invalidate(projectId);
        await AccessChanges.RecordAsync(audit, db, projectId, AccessSubjects.ColumnMask, mask.Id, "deleted", before, null, actor, AuditSecurityLevel.Warning, now, ct);
    }

    /// <summary>A change that lets more roles see raw values, or moves the mask to another column, uncovers data.</summary>
    private static bool Loosened(ColumnMaskRow was, ColumnMaskRequest now) =>
        (now.VisibleToRoles ?? []).Any(r => !was.VisibleToRoles.Contains(r?.Trim().ToLowerInvariant() ?? "", StringComparer.Ordinal))
        || !string.Equals(was.Table, now.Table?.Trim(), StringComparison.OrdinalIgnoreCase)
        || !string.Equals(was.Column, now.Column?.Trim(), StringComparison.OrdinalIgnoreCase)
        || was.DatasourceId != now.DatasourceId;

    /// <summary>What the trail keeps of a mask: where it applies, how, and who sees through it.</summary>
    private static string? Describe(ColumnMask m) => PortalAudit.Json(new
    {
        datasourceId = m.DatasourceId, table = m.TableName, column = m.ColumnName, maskType = m.MaskType, showFirst = m.ShowFirst, showLast = m.ShowLast,
        visibleToRoles = CatalogJson.ReadStrings(m.VisibleToRolesJson), classification = m.Classification,
    });

    public async Task<ColumnMaskRow> GetAsync(Guid projectId, Guid maskId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        return ToRow(await FindAsync(db, projectId, maskId, ct));
    }

    public async Task<Page<ColumnMaskRow>> ListAsync(Guid projectId, Guid? datasourceId, int skip, int take, CancellationToken ct = default)
    {
        take = Math.Clamp(take, 1, 500);
        skip = Math.Max(0, skip);
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var q = db.Set<ColumnMask>().AsNoTracking().Where(m => m.ProjectId == projectId);
        if (datasourceId is { } ds) q = q.Where(m => m.DatasourceId == ds);
        var total = await q.CountAsync(ct);
        var items = await q.OrderBy(m => m.TableName).ThenBy(m => m.ColumnName).ThenBy(m => m.Id).Skip(skip).Take(take).ToListAsync(ct);
        return new Page<ColumnMaskRow>(items.Select(ToRow).ToList(), total, skip, take);
    }

    /// <summary>The rules <see cref="MaskingEngine"/> applies to results from this datasource.</summary>
    public Task<IReadOnlyList<MaskRule>> RulesForAsync(Guid projectId, Guid datasourceId, CancellationToken ct = default) =>
        lookups is null ? LoadRulesAsync(projectId, datasourceId, ct)
            : lookups.GetOrLoadAsync(projectId, $"masks:{datasourceId:N}", () => LoadRulesAsync(projectId, datasourceId, ct));

    private async Task<IReadOnlyList<MaskRule>> LoadRulesAsync(Guid projectId, Guid datasourceId, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        await RequireDatasourceAsync(db, projectId, datasourceId, ct);
        var masks = await db.Set<ColumnMask>().AsNoTracking().Where(m => m.ProjectId == projectId && m.DatasourceId == datasourceId).ToListAsync(ct);
        return masks.Select(m => ToRow(m).ToRule()).ToList();
    }

    public static string MaskTypeName(MaskType type) => type switch
    {
        MaskType.EmailDomain => "email_domain",
        _ => type.ToString().ToLowerInvariant(),
    };

    public static MaskType ParseMaskType(string stored) => stored switch
    {
        "redact" => MaskType.Redact,
        "partial" => MaskType.Partial,
        "hash" => MaskType.Hash,
        "null" => MaskType.Null,
        "email_domain" => MaskType.EmailDomain,
        // Fail closed on a value this version does not know.
        _ => MaskType.Redact,
    };

    private static void Apply(ColumnMask mask, ColumnMaskRequest r, Guid actor, DateTimeOffset now)
    {
        mask.DatasourceId = r.DatasourceId;
        mask.TableName = Identifier(r.Table, "table", "Table");
        mask.ColumnName = Identifier(r.Column, "column", "Column");
        if (!Enum.IsDefined(r.MaskType)) throw DomainException.Invalid("maskType", "Mask must be redact, partial, hash, null or email_domain.");
        mask.MaskType = MaskTypeName(r.MaskType);
        if (r.MaskType == MaskType.Partial)
        {
            if (r.ShowFirst is < 0 or > MaxShown) throw DomainException.Invalid("showFirst", $"Show first must be between 0 and {MaxShown} characters.");
            if (r.ShowLast is < 0 or > MaxShown) throw DomainException.Invalid("showLast", $"Show last must be between 0 and {MaxShown} characters.");
            if (r.ShowFirst + r.ShowLast == 0) throw DomainException.Invalid("showLast", "A partial mask shows some first or last characters; use redact to hide the whole value.");
            mask.ShowFirst = r.ShowFirst;
            mask.ShowLast = r.ShowLast;
        }
        else
        {
            if (r.ShowFirst != 0 || r.ShowLast != 0) throw DomainException.Invalid("showFirst", "Only a partial mask shows first or last characters.");
            mask.ShowFirst = mask.ShowLast = 0;
        }
        var roles = new List<string>();
        foreach (var raw in r.VisibleToRoles ?? [])
        {
            var role = raw?.Trim().ToLowerInvariant();
            if (!Roles.IsValid(role)) throw DomainException.Invalid("visibleToRoles", $"'{raw}' is not a role; roles are {string.Join(", ", Roles.All)}.");
            if (!roles.Contains(role!)) roles.Add(role!);
        }
        mask.VisibleToRolesJson = CatalogJson.Write(roles);
        mask.Classification = r.Classification is null || string.IsNullOrWhiteSpace(r.Classification)
            ? null
            : Classifications.Normalize([r.Classification], "classification")[0];
        mask.UpdatedBy = actor;
        mask.UpdatedAt = now;
    }

    /// <summary>Stored lower-case: engines report origins in the case the schema uses, and rules match case-insensitively.</summary>
    private static string Identifier(string? value, string field, string label)
    {
        var v = value?.Trim();
        if (string.IsNullOrEmpty(v)) throw DomainException.Invalid(field, $"{label} is required.");
        if (!IdentifierPattern().IsMatch(v)) throw DomainException.Invalid(field, $"{label} must be a plain name (letters, digits, underscore; no schema prefix or quotes).");
        return v.ToLowerInvariant();
    }

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_$]{0,127}$", RegexOptions.CultureInvariant)]
    private static partial Regex IdentifierPattern();

    private static async Task RequireDatasourceAsync(PortalDbContext db, Guid projectId, Guid datasourceId, CancellationToken ct)
    {
        if (!await db.Set<Datasource>().AnyAsync(d => d.Id == datasourceId && d.ProjectId == projectId, ct))
            throw new DomainException(ErrorKind.NotFound, "Datasource was not found.", "datasourceId");
    }

    private static async Task RequireUniqueAsync(PortalDbContext db, ColumnMask mask, CancellationToken ct)
    {
        if (await db.Set<ColumnMask>().AnyAsync(m => m.DatasourceId == mask.DatasourceId && m.TableName == mask.TableName && m.ColumnName == mask.ColumnName && m.Id != mask.Id, ct))
            throw DomainException.Conflict($"{mask.TableName}.{mask.ColumnName} already has a mask on this datasource; edit that one.", "column");
    }

    private static async Task SaveAsync(PortalDbContext db, ColumnMask mask, CancellationToken ct)
    {
        try { await db.SaveChangesAsync(ct); }
        catch (DbUpdateException) { throw DomainException.Conflict($"{mask.TableName}.{mask.ColumnName} was given a mask at the same time; edit that one.", "column"); }
    }

    private static async Task<ColumnMask> FindAsync(PortalDbContext db, Guid projectId, Guid maskId, CancellationToken ct) =>
        await db.Set<ColumnMask>().FirstOrDefaultAsync(m => m.Id == maskId && m.ProjectId == projectId, ct) ?? throw DomainException.NotFound("Column mask");

    private static ColumnMaskRow ToRow(ColumnMask m) => new(m.Id, m.DatasourceId, m.TableName, m.ColumnName, ParseMaskType(m.MaskType),
        m.ShowFirst, m.ShowLast, CatalogJson.ReadStrings(m.VisibleToRolesJson), m.Classification, m.UpdatedAt);
}
