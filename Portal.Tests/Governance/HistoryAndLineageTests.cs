using Microsoft.EntityFrameworkCore;
using Portal.Domain;
using Portal.Domain.Gateway.Catalog;
using Portal.Domain.Governance;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Governance;

public class HistoryAndLineageTests
{
    private static async Task<DomainException> Refused(Func<Task> call) => await Assert.ThrowsAsync<DomainException>(call);

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Every_change_is_a_version_and_rollback_creates_a_new_one_after_naming_the_consumers(string provider)
    {
        await using var w = await GovernanceWorld.CreateAsync(provider);
        var request = new ApprovedQueryRequest(w.DatasourceId, "Lookup", "v1", GovernanceWorld.LookupSql, GovernanceWorld.LookupParameters, ["pii"], 10, 2000);
        var q = await w.Queries.CreateAsync(w.ProjectId, request, w.Admin, reason: "first cut");
        w.Catalog.Clock.Advance(TimeSpan.FromMinutes(1));
        await w.Queries.UpdateAsync(w.ProjectId, q.Id, request with { Sql = "SELECT id, name FROM customers WHERE id = @customer_id", Description = "v2" }, w.Admin);
        await w.Queries.ArchiveAsync(w.ProjectId, q.Id, w.Admin);
        await w.Queries.RestoreAsync(w.ProjectId, q.Id, w.Admin);
        var page = await w.History.VersionsAsync(w.ProjectId, q.Id, 0, 10);
        Assert.Equal([4, 3, 2, 1], page.Items.Select(v => v.Version));
        Assert.Equal([QueryChanges.Restored, QueryChanges.Archived, QueryChanges.Updated, QueryChanges.Created], page.Items.Select(v => v.Change));
        Assert.Equal("first cut", page.Items[3].Reason);
        Assert.Equal("admin@bank.test", page.Items[3].CreatedByName);

        Assert.Equal("reason", (await Refused(() => w.History.RollbackAsync(w.ProjectId, q.Id, 1, " ", w.Admin))).Field);
        Assert.Equal("version", (await Refused(() => w.History.RollbackAsync(w.ProjectId, q.Id, 9, "why", w.Admin))).Field);
        Assert.Equal(ErrorKind.Conflict, (await Refused(() => w.History.RollbackAsync(w.ProjectId, q.Id, 4, "why", w.Admin))).Kind);

        Assert.Equal("kind", (await Refused(() => w.History.AddConsumerAsync(w.ProjectId, q.Id, new ConsumerRequest("spreadsheet", "x"), w.Admin))).Field);
        Assert.Equal("name", (await Refused(() => w.History.AddConsumerAsync(w.ProjectId, q.Id, new ConsumerRequest("report", ""), w.Admin))).Field);
        await w.History.AddConsumerAsync(w.ProjectId, q.Id, new ConsumerRequest("dashboard", "Finance KPIs", "dash-1", "finance"), w.Admin);
        await w.History.AddConsumerAsync(w.ProjectId, q.Id, new ConsumerRequest("dashboard", "Support board"), w.Admin);
        await w.History.AddConsumerAsync(w.ProjectId, q.Id, new ConsumerRequest("report", "Monthly <b>report</b>"), w.Admin);
        var consumers = await w.History.ListConsumersAsync(w.ProjectId, q.Id);
        Assert.Equal("2 dashboards, 1 report", QueryHistoryService.Describe(consumers));

        var unconfirmed = await Refused(() => w.History.RollbackAsync(w.ProjectId, q.Id, 1, "v2 broke the report", w.Admin));
        Assert.Equal((ErrorKind.Conflict, "confirmConsumers"), (unconfirmed.Kind, unconfirmed.Field));
        Assert.Contains("Finance KPIs", unconfirmed.Message);
        Assert.Contains("Monthly <b>report</b>", unconfirmed.Message);
        var rolled = await w.History.RollbackAsync(w.ProjectId, q.Id, 1, "v2 broke the report", w.Admin, confirmConsumers: true);
        Assert.Equal((5, GovernanceWorld.LookupSql, "v1"), (rolled.Version, rolled.Sql, rolled.Description));
        var v5 = await w.History.VersionAsync(w.ProjectId, q.Id, 5);
        Assert.Equal((QueryChanges.RolledBack, 1, "v2 broke the report"), (v5.Change, v5.RestoredFromVersion, v5.Reason));
        Assert.Equal(1, await w.InDbAsync(db => db.AuditEvents.CountAsync(e => e.EventType == "approved_query.rolled_back")));

        // A change suggestion for a query with consumers names them and needs confirmation on approval.
        var data = await w.Catalog.MemberAsync(Roles.Data);
        var change = await w.SubmitAsync(data, Roles.Data, w.Lookup() with { Name = null, QueryId = q.Id, Sql = "SELECT id, city FROM customers WHERE id = @customer_id" });
        var detail = await w.Suggestions.GetDetailAsync(w.ProjectId, change.Id);
        Assert.Equal(3, detail.Consumers.Count);
        Assert.Equal(5, detail.CurrentQuery!.Version);
        var needsConfirm = await Refused(() => w.Suggestions.ApproveAsync(w.ProjectId, change.Id, new ApproveRequest("fine"), w.Admin));
        Assert.Equal("confirmConsumers", needsConfirm.Field);
        Assert.Equal(SuggestionStatuses.Pending, (await w.Suggestions.GetAsync(w.ProjectId, change.Id)).Status);
        var done = await w.Suggestions.ApproveAsync(w.ProjectId, change.Id, new ApproveRequest("fine", ConfirmConsumers: true), w.Admin);
        Assert.Equal((6, "Lookup"), (done.Query!.Version, done.Query.Name));
        Assert.Equal(change.Id, (await w.History.VersionAsync(w.ProjectId, q.Id, 6)).SuggestionId);

        // Another project's query or consumer answers NotFound like a missing one.
        var other = await w.Catalog.OtherProjectAsync();
        Assert.Equal(ErrorKind.NotFound, (await Refused(() => w.History.VersionsAsync(other, q.Id, 0, 10))).Kind);
        Assert.Equal(ErrorKind.NotFound, (await Refused(() => w.History.RollbackAsync(other, q.Id, 1, "x", w.Admin, true))).Kind);
        Assert.Equal(ErrorKind.NotFound, (await Refused(() => w.History.AddConsumerAsync(other, q.Id, new ConsumerRequest("api", "x"), w.Admin))).Kind);
        Assert.Equal(ErrorKind.NotFound, (await Refused(() => w.History.RemoveConsumerAsync(other, consumers[0].Id, w.Admin))).Kind);
        await w.History.RemoveConsumerAsync(w.ProjectId, consumers[0].Id, w.Admin);
        Assert.Equal(2, (await w.History.ListConsumersAsync(w.ProjectId, q.Id)).Count);
    }
}

public class SqlTextTests
{
    [Theory]
    [InlineData("SELECT * FROM t", true)]
    [InlineData("select distinct * from t", true)]
    [InlineData("SELECT a.*, b.id FROM a JOIN b ON a.id = b.id", true)]
    [InlineData("SELECT count(*) FROM t", false)]
    [InlineData("SELECT price * qty AS total FROM t", false)]
    [InlineData("SELECT '*' AS star, id FROM t -- select *", false)]
    public void Select_star_is_found_by_tokens_not_text(string sql, bool expected) =>
        Assert.Equal(expected, SqlText.SelectsStar(SqlText.Significant(sql)));

    [Fact]
    public void Tokens_keep_every_character_so_highlighting_never_drops_text()
    {
        const string sql = "SELECT \"we\"\"ird\", 'it''s' /* <script> */ FROM t WHERE id = @id AND x >= 1.5 -- end";
        var tokens = SqlText.Tokenize(sql);
        Assert.Equal(sql, string.Concat(tokens.Select(t => t.Text)));
        Assert.Contains(tokens, t => t is { Kind: SqlTokenKind.Comment, Text: "/* <script> */" });
        Assert.Contains(tokens, t => t is { Kind: SqlTokenKind.Parameter, Text: "@id" });
        Assert.Contains(tokens, t => t is { Kind: SqlTokenKind.String, Text: "'it''s'" });
        Assert.True(SqlText.HasRowFilter(SqlText.Significant(sql)));
        Assert.False(SqlText.HasRowFilter(SqlText.Significant("SELECT id FROM t -- WHERE id = 1")));
    }

    [Fact]
    public void The_diff_pairs_unchanged_lines_and_marks_the_rest()
    {
        var diff = SqlText.Diff("SELECT id\nFROM t\nWHERE a = 1", "SELECT id\nFROM t\nWHERE a = 2\nLIMIT 5");
        Assert.Equal([DiffKind.Same, DiffKind.Same, DiffKind.Removed, DiffKind.Added, DiffKind.Added], diff.Select(d => d.Kind));
        Assert.Equal("WHERE a = 2", diff[3].Right);
    }
}
