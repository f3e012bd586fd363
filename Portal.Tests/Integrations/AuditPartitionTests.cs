using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Portal.Domain;
using Portal.Domain.Audit;
using Portal.Domain.Compliance.Retention;
using Portal.Domain.Persistence;
using Portal.Tests.Infrastructure;

namespace Portal.Tests.Integrations;

/// <summary>Monthly partitions of audit_events on PostgreSQL (Database/postgres/0012, AuditPartitions).</summary>
public class AuditPartitionTests
{
    private static async Task<object?> ScalarAsync(TestDatabase db, string sql)
    {
        await using var conn = new MigrationRunner(db.Provider, db.ConnectionString).Open();
        await using var cmd = conn.CreateCommand();
        cmd.CommandText = sql;
        return await cmd.ExecuteScalarAsync();
    }

    private static async Task<Dictionary<string, long>> RowsPerPartitionAsync(TestDatabase db)
    {
        await using var conn = new MigrationRunner(db.Provider, db.ConnectionString).Open();
        await using var cmd = conn.CreateCommand();
        cmd.CommandText = "SELECT tableoid::regclass::text, count(*) FROM audit_events GROUP BY 1";
        var rows = new Dictionary<string, long>();
        await using var r = await cmd.ExecuteReaderAsync();
        while (await r.ReadAsync()) rows[r.GetString(0)] = r.GetInt64(1);
        return rows;
    }

    private static AuditPartitions PartitionsAt(IntegrationWorld world, DateTimeOffset now) =>
        new(world.Services.GetRequiredService<PortalDatabase>(), new ManualClock(now));

    private static async Task<long> RelFileNodeAsync(TestDatabase db, string table) =>
        Convert.ToInt64(await ScalarAsync(db, $"SELECT relfilenode FROM pg_class WHERE relname = '{table}'"));

    [Fact]
    public async Task Upgrading_an_install_with_events_moves_every_row_into_monthly_partitions_and_the_chain_still_verifies()
    {
        var db = await TestDatabase.CreateAsync(DatabaseProvider.Postgres, migrate: false);
        var runner = new MigrationRunner(db.Provider, db.ConnectionString);
        var before0012 = MigrationRunner.LoadScripts(db.Provider).Where(s => string.CompareOrdinal(s.Version, "0012") < 0).ToList();
        await runner.RunAsync(before0012);
        await using var world = await IntegrationWorld.CreateAsync("postgres", db);
        var now = world.Clock.GetUtcNow();
        await world.AuditAsync(30, "gateway.query_executed", now.AddDays(-400));
        await world.AuditAsync(20, "auth.sign_in_succeeded", now.AddDays(-100));
        await world.AuditAsync(10, "member.added", now.AddDays(-40));
        await world.AuditAsync(5);
        var other = await world.OtherProjectAsync();
        await world.AuditAsync(7, "gateway.query_executed", now.AddDays(-100), other);
        Assert.Equal("r", await ScalarAsync(db, "SELECT relkind::text FROM pg_class WHERE relname = 'audit_events'"));
        var rowsBefore = (await db.RawRowsAsync("audit_events")).Order().ToList();
        var hashesBefore = await ScalarAsync(db, "SELECT string_agg(encode(hash, 'hex') || encode(prev_hash, 'hex'), ',' ORDER BY project_id, seq) FROM audit_events");

        var upgrade = await runner.RunAsync(MigrationRunner.LoadScripts(db.Provider).Where(s => string.CompareOrdinal(s.Version, "0012") <= 0).ToList());
        Assert.Equal(["Database/postgres/0012_audit_events_monthly_partitions.sql"], upgrade.Applied);

        Assert.Equal("p", await ScalarAsync(db, "SELECT relkind::text FROM pg_class WHERE relname = 'audit_events'"));
        Assert.Equal(0L, Convert.ToInt64(await ScalarAsync(db, "SELECT count(*) FROM pg_class WHERE relname = 'audit_events_unpartitioned'")));
        Assert.Equal(rowsBefore, (await db.RawRowsAsync("audit_events")).Order().ToList());
        Assert.Equal(hashesBefore, await ScalarAsync(db, "SELECT string_agg(encode(hash, 'hex') || encode(prev_hash, 'hex'), ',' ORDER BY project_id, seq) FROM audit_events"));
        // Every month that held events got its own partition; nothing was left to the default one.
        var perPartition = await RowsPerPartitionAsync(db);
        Assert.DoesNotContain("audit_events_default", perPartition.Keys);
        Assert.Equal(rowsBefore.Count, perPartition.Values.Sum());
        Assert.Contains(AuditPartitions.NameOf(new DateTimeOffset(now.AddDays(-400).Year, now.AddDays(-400).Month, 1, 0, 0, 0, TimeSpan.Zero)), perPartition.Keys);
        // Same secondary indexes as before, declared on the parent.
        Assert.Equal(7L, Convert.ToInt64(await ScalarAsync(db, "SELECT count(*) FROM pg_indexes WHERE tablename = 'audit_events'")));
        Assert.Equal("project_id, seq, occurred_at", await ScalarAsync(db,
            "SELECT string_agg(a.attname, ', ' ORDER BY k.n) FROM pg_constraint c CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, n) " +
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum WHERE c.conname = 'pk_audit_events'"));

        var verifier = world.Services.GetRequiredService<AuditVerifier>();
        foreach (var p in new[] { world.ProjectId, other })
        {
            var v = await verifier.VerifyAsync(p);
            Assert.True(v.Ok, v.Problem);
        }
        // The writer keeps chaining into the new table.
        await world.AuditAsync(3);
        var after = await verifier.VerifyAsync(world.ProjectId);
        Assert.True(after.Ok, after.Problem);
        // Later scripts apply on top; 0012 is not run again.
        Assert.DoesNotContain("Database/postgres/0012_audit_events_monthly_partitions.sql", (await runner.RunAsync()).Applied);
        Assert.Empty((await runner.RunAsync()).Applied);
    }

    [Fact]
    public async Task An_event_of_a_month_without_a_partition_lands_in_the_default_partition_and_that_month_is_then_skipped()
    {
        await using var world = await IntegrationWorld.CreateAsync("postgres");
        var now = world.Clock.GetUtcNow();
        var farAhead = new DateTimeOffset(now.Year + 2, 6, 15, 12, 0, 0, TimeSpan.Zero);
        await world.AuditAsync(4, "gateway.query_executed", farAhead);
        await world.AuditAsync(2, "gateway.query_executed", farAhead.AddDays(1));
        Assert.Equal(6, (await RowsPerPartitionAsync(world.Db))["audit_events_default"]);
        var verifier = world.Services.GetRequiredService<AuditVerifier>();
        var v = await verifier.VerifyAsync(world.ProjectId);
        Assert.True(v.Ok, v.Problem);

        // Maintenance at that time creates the months around it except the one whose events are in the default partition.
        var partitions = PartitionsAt(world, farAhead);
        var created = await partitions.EnsureAsync();
        var june = AuditPartitions.NameOf(new DateTimeOffset(farAhead.Year, 6, 1, 0, 0, 0, TimeSpan.Zero));
        Assert.DoesNotContain(june, created);
        Assert.Contains(AuditPartitions.NameOf(new DateTimeOffset(farAhead.Year, 5, 1, 0, 0, 0, TimeSpan.Zero)), created);
        Assert.Contains(AuditPartitions.NameOf(new DateTimeOffset(farAhead.Year, 9, 1, 0, 0, 0, TimeSpan.Zero)), created);
        Assert.DoesNotContain(june, (await partitions.ListAsync()).Select(p => p.Name));
        Assert.Empty(await partitions.EnsureAsync());

        // New events of the next month go to its new partition; the chain runs on across both.
        await world.AuditAsync(3, "gateway.query_executed", farAhead.AddMonths(1));
        var perPartition = await RowsPerPartitionAsync(world.Db);
        Assert.Equal(6, perPartition["audit_events_default"]);
        Assert.Equal(3, perPartition[AuditPartitions.NameOf(new DateTimeOffset(farAhead.Year, 7, 1, 0, 0, 0, TimeSpan.Zero))]);
        v = await verifier.VerifyAsync(world.ProjectId);
        Assert.True(v.Ok, v.Problem);
    }

    [Theory]
    [MemberData(nameof(Providers.Both), MemberType = typeof(Providers))]
    public async Task The_archive_job_drops_a_month_archived_whole_and_deletes_by_range_in_a_month_that_keeps_an_event(string provider)
    {
        await using var world = await IntegrationWorld.CreateAsync(provider);
        var now = world.Clock.GetUtcNow(); // 1 Nov 2026: queries before 1 Nov 2025 and sign-ins before 3 Aug 2026 are expired
        var june = new DateTimeOffset(2025, 6, 1, 0, 0, 0, TimeSpan.Zero);
        var july = june.AddMonths(1);
        var partitions = world.Services.GetRequiredService<AuditPartitions>();
        // The months existed back then: maintenance ran in those months.
        await PartitionsAt(world, june.AddDays(3)).EnsureAsync();
        var other = await world.OtherProjectAsync();
        await world.AuditAsync(30, "gateway.query_executed", june.AddDays(9));
        await world.AuditAsync(10, "auth.sign_in_succeeded", june.AddDays(9).AddHours(2));
        await world.AuditAsync(6, "gateway.query_executed", june.AddDays(20), other);
        await world.AuditAsync(20, "gateway.query_executed", july.AddDays(4));
        await world.AuditAsync(1, "member.added", july.AddDays(4).AddHours(1)); // security: kept for 7 years
        await world.AuditAsync(5, "gateway.query_executed", now.AddDays(-1));
        var verifier = world.Services.GetRequiredService<AuditVerifier>();
        var archiver = world.Services.GetRequiredService<AuditArchiver>();
        long julyFile = 0, juneFile = 0;
        if (provider == "postgres")
        {
            var perPartition = await RowsPerPartitionAsync(world.Db);
            Assert.Equal(46, perPartition["audit_events_2025_06"]);
            Assert.Equal(21, perPartition["audit_events_2025_07"]);
            julyFile = await RelFileNodeAsync(world.Db, "audit_events_2025_07");
            juneFile = await RelFileNodeAsync(world.Db, "audit_events_2025_06");
        }

        // What the nightly job does: ensure the coming months, archive, drop the months emptied.
        await partitions.EnsureAsync();
        var run = await archiver.ArchiveAsync();
        // June was emptied by TRUNCATE in the archive transaction (a new file), not row by row.
        if (provider == "postgres") Assert.NotEqual(juneFile, await RelFileNodeAsync(world.Db, "audit_events_2025_06"));
        var dropped = await partitions.DropEmptiedAsync();

        Assert.Equal(30 + 10 + 6 + 20, run.EventsArchived);
        await using (var db = await world.Factory.CreateDbContextAsync())
        {
            Assert.Equal(0, await db.AuditEvents.CountAsync(e => e.OccurredAt < july));
            Assert.Equal(1, await db.AuditEvents.CountAsync(e => e.OccurredAt >= july && e.OccurredAt < july.AddMonths(1)));
            Assert.Equal(66, await db.Set<AuditArchive>().SumAsync(a => a.EventCount));
        }
        if (provider == "postgres")
        {
            // Empty months older than the kept window go too (May, August, September were never written to).
            Assert.Contains("audit_events_2025_06", dropped);
            Assert.DoesNotContain("audit_events_2025_07", dropped);
            var names = (await partitions.ListAsync()).Select(p => p.Name).ToList();
            Assert.DoesNotContain("audit_events_2025_06", names);
            // July keeps its security event: the partition stays, its archived rows were deleted by range (same file).
            Assert.Contains("audit_events_2025_07", names);
            Assert.Equal(julyFile, await RelFileNodeAsync(world.Db, "audit_events_2025_07"));
            Assert.Equal(1, (await RowsPerPartitionAsync(world.Db))["audit_events_2025_07"]);
            // The job's month exists; October does not: its events (31 Oct) were written before and sit in the default partition.
            Assert.Contains("audit_events_2026_11", names);
            Assert.DoesNotContain("audit_events_2026_10", names);
            Assert.Contains("audit_events_default", names);
        }
        else
        {
            Assert.Empty(dropped);
            Assert.Empty(await partitions.ListAsync());
        }

        // The chain verifies across archive and database for both projects, through the archived month.
        foreach (var p in new[] { world.ProjectId, other })
        {
            var across = await archiver.VerifyAsync(p);
            Assert.True(across.Chain.Ok, across.Chain.Problem);
            var bridged = await verifier.VerifyAsync(p);
            Assert.True(bridged.Ok, bridged.Problem);
        }
        Assert.Equal(60, (await archiver.VerifyAsync(world.ProjectId)).ArchivedEvents);

        // Nothing more to archive; a second maintenance pass changes nothing; new events still chain.
        Assert.Equal(0, (await archiver.ArchiveAsync()).EventsArchived);
        Assert.Empty(await partitions.DropEmptiedAsync());
        await world.AuditAsync(2);
        var last = await verifier.VerifyAsync(world.ProjectId);
        Assert.True(last.Ok, last.Problem);
    }

    [Fact]
    public async Task A_month_is_emptied_in_the_archive_transaction_only_when_every_row_in_it_is_archived()
    {
        await using var world = await IntegrationWorld.CreateAsync("postgres");
        var june = new DateTimeOffset(2025, 6, 1, 0, 0, 0, TimeSpan.Zero);
        await PartitionsAt(world, june.AddDays(3)).EnsureAsync();
        await world.AuditAsync(12, "gateway.query_executed", june.AddDays(2));
        await world.AuditAsync(20, "gateway.query_executed", june.AddMonths(1).AddDays(2));
        // Inserted by hand: a June row the archiver has not archived (another project, seq beyond any chain).
        await using (var conn = new MigrationRunner(world.Db.Provider, world.Db.ConnectionString).Open())
        {
            await using var cmd = conn.CreateCommand();
            cmd.CommandText = "INSERT INTO audit_events SELECT gen_random_uuid(), 999, gen_random_uuid(), prev_hash, hash, occurred_at, event_type, resource_type, resource_id, action, " +
                "actor_type, actor_id, actor_email, actor_role, session_id, details, before_state, after_state, prompt, sql_text, tables_accessed, success, error_message, duration_ms, " +
                "rows_returned, security_level, data_classifications, client_ip, user_agent, request_id FROM audit_events WHERE occurred_at < '2025-07-01' LIMIT 1";
            Assert.Equal(1, await cmd.ExecuteNonQueryAsync());
        }
        var file = await RelFileNodeAsync(world.Db, "audit_events_2025_06");
        var julyFile = await RelFileNodeAsync(world.Db, "audit_events_2025_07");
        var archiver = world.Services.GetRequiredService<AuditArchiver>();
        var partitions = world.Services.GetRequiredService<AuditPartitions>();

        // 32 archived seqs against 13 June rows: the per-row check, not the row count alone, keeps June.
        Assert.Equal(32, (await archiver.ArchiveAsync()).EventsArchived);
        Assert.NotEqual(julyFile, await RelFileNodeAsync(world.Db, "audit_events_2025_07")); // July: archived whole, truncated
        Assert.Equal(0, (await RowsPerPartitionAsync(world.Db)).GetValueOrDefault("audit_events_2025_07"));
        var dropped = await partitions.DropEmptiedAsync();
        Assert.Contains("audit_events_2025_07", dropped);
        Assert.DoesNotContain("audit_events_2025_06", dropped);
        Assert.Equal(file, await RelFileNodeAsync(world.Db, "audit_events_2025_06"));
        Assert.Equal(1, (await RowsPerPartitionAsync(world.Db))["audit_events_2025_06"]);
        var across = await archiver.VerifyAsync(world.ProjectId);
        Assert.True(across.Chain.Ok, across.Chain.Problem);
    }

    [Fact]
    public async Task A_month_that_has_not_ended_is_never_emptied_even_when_every_event_in_it_is_archived()
    {
        var clock = new ManualClock(new DateTimeOffset(2026, 10, 10, 9, 0, 0, TimeSpan.Zero));
        await using var world = await IntegrationWorld.CreateAsync("postgres", clock: clock);
        var partitions = world.Services.GetRequiredService<AuditPartitions>();
        await world.Services.GetRequiredService<RetentionService>().UpdateAsync(world.ProjectId, EventClasses.Activity, 1, world.Admin);
        clock.Set(new DateTimeOffset(2026, 11, 20, 9, 0, 0, TimeSpan.Zero));
        await partitions.EnsureAsync();
        // November holds nothing but sign-ins, all past a one-day horizon.
        await world.AuditAsync(5, "auth.sign_in_succeeded", new DateTimeOffset(2026, 11, 5, 8, 0, 0, TimeSpan.Zero));
        Assert.Equal(5, (await RowsPerPartitionAsync(world.Db))["audit_events_2026_11"]);
        var file = await RelFileNodeAsync(world.Db, "audit_events_2026_11");

        Assert.Equal(5, (await world.Services.GetRequiredService<AuditArchiver>().ArchiveAsync()).EventsArchived);
        Assert.Empty(await partitions.DropEmptiedAsync());
        // Deleted by range: the partition that takes this month's writes was not truncated (no lock that would stall writers).
        Assert.Equal(file, await RelFileNodeAsync(world.Db, "audit_events_2026_11"));
        Assert.Equal(0, (await RowsPerPartitionAsync(world.Db)).GetValueOrDefault("audit_events_2026_11"));
        Assert.Contains("audit_events_2026_11", (await partitions.ListAsync()).Select(p => p.Name));
    }
}
