-- 0010 Integrations and retention: webhook/Slack/Teams endpoints and their deliveries, SIEM exports with their
-- cursor, retention policies per event class and the manifests of archived audit events.

CREATE TABLE webhook_endpoints (
    id uuid NOT NULL,
    project_id uuid NOT NULL,
    name character varying(200) NOT NULL,
    kind character varying(16) NOT NULL,
    url character varying(2000) NOT NULL,
    event_types character varying(1000) NOT NULL,
    secret_protected text NOT NULL,
    previous_secret_protected text,
    previous_secret_until timestamp with time zone,
    enabled boolean NOT NULL,
    disabled_reason character varying(500),
    query_cursor bigint NOT NULL,
    created_by uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    CONSTRAINT pk_webhook_endpoints PRIMARY KEY (id),
    CONSTRAINT fk_webhook_endpoints_projects_project_id FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);

CREATE INDEX ix_webhook_endpoints_project_id ON webhook_endpoints (project_id);

-- One row per (message, endpoint). The id is the Standard Webhooks webhook-id, so a receiver de-duplicates a
-- redelivery after a crash between sending and recording. lease_* let several workers share the work.
CREATE TABLE webhook_deliveries (
    id uuid NOT NULL,
    project_id uuid NOT NULL,
    endpoint_id uuid NOT NULL,
    outbox_message_id uuid,
    event_type character varying(64) NOT NULL,
    payload text NOT NULL,
    status character varying(16) NOT NULL,
    attempts integer NOT NULL,
    next_attempt_at timestamp with time zone NOT NULL,
    last_attempt_at timestamp with time zone,
    response_code integer,
    response_excerpt character varying(500),
    lease_owner character varying(64),
    lease_until timestamp with time zone,
    created_at timestamp with time zone NOT NULL,
    delivered_at timestamp with time zone,
    CONSTRAINT pk_webhook_deliveries PRIMARY KEY (id),
    CONSTRAINT fk_webhook_deliveries_webhook_endpoints_endpoint_id FOREIGN KEY (endpoint_id) REFERENCES webhook_endpoints (id) ON DELETE CASCADE
);

CREATE INDEX ix_webhook_deliveries_status_next_attempt_at ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX ix_webhook_deliveries_endpoint_id_created_at ON webhook_deliveries (endpoint_id, created_at);
CREATE INDEX ix_webhook_deliveries_lease_owner ON webhook_deliveries (lease_owner);

CREATE TABLE siem_integrations (
    id uuid NOT NULL,
    project_id uuid NOT NULL,
    name character varying(200) NOT NULL,
    kind character varying(16) NOT NULL,
    format character varying(16) NOT NULL,
    endpoint character varying(2000) NOT NULL,
    use_tls boolean NOT NULL,
    secret_protected text,
    event_types character varying(1000),
    batch_size integer NOT NULL,
    status character varying(16) NOT NULL,
    cursor_seq bigint NOT NULL,
    attempts integer NOT NULL,
    next_attempt_at timestamp with time zone NOT NULL,
    lease_owner character varying(64),
    lease_until timestamp with time zone,
    last_success_at timestamp with time zone,
    last_error character varying(2000),
    last_error_at timestamp with time zone,
    exported_count bigint NOT NULL,
    created_by uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT pk_siem_integrations PRIMARY KEY (id),
    CONSTRAINT fk_siem_integrations_projects_project_id FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);

CREATE INDEX ix_siem_integrations_project_id ON siem_integrations (project_id);

-- The transactional record of every integration, webhook and retention change (the audit event follows the commit).
CREATE TABLE integration_changes (
    id uuid NOT NULL,
    project_id uuid NOT NULL,
    subject_type character varying(32) NOT NULL,
    subject_id character varying(64) NOT NULL,
    action character varying(32) NOT NULL,
    before character varying(4000),
    after character varying(4000),
    changed_by uuid NOT NULL,
    changed_at timestamp with time zone NOT NULL,
    CONSTRAINT pk_integration_changes PRIMARY KEY (id)
);

CREATE INDEX ix_integration_changes_project_id_changed_at ON integration_changes (project_id, changed_at);

CREATE TABLE retention_policies (
    id uuid NOT NULL,
    project_id uuid NOT NULL,
    event_class character varying(32) NOT NULL,
    days integer NOT NULL,
    updated_by uuid NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    CONSTRAINT pk_retention_policies PRIMARY KEY (id)
);

CREATE UNIQUE INDEX ix_retention_policies_project_id_event_class ON retention_policies (project_id, event_class);

-- One archive file of one project's events of one day (compressed JSONL) and what it holds. Deleting the events
-- from audit_events happens in the same transaction that records the manifest.
CREATE TABLE audit_archives (
    id uuid NOT NULL,
    project_id uuid NOT NULL,
    day timestamp with time zone NOT NULL,
    file_name character varying(500) NOT NULL,
    event_count bigint NOT NULL,
    first_seq bigint NOT NULL,
    last_seq bigint NOT NULL,
    first_prev_hash bytea NOT NULL,
    last_hash bytea NOT NULL,
    sha256 character varying(64) NOT NULL,
    byte_size bigint NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT pk_audit_archives PRIMARY KEY (id)
);

CREATE INDEX ix_audit_archives_project_id_day ON audit_archives (project_id, day);
