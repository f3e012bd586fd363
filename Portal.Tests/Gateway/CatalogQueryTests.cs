using Portal.Domain;
using Portal.Domain.Gateway;
using Portal.Domain.Gateway.Catalog;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Gateway;

public class CatalogQueryTests
{
    private static ApprovedQueryRequest Lookup(Guid ds, string name = "Customer by id") => new(ds, name, "One customer",
        "SELECT id, name, email FROM customers WHERE id = @customer_id",
        [new QueryParameter("customer_id", ParameterType.Int, Description: "Customer id")], ["PII", "custom:kyc"], 10, 2000);

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task Queries_are_versioned_archived_and_scoped_by_project(string provider)
    {
        await using var w = await CatalogWorld.CreateAsync(provider);
        var ds = await w.SampleDatasourceAsync();
        var q = await w.Queries.CreateAsync(w.ProjectId, Lookup(ds.Id), w.Admin);
        Assert.Equal((1, "active", 10, 2000), (q.Version, q.Status, q.RowCap, q.TimeoutMs));
        Assert.Equal(["pii", "custom:kyc"], q.Classifications);
        var p = Assert.Single(q.Parameters);
        Assert.Equal(("customer_id", ParameterType.Int, true), (p.Name, p.Type, p.Required));

        var read = await w.Queries.GetAsync(w.ProjectId, q.Id);
        Assert.Equal(q.Sql, read.Sql);
        Assert.Equal(q.Parameters.Single(), read.Parameters.Single());

        w.Clock.Advance(TimeSpan.FromMinutes(5));
        var v2 = await w.Queries.UpdateAsync(w.ProjectId, q.Id, Lookup(ds.Id) with { RowCap = 5, Description = "Changed" }, w.Admin);
        Assert.Equal((2, 5, "Changed"), (v2.Version, v2.RowCap, v2.Description));
        Assert.Equal(q.CreatedAt, v2.CreatedAt);
        Assert.Equal(q.CreatedAt.AddMinutes(5), v2.UpdatedAt);

        var archived = await w.Queries.ArchiveAsync(w.ProjectId, q.Id, w.Admin);
        Assert.Equal(("archived", 3), (archived.Status, archived.Version));
        Assert.Equal(0, (await w.Queries.ListAsync(w.ProjectId, 0, 10)).Total);
        Assert.Equal(1, (await w.Queries.ListAsync(w.ProjectId, 0, 10, status: null)).Total);
        Assert.Equal(ErrorKind.Conflict, (await Assert.ThrowsAsync<DomainException>(() => w.Queries.UpdateAsync(w.ProjectId, q.Id, Lookup(ds.Id), w.Admin))).Kind);
        Assert.Equal(4, (await w.Queries.RestoreAsync(w.ProjectId, q.Id, w.Admin)).Version);

        var dup = await Assert.ThrowsAsync<DomainException>(() => w.Queries.CreateAsync(w.ProjectId, Lookup(ds.Id), w.Admin));
        Assert.Equal((ErrorKind.Conflict, "name"), (dup.Kind, dup.Field));
        var inUse = await Assert.ThrowsAsync<DomainException>(() => w.Datasources.DeleteAsync(w.ProjectId, ds.Id));
        Assert.Equal(ErrorKind.Conflict, inUse.Kind);

        var other = await w.OtherProjectAsync();
        Assert.Equal(0, (await w.Queries.ListAsync(other, 0, 10, null)).Total);
        foreach (var call in new Func<Task>[]
        {
            () => w.Queries.GetAsync(other, q.Id),
            () => w.Queries.UpdateAsync(other, q.Id, Lookup(ds.Id), w.Admin),
            () => w.Queries.ArchiveAsync(other, q.Id, w.Admin),
        })
            Assert.Equal(ErrorKind.NotFound, (await Assert.ThrowsAsync<DomainException>(call)).Kind);
        // Another project's datasource cannot be borrowed either.
        var borrowed = await Assert.ThrowsAsync<DomainException>(() => w.Queries.CreateAsync(other, Lookup(ds.Id), w.Admin));
        Assert.Equal((ErrorKind.NotFound, "datasourceId"), (borrowed.Kind, borrowed.Field));
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task The_engine_rejects_anything_but_one_read_only_statement_and_nothing_is_stored(string provider)
    {
        await using var w = await CatalogWorld.CreateAsync(provider);
        var ds = await w.SampleDatasourceAsync();
        async Task<DomainException> Refused(ApprovedQueryRequest r) => await Assert.ThrowsAsync<DomainException>(() => w.Queries.CreateAsync(w.ProjectId, r, w.Admin));
        var ok = Lookup(ds.Id);

        var dml = await Refused(ok with { Sql = "DELETE FROM customers WHERE id = @customer_id" });
        Assert.Equal((ErrorKind.Validation, "sql"), (dml.Kind, dml.Field));
        Assert.Contains("DELETE", dml.Message);
        var multi = await Refused(ok with { Sql = "SELECT id FROM customers WHERE id = @customer_id; SELECT 1" });
        Assert.Equal("sql", multi.Field);
        Assert.Contains("single statement", multi.Message);
        var syntax = await Refused(ok with { Sql = "SELEC id FROM customers WHERE id = @customer_id" });
        Assert.Equal("sql", syntax.Field);
        Assert.StartsWith("SQLite: ", syntax.Message);
        var missingTable = await Refused(ok with { Sql = "SELECT id FROM nobody WHERE id = @customer_id" });
        Assert.Equal("sql", missingTable.Field);
        Assert.Contains("no such table", missingTable.Message);

        var undeclared = await Refused(ok with { Parameters = [] });
        Assert.Equal("parameters", undeclared.Field);
        Assert.Contains("@customer_id", undeclared.Message);
        var unused = await Refused(ok with { Parameters = [.. ok.Parameters!, new QueryParameter("city", ParameterType.String)] });
        Assert.Equal("parameters", unused.Field);
        Assert.Contains("@city", unused.Message);

        Assert.Equal("parameters[0].name", (await Refused(ok with { Parameters = [new QueryParameter("Customer-Id", ParameterType.Int)] })).Field);
        Assert.Equal("parameters[1].name", (await Refused(ok with { Parameters = [ok.Parameters![0], ok.Parameters[0]] })).Field);
        Assert.Equal("parameters[0].pattern", (await Refused(ok with { Parameters = [ok.Parameters![0] with { Pattern = "([" }] })).Field);
        Assert.Equal("parameters[0].maxLength", (await Refused(ok with { Parameters = [ok.Parameters![0] with { MaxLength = 0 }] })).Field);
        Assert.Equal("parameters[0].allowedValues", (await Refused(ok with { Parameters = [ok.Parameters![0] with { AllowedValues = ["ten"] }] })).Field);
        Assert.Equal("rowCap", (await Refused(ok with { RowCap = 0 })).Field);
        Assert.Equal("rowCap", (await Refused(ok with { RowCap = 10_001 })).Field);
        Assert.Equal("timeoutMs", (await Refused(ok with { TimeoutMs = 99 })).Field);
        Assert.Equal("timeoutMs", (await Refused(ok with { TimeoutMs = 120_001 })).Field);
        Assert.Equal("classifications", (await Refused(ok with { Classifications = ["secret"] })).Field);
        Assert.Equal("name", (await Refused(ok with { Name = "" })).Field);
        Assert.Equal("sql", (await Refused(ok with { Sql = "  " })).Field);

        Assert.Equal(0, (await w.Queries.ListAsync(w.ProjectId, 0, 10, null)).Total);
        Assert.Empty(await w.RawRowsAsync("approved_queries"));

        // An update that the engine refuses leaves the stored version untouched.
        var q = await w.Queries.CreateAsync(w.ProjectId, ok, w.Admin);
        var bad = await Assert.ThrowsAsync<DomainException>(() => w.Queries.UpdateAsync(w.ProjectId, q.Id, ok with { Sql = "UPDATE customers SET name = 'x' WHERE id = @customer_id" }, w.Admin));
        Assert.Equal("sql", bad.Field);
        var stored = await w.Queries.GetAsync(w.ProjectId, q.Id);
        Assert.Equal((1, ok.Sql), (stored.Version, stored.Sql));
    }
}
