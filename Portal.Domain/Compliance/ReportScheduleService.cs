using Microsoft.EntityFrameworkCore;
using Portal.Domain.Audit;
using Portal.Domain.Persistence;

namespace Portal.Domain.Compliance;

/// <summary>
/// Monthly and quarterly reports per project and type. Each schedule is due at the start of the next calendar month or
/// quarter (UTC) and then covers the period that just ended. A due schedule is claimed by advancing its next_run_at
/// with a compare-and-set, so several job workers never produce the same period twice.
/// </summary>
public sealed class ReportScheduleService(IDbContextFactory<PortalDbContext> dbFactory, TimeProvider clock, ComplianceReportService reports, PortalAudit audit)
{
    public const int MaxPerProject = 20;

    public static DateTimeOffset NextBoundary(DateTimeOffset after, string frequency)
    {
        var t = after.UtcDateTime;
        var month = new DateTime(t.Year, t.Month, 1, 0, 0, 0, DateTimeKind.Utc);
        var next = frequency == ReportFrequency.Quarterly
            ? new DateTime(t.Year, (t.Month - 1) / 3 * 3 + 1, 1, 0, 0, 0, DateTimeKind.Utc).AddMonths(3)
            : month.AddMonths(1);
        return new DateTimeOffset(next);
    }

    public static DateTimeOffset PeriodStart(DateTimeOffset boundary, string frequency) =>
        boundary.AddMonths(frequency == ReportFrequency.Quarterly ? -3 : -1);

    public async Task<ComplianceReportSchedule> CreateAsync(Guid projectId, Guid userId, string type, string frequency, CancellationToken ct = default)
    {
        if (!ReportTypes.All.Contains(type) || type == ReportTypes.Custom)
            throw DomainException.Invalid("type", "Scheduled reports are SOC 2, GDPR or HIPAA.");
        if (!ReportFrequency.All.Contains(frequency)) throw DomainException.Invalid("frequency", "Choose monthly or quarterly.");
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        if (!await db.Projects.AnyAsync(p => p.Id == projectId, ct)) throw DomainException.NotFound("The project");
        if (await db.ComplianceReportSchedules.AnyAsync(s => s.ProjectId == projectId && s.ReportType == type && s.Frequency == frequency, ct))
            throw DomainException.Conflict($"A {frequency} {ReportTypes.Title(type)} is already scheduled.", "type");
        if (await db.ComplianceReportSchedules.CountAsync(s => s.ProjectId == projectId, ct) >= MaxPerProject)
            throw DomainException.Conflict($"A project can have at most {MaxPerProject} schedules.");
        var now = clock.GetUtcNow();
        var schedule = new ComplianceReportSchedule
        {
            ProjectId = projectId, ReportType = type, Frequency = frequency, CreatedBy = userId, CreatedAt = now, NextRunAt = NextBoundary(now, frequency),
        };
        db.ComplianceReportSchedules.Add(schedule);
        await db.SaveChangesAsync(ct);
        await audit.RecordAsync(new AuditEventDraft
        {
            ProjectId = projectId, EventType = "report.schedule_created", Actor = await PortalAudit.UserAsync(db, projectId, userId, ct),
            ResourceType = "report_schedule", ResourceId = schedule.Id.ToString(), Action = "create",
            AfterState = PortalAudit.Json(new { type, frequency, nextRunAt = schedule.NextRunAt }),
        }, ct);
        return schedule;
    }

    public async Task<IReadOnlyList<ComplianceReportSchedule>> ListAsync(Guid projectId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        return (await db.ComplianceReportSchedules.AsNoTracking().Where(s => s.ProjectId == projectId).ToListAsync(ct))
            .OrderBy(s => s.ReportType, StringComparer.Ordinal).ThenBy(s => s.Frequency, StringComparer.Ordinal).ToList();
    }

    public async Task DeleteAsync(Guid projectId, Guid scheduleId, Guid userId, CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var s = await db.ComplianceReportSchedules.FirstOrDefaultAsync(x => x.Id == scheduleId && x.ProjectId == projectId, ct)
            ?? throw DomainException.NotFound("The schedule");
        db.ComplianceReportSchedules.Remove(s);
        await db.SaveChangesAsync(ct);
        await audit.RecordAsync(new AuditEventDraft
        {
            ProjectId = projectId, EventType = "report.schedule_deleted", Actor = await PortalAudit.UserAsync(db, projectId, userId, ct),
            ResourceType = "report_schedule", ResourceId = scheduleId.ToString(), Action = "delete",
            BeforeState = PortalAudit.Json(new { type = s.ReportType, frequency = s.Frequency }),
        }, ct);
    }

    /// <summary>Generates every due schedule's report (the scheduled-reports job). Returns how many reports were produced.</summary>
    public async Task<int> RunDueAsync(string instance, CancellationToken ct = default)
    {
        var now = clock.GetUtcNow();
        List<ComplianceReportSchedule> due;
        await using (var db = await dbFactory.CreateDbContextAsync(ct))
            due = (await db.ComplianceReportSchedules.AsNoTracking().Where(s => s.Enabled).ToListAsync(ct)).Where(s => s.NextRunAt <= now).ToList();
        var produced = 0;
        foreach (var s in due)
        {
            ComplianceReport report;
            await using (var db = await dbFactory.CreateDbContextAsync(ct))
            {
                var boundary = s.NextRunAt;
                var next = NextBoundary(now, s.Frequency);
                // Compare-and-set: only the worker that moves next_run_at from the value it read produces this period.
                var claimed = await db.ComplianceReportSchedules.Where(x => x.Id == s.Id && x.NextRunAt == boundary)
                    .ExecuteUpdateAsync(u => u.SetProperty(x => x.NextRunAt, next).SetProperty(x => x.LastRunAt, now), ct);
                if (claimed == 0) continue;
                var email = await db.Users.AsNoTracking().Where(u => u.Id == s.CreatedBy).Select(u => u.Email).FirstOrDefaultAsync(ct);
                var p = new ReportParameters { Type = s.ReportType, From = PeriodStart(boundary, s.Frequency), To = boundary };
                report = await reports.CreateRowAsync(db, s.ProjectId, p, s.CreatedBy, email, s.Id, ct);
                await db.ComplianceReportSchedules.Where(x => x.Id == s.Id).ExecuteUpdateAsync(u => u.SetProperty(x => x.LastReportId, report.Id), ct);
            }
            if (await reports.GenerateAsync(s.ProjectId, report.Id, instance, ct)) produced++;
        }
        return produced;
    }
}
