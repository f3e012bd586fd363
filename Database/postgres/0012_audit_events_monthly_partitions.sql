-- 0012 audit trail partitioned by month (issue 7): audit_events becomes PARTITION BY RANGE (occurred_at) with one
-- partition per UTC month, so the archive job can empty a month whose every event is archived with one TRUNCATE
-- and drop it whole instead of deleting millions of rows one seq range at a time (no dead tuples, no vacuum debt,
-- the disk space comes back at once). Same columns, types and secondary indexes as before; existing rows are moved
-- inside this script's transaction, so an install upgrades in place or not at all.
--
-- The primary key must contain the partition key, so it becomes (project_id, seq, occurred_at). (project_id, seq)
-- stays unique because seq is assigned only by AuditWriter, which reads the project's head row in
-- audit_chain_heads with SELECT ... FOR UPDATE and advances it with UPDATE ... WHERE seq = <expected>: two writers
-- cannot both extend the same head, and a lost compare-and-set rolls the whole batch back. The verifier reports any
-- repeated or missing seq. A per-partition unique index on (project_id, seq) was left out on purpose: it would be a
-- second index as large as the primary key on every insert of the hottest table, guarding a case the head row
-- already excludes (and a repeat could still straddle two months).
--
-- A DEFAULT partition catches events of a month without a partition (a backdated event, a portal that was down when
-- the months ahead should have been created), so an insert never fails for want of a partition. The portal creates
-- partitions for the months around now at startup and before each nightly archive run (AuditPartitions), skipping a
-- month whose events already sit in the default partition.

ALTER TABLE audit_events RENAME TO audit_events_unpartitioned;
ALTER TABLE audit_events_unpartitioned RENAME CONSTRAINT pk_audit_events TO pk_audit_events_unpartitioned;
-- Index names are per schema; the new table takes the old names.
DROP INDEX ix_audit_events_project_id_occurred_at;
DROP INDEX ix_audit_events_project_id_event_type_occurred_at;
DROP INDEX ix_audit_events_project_id_actor_id_occurred_at;
DROP INDEX ix_audit_events_project_id_session_id_occurred_at;
DROP INDEX ix_audit_events_project_id_actor_email_occurred_at;
DROP INDEX ix_audit_events_project_id_security_level_occurred_at;

CREATE TABLE audit_events (
    project_id uuid NOT NULL,
    seq bigint NOT NULL,
    id uuid NOT NULL,
    prev_hash bytea NOT NULL,
    hash bytea NOT NULL,
    occurred_at timestamp with time zone NOT NULL,
    event_type character varying(64) NOT NULL,
    resource_type character varying(64),
    resource_id character varying(200),
    action character varying(64),
    actor_type character varying(16) NOT NULL,
    actor_id character varying(200),
    actor_email character varying(256),
    actor_role character varying(32),
    session_id character varying(128),
    details text,
    before_state text,
    after_state text,
    prompt text,
    sql_text text,
    tables_accessed text,
    success boolean NOT NULL,
    error_message character varying(2000),
    duration_ms bigint,
    rows_returned bigint,
    security_level character varying(16) NOT NULL,
    data_classifications text,
    client_ip character varying(64),
    user_agent character varying(512),
    request_id character varying(128)
) PARTITION BY RANGE (occurred_at);

CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT;

-- One partition per UTC month that holds events, and the current month with the next three. Names are
-- audit_events_YYYY_MM; bounds are spelled with +00 so the session's time zone cannot shift them.
DO $$
DECLARE
    m timestamp;
BEGIN
    FOR m IN
        SELECT DISTINCT date_trunc('month', occurred_at AT TIME ZONE 'UTC') FROM audit_events_unpartitioned
        UNION
        SELECT date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => i) FROM generate_series(0, 3) AS i
    LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF audit_events FOR VALUES FROM (%L) TO (%L)',
            'audit_events_' || to_char(m, 'YYYY_MM'),
            to_char(m, 'YYYY-MM-DD') || ' 00:00:00+00',
            to_char(m + interval '1 month', 'YYYY-MM-DD') || ' 00:00:00+00');
    END LOOP;
END
$$;

INSERT INTO audit_events (project_id, seq, id, prev_hash, hash, occurred_at, event_type, resource_type, resource_id, action,
    actor_type, actor_id, actor_email, actor_role, session_id, details, before_state, after_state, prompt, sql_text,
    tables_accessed, success, error_message, duration_ms, rows_returned, security_level, data_classifications, client_ip,
    user_agent, request_id)
SELECT project_id, seq, id, prev_hash, hash, occurred_at, event_type, resource_type, resource_id, action,
    actor_type, actor_id, actor_email, actor_role, session_id, details, before_state, after_state, prompt, sql_text,
    tables_accessed, success, error_message, duration_ms, rows_returned, security_level, data_classifications, client_ip,
    user_agent, request_id
FROM audit_events_unpartitioned;

-- An audit trail that lost a row in an upgrade would be worse than a failed upgrade.
DO $$
BEGIN
    IF (SELECT count(*) FROM audit_events) <> (SELECT count(*) FROM audit_events_unpartitioned) THEN
        RAISE EXCEPTION 'audit_events: row count changed while partitioning; nothing was changed';
    END IF;
END
$$;

DROP TABLE audit_events_unpartitioned;

-- Keys and indexes are built after the copy (one sorted build per partition instead of a million inserts each).
ALTER TABLE audit_events ADD CONSTRAINT pk_audit_events PRIMARY KEY (project_id, seq, occurred_at);
CREATE INDEX ix_audit_events_project_id_occurred_at ON audit_events (project_id, occurred_at);
CREATE INDEX ix_audit_events_project_id_event_type_occurred_at ON audit_events (project_id, event_type, occurred_at);
CREATE INDEX ix_audit_events_project_id_actor_id_occurred_at ON audit_events (project_id, actor_id, occurred_at);
CREATE INDEX ix_audit_events_project_id_session_id_occurred_at ON audit_events (project_id, session_id, occurred_at);
CREATE INDEX ix_audit_events_project_id_actor_email_occurred_at ON audit_events (project_id, actor_email, occurred_at);
CREATE INDEX ix_audit_events_project_id_security_level_occurred_at ON audit_events (project_id, security_level, occurred_at) WHERE security_level <> 'normal';

ANALYZE audit_events;
