using System.Diagnostics;
using Portal.Domain.Audit;
using Portal.Domain.Compliance;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Compliance;

/// <summary>A project with a known set of audit events in last month, and the people who use the Reports page.</summary>
internal sealed class ReportsWorld
{
    public const string Admin = "ada@northwind.test", Officer = "carol@northwind.test", Analyst = "uma@northwind.test", Security = "sam@northwind.test";
    public const string Subject = "jane.doe@example.com";
    public const string Formula = "=HYPERLINK(\"http://evil.test\",\"click\")";

    public required Guid ProjectId { get; init; }
    public required Guid AdminId { get; init; }
    public required Guid OfficerId { get; init; }
    public required DateTimeOffset From { get; init; }
    public required DateTimeOffset To { get; init; }

    /// <summary>Last calendar month (UTC), the period the seeded events fall in.</summary>
    public static (DateTimeOffset From, DateTimeOffset To) LastMonth()
    {
        var now = DateTimeOffset.UtcNow;
        var to = new DateTimeOffset(now.Year, now.Month, 1, 0, 0, 0, TimeSpan.Zero);
        return (to.AddMonths(-1), to);
    }

    public static async Task<ReportsWorld> CreateAsync(PortalApp app, bool seedEvents = true)
    {
        var (admin, projectId) = await app.SetupAsync(Admin);
        await app.InstallSuiteAsync(projectId, admin.Id);
        var officer = await app.AddMemberAsync(projectId, Officer, Roles.Compliance, admin.Id);
        await app.AddMemberAsync(projectId, Analyst, Roles.User, admin.Id);
        await app.AddMemberAsync(projectId, Security, Roles.Security, admin.Id);
        var (from, to) = LastMonth();
        var world = new ReportsWorld { ProjectId = projectId, AdminId = admin.Id, OfficerId = officer, From = from, To = to };
        if (seedEvents) await world.SeedAsync(app.Get<AuditWriter>());
        return world;
    }

    /// <summary>
    /// 14 events in the period: 5 pii executions by one key (2 naming the data subject, 1 with a formula prompt), 2
    /// forbidden and 1 rate-limited denial, 1 revoked-key rejection, 1 role change, 1 approval, and an alert raised,
    /// acknowledged after 30 minutes and resolved after 2 hours; plus 1 event after the period that must not count.
    /// </summary>
    public async Task SeedAsync(AuditWriter writer)
    {
        var day = From.AddDays(2).AddHours(10);
        var key = new AuditActor("api_key", "0190f000-0000-7000-8000-000000000001", Role: "user");
        for (var i = 0; i < 5; i++)
            await writer.AppendAsync(new AuditEventDraft
            {
                ProjectId = ProjectId, EventType = "gateway.query_executed", Actor = key, ResourceType = "approved_query", ResourceId = "q-customers",
                Action = "execute", DataClassifications = ["pii"], RowsReturned = 10, OccurredAt = day.AddMinutes(i),
                Prompt = i == 4 ? Formula : null,
                Details = PortalAudit.Json(new { outcome = "executed", parameters = new { email = i < 2 ? Subject : "someone@example.com" } }),
            });
        foreach (var (outcome, n) in new[] { ("forbidden", 2), ("rateLimited", 1) })
            for (var i = 0; i < n; i++)
                await writer.AppendAsync(new AuditEventDraft
                {
                    ProjectId = ProjectId, EventType = "gateway.query_denied", Actor = key, ResourceType = "approved_query", ResourceId = "q-salaries",
                    Action = "execute", Success = false, ErrorMessage = "denied", OccurredAt = day.AddDays(1).AddMinutes(i),
                    Details = PortalAudit.Json(new { outcome }),
                });
        await writer.AppendAsync(new AuditEventDraft
        {
            ProjectId = ProjectId, EventType = "auth.api_key_rejected", Actor = key, ResourceType = "api_key", Action = "revoked", Success = false,
            OccurredAt = day.AddDays(2), Details = PortalAudit.Json(new { outcome = "unauthenticated", reason = "revoked" }),
        });
        var adminActor = new AuditActor("user", AdminId.ToString(), Admin, "admin");
        await writer.AppendAsync(new AuditEventDraft
        {
            ProjectId = ProjectId, EventType = "member.role_changed", Actor = adminActor, ResourceType = "member", ResourceId = Analyst,
            BeforeState = "{\"role\":\"user\"}", AfterState = "{\"role\":\"data\"}", OccurredAt = day.AddDays(3),
        });
        await writer.AppendAsync(new AuditEventDraft
        {
            ProjectId = ProjectId, EventType = "suggestion.approved", Actor = adminActor, ResourceType = "suggestion", ResourceId = "sugg-42",
            Details = "{\"query\":\"Top customers\"}", OccurredAt = day.AddDays(4),
        });
        var raised = day.AddDays(5);
        foreach (var (type, at) in new[] { ("alert.created", raised), ("alert.acknowledged", raised.AddMinutes(30)), ("alert.resolved", raised.AddHours(2)) })
            await writer.AppendAsync(new AuditEventDraft
            {
                ProjectId = ProjectId, EventType = type, Actor = new AuditActor("user", null, Security, "security"), ResourceType = "alert",
                ResourceId = "alert-1", Action = "injection_attempt", OccurredAt = at,
            });
        await writer.AppendAsync(new AuditEventDraft
        {
            ProjectId = ProjectId, EventType = "gateway.query_executed", Actor = key, ResourceType = "approved_query", ResourceId = "q-customers",
            DataClassifications = ["pii"], OccurredAt = To.AddMinutes(5) < DateTimeOffset.UtcNow ? To.AddMinutes(5) : DateTimeOffset.UtcNow,
        });
    }
}

/// <summary>poppler-utils: the PDF's text and page count as a reader sees them.</summary>
internal static class PdfTools
{
    public static async Task<string> TextAsync(byte[] pdf, int? page = null)
    {
        var file = Path.GetTempFileName();
        await File.WriteAllBytesAsync(file, pdf);
        try
        {
            var args = page is { } p ? $"-layout -f {p} -l {p} {file} -" : $"-layout {file} -";
            return await RunAsync("pdftotext", args);
        }
        finally { File.Delete(file); }
    }

    public static async Task<int> PagesAsync(byte[] pdf)
    {
        var file = Path.GetTempFileName();
        await File.WriteAllBytesAsync(file, pdf);
        try
        {
            var info = await RunAsync("pdfinfo", file);
            var line = info.Split('\n').First(l => l.StartsWith("Pages:", StringComparison.Ordinal));
            return int.Parse(line["Pages:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
        }
        finally { File.Delete(file); }
    }

    public static async Task<string> FontsAsync(byte[] pdf)
    {
        var file = Path.GetTempFileName();
        await File.WriteAllBytesAsync(file, pdf);
        try { return await RunAsync("pdffonts", file); }
        finally { File.Delete(file); }
    }

    /// <summary>Keeps a copy for people to look at when PORTAL_REPORT_OUT names a folder.</summary>
    public static async Task KeepAsync(byte[] pdf, string name)
    {
        if (Environment.GetEnvironmentVariable("PORTAL_REPORT_OUT") is not { Length: > 0 } dir) return;
        Directory.CreateDirectory(dir);
        await File.WriteAllBytesAsync(Path.Combine(dir, name), pdf);
    }

    private static async Task<string> RunAsync(string tool, string args)
    {
        var psi = new ProcessStartInfo(tool, args) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"{tool} did not start (install poppler-utils)");
        var output = await p.StandardOutput.ReadToEndAsync();
        var error = await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{tool} failed: {error}");
        return output;
    }
}
