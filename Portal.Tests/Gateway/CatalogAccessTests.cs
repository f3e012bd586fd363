using System.Text;
using Portal.Domain;
using Portal.Domain.Access;
using Portal.Domain.Gateway;
using Portal.Domain.Gateway.Catalog;
using Portal.Domain.Gateway.Demo;
using Portal.Domain.Tenancy;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Gateway;

public class CatalogAccessTests
{
    private static readonly byte[] HashKey = Encoding.UTF8.GetBytes("catalog-tests-hash-key-0123456789");

    private static async Task<ApprovedQueryRow> QueryAsync(CatalogWorld w, Guid datasourceId, string name = "Cities") =>
        await w.Queries.CreateAsync(w.ProjectId, new ApprovedQueryRequest(datasourceId, name, null, "SELECT name, city FROM customers WHERE city = @city",
            [new QueryParameter("city", ParameterType.String)]), w.Admin);

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Permissions_deny_by_default_and_grant_by_role_user_or_all(string provider)
    {
        await using var w = await CatalogWorld.CreateAsync(provider);
        var ds = await w.SampleDatasourceAsync();
        var q = await QueryAsync(w, ds.Id);
        var alice = await w.MemberAsync(Roles.User);
        var bob = await w.MemberAsync(Roles.User);
        var P = w.Permissions;
        Task<bool> Can(QueryPrincipal who, QueryAction a) => P.CanAsync(w.ProjectId, q.Id, who, a);

        foreach (var a in Enum.GetValues<QueryAction>())
        {
            Assert.False(await Can(new(Roles.User, alice), a));
            Assert.False(await Can(new(Roles.Compliance), a));
            Assert.True(await Can(new(Roles.Admin, w.Admin), a));
        }

        await P.SetAsync(w.ProjectId, q.Id, new QueryGrant("role", "USER", true, true, false), w.Admin);
        Assert.True(await Can(new(Roles.User, alice), QueryAction.Execute));
        Assert.True(await Can(new(Roles.User), QueryAction.View));
        Assert.False(await Can(new(Roles.User, alice), QueryAction.Edit));
        Assert.False(await Can(new(Roles.Data), QueryAction.View));

        await P.SetAsync(w.ProjectId, q.Id, new QueryGrant("user", alice.ToString(), false, false, true), w.Admin);
        Assert.True(await Can(new(Roles.User, alice), QueryAction.Edit));
        Assert.False(await Can(new(Roles.User, bob), QueryAction.Edit));

        await P.SetAsync(w.ProjectId, q.Id, new QueryGrant("all", null, true, false, false), w.Admin);
        Assert.True(await Can(new(Roles.Security), QueryAction.View));
        Assert.False(await Can(new(Roles.Security), QueryAction.Execute));
        Assert.Equal(3, (await P.ListAsync(w.ProjectId, q.Id)).Count);

        // Setting a grant again replaces it; a grant allowing nothing is removed.
        await P.SetAsync(w.ProjectId, q.Id, new QueryGrant("role", "user", true, false, false), w.Admin);
        Assert.False(await Can(new(Roles.User, bob), QueryAction.Execute));
        Assert.Null(await P.SetAsync(w.ProjectId, q.Id, new QueryGrant("all", null, false, false, false), w.Admin));
        Assert.False(await Can(new(Roles.Security), QueryAction.View));
        var list = await P.ListAsync(w.ProjectId, q.Id);
        Assert.Equal(["role", "user"], list.Select(l => l.PrincipalType));

        // Nobody executes an archived query, not even an admin.
        await P.SetAsync(w.ProjectId, q.Id, new QueryGrant("role", "user", true, true, false), w.Admin);
        await w.Queries.ArchiveAsync(w.ProjectId, q.Id, w.Admin);
        Assert.False(await Can(new(Roles.User, alice), QueryAction.Execute));
        Assert.False(await Can(new(Roles.Admin), QueryAction.Execute));
        Assert.True(await Can(new(Roles.User, alice), QueryAction.View));

        async Task<string?> Field(QueryGrant g) => (await Assert.ThrowsAsync<DomainException>(() => P.SetAsync(w.ProjectId, q.Id, g, w.Admin))).Field;
        Assert.Equal("principalType", await Field(new("group", "x", true, false, false)));
        Assert.Equal("principal", await Field(new("role", "boss", true, false, false)));
        Assert.Equal("principal", await Field(new("user", Guid.NewGuid().ToString(), true, false, false)));
        Assert.Equal("principal", await Field(new("all", "user", true, false, false)));

        var other = await w.OtherProjectAsync();
        Assert.False(await P.CanAsync(other, q.Id, new(Roles.Admin), QueryAction.View));
        Assert.Equal(ErrorKind.NotFound, (await Assert.ThrowsAsync<DomainException>(() => P.SetAsync(other, q.Id, new("all", null, true, true, true), w.Admin))).Kind);
        Assert.Equal(ErrorKind.NotFound, (await Assert.ThrowsAsync<DomainException>(() => P.ListAsync(other, q.Id))).Kind);
        Assert.Equal(ErrorKind.NotFound, (await Assert.ThrowsAsync<DomainException>(() => P.RemoveAsync(other, list[0].Id, w.Admin))).Kind);
        await P.RemoveAsync(w.ProjectId, list[0].Id, w.Admin);
        Assert.Single(await P.ListAsync(w.ProjectId, q.Id));
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Masks_are_validated_and_round_trip_into_the_masking_engine(string provider)
    {
        await using var w = await CatalogWorld.CreateAsync(provider);
        var ds = await w.SampleDatasourceAsync();
        var M = w.Masks;
        var ssn = await M.CreateAsync(w.ProjectId, new ColumnMaskRequest(ds.Id, "Customers", "SSN", MaskType.Partial, ShowLast: 4, VisibleToRoles: ["Compliance"], Classification: "pii"), w.Admin);
        Assert.Equal(("customers", "ssn", "pii"), (ssn.Table, ssn.Column, ssn.Classification));
        Assert.Equal(["compliance"], ssn.VisibleToRoles);
        await M.CreateAsync(w.ProjectId, new ColumnMaskRequest(ds.Id, "customers", "email", MaskType.EmailDomain), w.Admin);
        var card = await M.CreateAsync(w.ProjectId, new ColumnMaskRequest(ds.Id, "customers", "card_number", MaskType.Redact), w.Admin);
        card = await M.UpdateAsync(w.ProjectId, card.Id, new ColumnMaskRequest(ds.Id, "customers", "card_number", MaskType.Partial, ShowLast: 4, Classification: "financial"), w.Admin);
        Assert.Equal((MaskType.Partial, 4), (card.MaskType, card.ShowLast));

        async Task<DomainException> Refused(ColumnMaskRequest r) => await Assert.ThrowsAsync<DomainException>(() => M.CreateAsync(w.ProjectId, r, w.Admin));
        Assert.Equal("table", (await Refused(new(ds.Id, "public.customers", "x", MaskType.Redact))).Field);
        Assert.Equal("column", (await Refused(new(ds.Id, "customers", "", MaskType.Redact))).Field);
        Assert.Equal("showLast", (await Refused(new(ds.Id, "customers", "phone", MaskType.Partial))).Field);
        Assert.Equal("showFirst", (await Refused(new(ds.Id, "customers", "phone", MaskType.Partial, ShowFirst: 33))).Field);
        Assert.Equal("showFirst", (await Refused(new(ds.Id, "customers", "phone", MaskType.Hash, ShowFirst: 2))).Field);
        Assert.Equal("visibleToRoles", (await Refused(new(ds.Id, "customers", "phone", MaskType.Hash, VisibleToRoles: ["boss"]))).Field);
        Assert.Equal("classification", (await Refused(new(ds.Id, "customers", "phone", MaskType.Hash, Classification: "secret"))).Field);
        var dup = await Refused(new(ds.Id, "CUSTOMERS", "Email", MaskType.Hash));
        Assert.Equal((ErrorKind.Conflict, "column"), (dup.Kind, dup.Field));

        var other = await w.OtherProjectAsync();
        Assert.Equal((ErrorKind.NotFound, "datasourceId"), await Assert.ThrowsAsync<DomainException>(() => M.CreateAsync(other, new(ds.Id, "customers", "phone", MaskType.Hash), w.Admin)) is var e ? (e.Kind, e.Field) : default);
        Assert.Equal(ErrorKind.NotFound, (await Assert.ThrowsAsync<DomainException>(() => M.GetAsync(other, ssn.Id))).Kind);
        Assert.Equal(ErrorKind.NotFound, (await Assert.ThrowsAsync<DomainException>(() => M.DeleteAsync(other, ssn.Id, w.Admin))).Kind);
        Assert.Equal(ErrorKind.NotFound, (await Assert.ThrowsAsync<DomainException>(() => M.RulesForAsync(other, ds.Id))).Kind);
        Assert.Equal(0, (await M.ListAsync(other, null, 0, 10)).Total);
        Assert.Equal(3, (await M.ListAsync(w.ProjectId, ds.Id, 0, 10)).Total);

        var rules = await M.RulesForAsync(w.ProjectId, ds.Id);
        Assert.Equal(3, rules.Count);
        var engine = await w.Datasources.OpenEngineAsync(w.ProjectId, ds.Id);
        var result = await engine.ExecuteAsync("SELECT id, email, ssn, card_number FROM customers WHERE id = @id",
            [new TypedParameter("id", ParameterType.Int, 1L)], 10, TimeSpan.FromSeconds(5));
        var c = SampleDatasource.Customers[0];
        var masking = new MaskingEngine(rules, HashKey);

        var asUser = masking.Apply(result, Roles.User).Rows.Single();
        Assert.Equal(1L, asUser[0]);
        Assert.Equal("***@" + c.Email.Split('@')[1], asUser[1]);
        Assert.Equal(new string('*', c.Ssn.Length - 4) + c.Ssn[^4..], asUser[2]);
        Assert.Equal(new string('*', c.CardNumber.Length - 4) + c.CardNumber[^4..], asUser[3]);
        var asCompliance = masking.Apply(result, Roles.Compliance).Rows.Single();
        Assert.Equal(c.Ssn, asCompliance[2]);
        Assert.NotEqual(c.Email, asCompliance[1]);

        await M.DeleteAsync(w.ProjectId, ssn.Id, w.Admin);
        Assert.Equal(2, (await M.RulesForAsync(w.ProjectId, ds.Id)).Count);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Demo_catalog_seeds_queries_that_run_through_the_engine_with_masking(string provider)
    {
        await using var w = await CatalogWorld.CreateAsync(provider);
        var seeded = await w.Demo.SeedAsync(w.ProjectId, w.Admin, w.Db.DataDirectory);
        Assert.NotNull(seeded);
        Assert.Null(await w.Demo.SeedAsync(w.ProjectId, w.Admin, w.Db.DataDirectory));
        Assert.Equal(1, (await w.Datasources.ListAsync(w.ProjectId, 0, 10)).Total);
        Assert.True((await w.Datasources.TestConnectionAsync(w.ProjectId, seeded.DatasourceId)).Ok);
        var queries = (await w.Queries.ListAsync(w.ProjectId, 0, 10)).Items;
        Assert.Equal(4, queries.Count);
        var masking = new MaskingEngine(await w.Masks.RulesForAsync(w.ProjectId, seeded.DatasourceId), HashKey);
        var engine = await w.Datasources.OpenEngineAsync(w.ProjectId, seeded.DatasourceId);

        async Task<MaskedResult> Run(string name, string role, Dictionary<string, string?> values)
        {
            var q = queries.Single(x => x.Name == name);
            Assert.True(await w.Permissions.CanAsync(w.ProjectId, q.Id, new QueryPrincipal(role), QueryAction.Execute), $"{role} may run {name}");
            var v = ParameterValidator.Validate(q.Parameters, values);
            Assert.True(v.IsValid, string.Join("; ", v.Errors));
            return masking.Apply(await engine.ExecuteAsync(q.Sql, v.Values, q.RowCap, q.Timeout), role);
        }

        var c = SampleDatasource.Customers[6];
        var lookup = await Run(DemoCatalog.CustomerLookup, Roles.User, new() { ["customer_id"] = "7" });
        var row = lookup.Rows.Single();
        Assert.Equal(c.Name, row[1]);
        Assert.Equal("***@" + c.Email.Split('@')[1], row[2]);
        Assert.EndsWith(c.Phone[^3..], (string)row[3]!);
        Assert.StartsWith("****", (string)row[3]!);
        Assert.Equal(new string('*', c.Ssn.Length - 4) + c.Ssn[^4..], row[4]);
        Assert.Equal(new string('*', c.CardNumber.Length - 4) + c.CardNumber[^4..], row[5]);
        var raw = (await Run(DemoCatalog.CustomerLookup, Roles.Compliance, new() { ["customer_id"] = "7" })).Rows.Single();
        Assert.Equal((c.Email, c.Ssn), (raw[2], raw[4]));
        Assert.NotEqual(c.CardNumber, raw[5]);

        var orders = await Run(DemoCatalog.OrdersByDate, Roles.Security, new() { ["from_date"] = "2024-03-01", ["to_date"] = "2024-03-31", ["status"] = "paid" });
        var expected = SampleDatasource.Orders.Where(o => o.OrderedOn.Month == 3 && o.Status == "paid").Select(o => (long)o.Id).Order().ToList();
        Assert.NotEmpty(expected);
        Assert.Equal(expected, orders.Rows.Select(r => (long)r[0]!).Order());
        Assert.All(orders.Masking, m => Assert.Null(m.Mask));

        Assert.False(await w.Permissions.CanAsync(w.ProjectId, seeded.Queries[DemoCatalog.SalarySummary], new QueryPrincipal(Roles.User), QueryAction.Execute));
        var hidden = (await Run(DemoCatalog.SalarySummary, Roles.Data, new() { ["department"] = "Sales" })).Rows.Single();
        Assert.Equal("Sales", hidden[0]);
        Assert.Equal(MaskingEngine.Redacted, hidden[2]);
        var shown = (await Run(DemoCatalog.SalarySummary, Roles.Compliance, new() { ["department"] = "Sales" })).Rows.Single();
        var sales = SampleDatasource.Salaries.Where(s => s.Department == "Sales").ToList();
        Assert.Equal((long)sales.Count, shown[1]);
        Assert.Equal((double)Math.Round(sales.Average(s => s.Amount), 2), (double)shown[2]!, 2);

        var contacts = await Run(DemoCatalog.ContactsByCity, Roles.User, new() { ["city"] = "Lisbon" });
        Assert.Equal(SampleDatasource.Customers.Count(x => x.City == "Lisbon"), contacts.Rows.Count);
        Assert.All(contacts.Rows, r => Assert.StartsWith("***@", (string)r[1]!));
    }
}
