using System.Net;
using System.Text;
using System.Text.Json;
using CsvHelper;
using Microsoft.Extensions.DependencyInjection;
using Portal.Domain.Audit;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Audit;

public class AuditExportEndpointTests
{
    internal const string Script = "<script>alert(1)</script>";
    internal const string Formula = "=cmd|' /C calc'!A0";

    /// <summary>A project with the audit module on, a compliance officer, member-change events and one hostile query event.</summary>
    internal static async Task<(Guid ProjectId, Guid Admin)> SeedAsync(PortalApp app)
    {
        var (admin, projectId) = await app.SetupAsync("ada@northwind.test");
        await app.InstallSuiteAsync(projectId, admin.Id);
        await app.AddMemberAsync(projectId, "carol@northwind.test", Roles.Compliance, admin.Id);
        await app.AddMemberAsync(projectId, "uma@northwind.test", Roles.User, admin.Id);
        await app.Get<AuditWriter>().AppendAsync(new AuditEventDraft
        {
            ProjectId = projectId,
            EventType = "query.executed",
            Actor = new AuditActor("api_key", "key-hostile", SessionId: "sess-hostile"),
            ResourceType = "query",
            ResourceId = "q-1",
            Prompt = Script,
            SqlText = Formula,
            Details = PortalAudit.Json(new { @params = new { note = Script } }),
            SecurityLevel = AuditSecurityLevel.Alert,
        });
        return (projectId, admin.Id);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Compliance_exports_filtered_csv_and_json_with_hashes_and_the_export_is_audited(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db);
        var (projectId, _) = await SeedAsync(app);
        var carol = await app.SignedInClientAsync("carol@northwind.test");

        var response = await carol.GetAsync($"/p/{projectId}/audit/export.csv?type=query.executed");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("text/csv", response.Content.Headers.ContentType!.ToString());
        Assert.Equal("attachment", response.Content.Headers.ContentDisposition!.DispositionType);
        Assert.EndsWith(".csv", response.Content.Headers.ContentDisposition.FileName!.Trim('"'));
        var bytes = await response.Content.ReadAsByteArrayAsync();
        Assert.StartsWith(string.Join(",", AuditExporter.Fields), Encoding.UTF8.GetString(bytes));
        using (var csv = CsvReader.Create(bytes))
        {
            Assert.True(csv.Read());
            Assert.Equal("query.executed", csv.GetString("event_type"));
            Assert.Equal("'" + Formula, csv.GetString("sql_text")); // neutralized: a spreadsheet shows it as text
            Assert.Equal(Script, csv.GetString("prompt"));
            Assert.Matches("^[0-9a-f]{64}$", csv.GetString("hash"));
            Assert.Matches("^[0-9a-f]{64}$", csv.GetString("prev_hash"));
            Assert.False(csv.Read()); // the filter kept the member changes out
        }

        var json = await carol.GetAsync($"/p/{projectId}/audit/export.json?type=member.added");
        Assert.Equal(HttpStatusCode.OK, json.StatusCode);
        using var doc = JsonDocument.Parse(await json.Content.ReadAsStringAsync());
        Assert.Equal(2, doc.RootElement.GetArrayLength());
        Assert.All(doc.RootElement.EnumerateArray(), e =>
        {
            Assert.Equal("member.added", e.GetProperty("event_type").GetString());
            Assert.Equal(64, e.GetProperty("hash").GetString()!.Length);
        });

        // Both exports are themselves in the trail, with who asked and which filter.
        var exports = (await app.Get<AuditSearch>().SearchAsync(projectId, new AuditExportFilter { EventTypes = ["audit.exported"] })).Events;
        Assert.Equal(2, exports.Count);
        Assert.All(exports, e => Assert.Equal("carol@northwind.test", e.ActorEmail));
        Assert.Contains("query.executed", exports[1].Details);
        Assert.True((await app.Get<AuditVerifier>().VerifyAsync(projectId)).Ok);

        var bad = await carol.GetAsync($"/p/{projectId}/audit/export.csv?level=severe");
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Contains("normal, warning or alert", await bad.Content.ReadAsStringAsync());
        var backwards = await carol.GetAsync($"/p/{projectId}/audit/export.json?from=2026-02-01&to=2026-01-01");
        Assert.Equal(HttpStatusCode.BadRequest, backwards.StatusCode);
        Assert.Null(backwards.Content.Headers.ContentDisposition);
        Assert.True(app.Logs.Errors.Length == 0, app.Logs.Errors);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task A_user_role_is_forbidden_and_another_project_is_not_found(string provider)
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var app = new PortalApp(db);
        var (projectId, admin) = await SeedAsync(app);
        var other = await app.WithScopeAsync(sp => sp.GetRequiredService<ProjectService>().CreateAsync(admin, "Other", null));
        var before = (await app.Get<AuditSearch>().SearchAsync(projectId, new AuditExportFilter())).Events.Count;

        var uma = await app.SignedInClientAsync("uma@northwind.test");
        Assert.Equal(HttpStatusCode.Forbidden, (await uma.GetAsync($"/p/{projectId}/audit/export.csv")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await uma.GetAsync($"/p/{projectId}/audit/export.json")).StatusCode);
        var carol = await app.SignedInClientAsync("carol@northwind.test");
        Assert.Equal(HttpStatusCode.NotFound, (await carol.GetAsync($"/p/{other.Id}/audit/export.csv")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await carol.GetAsync($"/p/{Guid.CreateVersion7()}/audit/export.json")).StatusCode);
        var anonymous = await app.Client().GetAsync($"/p/{projectId}/audit/export.csv");
        Assert.Equal(HttpStatusCode.Redirect, anonymous.StatusCode);

        // Nothing was exported, so nothing was recorded as exported.
        Assert.Equal(before, (await app.Get<AuditSearch>().SearchAsync(projectId, new AuditExportFilter())).Events.Count);
    }
}
