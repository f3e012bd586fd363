-- 0007 Governance: suggested queries, approvals, approval policies, query versions and lineage (consumers).
-- A suggestion keeps its datasource and target query ids without foreign keys: either may be deleted while it
-- is pending, and approving it then fails with a clear message instead of the row disappearing.

CREATE TABLE suggestions (
    id uuid NOT NULL,
    project_id uuid NOT NULL,
    datasource_id uuid NOT NULL,
    query_id uuid,
    base_version integer,
    name character varying(200) NOT NULL,
    description character varying(2000) NOT NULL,
    prompt character varying(8000) NOT NULL,
    justification character varying(4000) NOT NULL,
    sql text NOT NULL,
    parameters_json text NOT NULL,
    classifications_json character varying(1000) NOT NULL,
    analysis_json text NOT NULL,
    risk_flags character varying(500) NOT NULL,
    read_classifications character varying(500) NOT NULL,
    row_cap integer NOT NULL,
    timeout_ms integer NOT NULL,
    content_hash character varying(64) NOT NULL,
    status character varying(16) NOT NULL,
    submitted_by_type character varying(16) NOT NULL,
    submitted_by uuid NOT NULL,
    submitted_by_name character varying(256) NOT NULL,
    submitter_user_id uuid,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    decided_at timestamp with time zone,
    decided_by uuid,
    decision_reason character varying(2000),
    result_query_id uuid,
    result_version integer,
    row_version integer NOT NULL,
    CONSTRAINT pk_suggestions PRIMARY KEY (id),
    CONSTRAINT fk_suggestions_projects_project_id FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);

CREATE INDEX ix_suggestions_project_id_status_created_at ON suggestions (project_id, status, created_at);
CREATE INDEX ix_suggestions_project_id_submitted_by ON suggestions (project_id, submitted_by);
-- One pending suggestion per exact SQL and parameters on a datasource: a resubmission answers 409.
CREATE UNIQUE INDEX ux_suggestions_pending_content ON suggestions (project_id, datasource_id, content_hash) WHERE status = 'pending';

CREATE TABLE suggestion_approvals (
    id uuid NOT NULL,
    project_id uuid NOT NULL,
    suggestion_id uuid NOT NULL,
    reviewer_id uuid NOT NULL,
    reviewer_role character varying(32) NOT NULL,
    content_hash character varying(64) NOT NULL,
    reason character varying(2000) NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT pk_suggestion_approvals PRIMARY KEY (id),
    CONSTRAINT fk_suggestion_approvals_suggestions_suggestion_id FOREIGN KEY (suggestion_id) REFERENCES suggestions (id) ON DELETE CASCADE
);

CREATE INDEX ix_suggestion_approvals_suggestion_id ON suggestion_approvals (suggestion_id);

CREATE TABLE suggestion_events (
    id uuid NOT NULL,
    project_id uuid NOT NULL,
    suggestion_id uuid NOT NULL,
    action character varying(32) NOT NULL,
    actor_type character varying(16) NOT NULL,
    actor_id uuid,
    actor_name character varying(256),
    reason character varying(2000),
    content_hash character varying(64),
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT pk_suggestion_events PRIMARY KEY (id),
    CONSTRAINT fk_suggestion_events_suggestions_suggestion_id FOREIGN KEY (suggestion_id) REFERENCES suggestions (id) ON DELETE CASCADE
);

CREATE INDEX ix_suggestion_events_suggestion_id_created_at ON suggestion_events (suggestion_id, created_at);

CREATE TABLE governance_settings (
    project_id uuid NOT NULL,
    pending_expiry_hours integer NOT NULL,
    default_grant_roles_json character varying(500) NOT NULL,
    updated_by uuid NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    CONSTRAINT pk_governance_settings PRIMARY KEY (project_id),
    CONSTRAINT fk_governance_settings_projects_project_id FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);

CREATE TABLE approval_policies (
    id uuid NOT NULL,
    project_id uuid NOT NULL,
    classification character varying(64) NOT NULL,
    required_approvals integer NOT NULL,
    reviewer_roles_json character varying(500) NOT NULL,
    distinct_roles boolean NOT NULL,
    updated_by uuid NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    CONSTRAINT pk_approval_policies PRIMARY KEY (id),
    CONSTRAINT fk_approval_policies_projects_project_id FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);

CREATE UNIQUE INDEX ix_approval_policies_project_id_classification ON approval_policies (project_id, classification);

CREATE TABLE query_versions (
    id uuid NOT NULL,
    project_id uuid NOT NULL,
    query_id uuid NOT NULL,
    version integer NOT NULL,
    datasource_id uuid NOT NULL,
    name character varying(200) NOT NULL,
    description character varying(2000) NOT NULL,
    sql text NOT NULL,
    parameters_json text NOT NULL,
    classifications_json character varying(1000) NOT NULL,
    row_cap integer NOT NULL,
    timeout_ms integer NOT NULL,
    status character varying(16) NOT NULL,
    change character varying(16) NOT NULL,
    reason character varying(2000),
    suggestion_id uuid,
    restored_from_version integer,
    created_by uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT pk_query_versions PRIMARY KEY (id),
    CONSTRAINT fk_query_versions_projects_project_id FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE,
    CONSTRAINT fk_query_versions_approved_queries_query_id FOREIGN KEY (query_id) REFERENCES approved_queries (id) ON DELETE CASCADE
);

CREATE UNIQUE INDEX ix_query_versions_query_id_version ON query_versions (query_id, version);
CREATE INDEX ix_query_versions_project_id ON query_versions (project_id);

CREATE TABLE query_consumers (
    id uuid NOT NULL,
    project_id uuid NOT NULL,
    query_id uuid NOT NULL,
    kind character varying(16) NOT NULL,
    name character varying(200) NOT NULL,
    external_id character varying(200),
    owner character varying(200),
    created_by uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT pk_query_consumers PRIMARY KEY (id),
    CONSTRAINT fk_query_consumers_projects_project_id FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE,
    CONSTRAINT fk_query_consumers_approved_queries_query_id FOREIGN KEY (query_id) REFERENCES approved_queries (id) ON DELETE CASCADE
);

CREATE INDEX ix_query_consumers_query_id ON query_consumers (query_id);
CREATE INDEX ix_query_consumers_project_id ON query_consumers (project_id);
