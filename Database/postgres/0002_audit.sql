-- 0002 audit trail: tamper-evident events (a SHA-256 hash chain per project) and the per-project chain head.
-- JSON fields (details, before/after state, tables, classifications) are text, not jsonb: jsonb rewrites
-- whitespace and key order, and the hash covers the exact text that was written.
--
-- Partitioning (retention issue): monthly RANGE partitions on occurred_at need occurred_at in every unique
-- constraint. The retention script will recreate the table as
--   PARTITION BY RANGE (occurred_at) with PRIMARY KEY (project_id, seq, occurred_at);
-- seq uniqueness per project then rests on audit_chain_heads (advanced with a compare-and-set by the single
-- transaction that writes the events) and is re-checked by the verifier, which reports any gap or repeat.

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
    request_id character varying(128),
    CONSTRAINT pk_audit_events PRIMARY KEY (project_id, seq)
);

CREATE INDEX ix_audit_events_project_id_occurred_at ON audit_events (project_id, occurred_at);
CREATE INDEX ix_audit_events_project_id_event_type_occurred_at ON audit_events (project_id, event_type, occurred_at);
CREATE INDEX ix_audit_events_project_id_actor_id_occurred_at ON audit_events (project_id, actor_id, occurred_at);

CREATE TABLE audit_chain_heads (
    project_id uuid NOT NULL,
    seq bigint NOT NULL,
    hash bytea NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    CONSTRAINT pk_audit_chain_heads PRIMARY KEY (project_id)
);
