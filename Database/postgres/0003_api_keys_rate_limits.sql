-- 0003 API keys and rate limits for the gateway.
-- Keys are stored as a SHA-256 hash plus an 8-character lookup prefix; the secret itself is never stored.

CREATE TABLE api_keys (
    id uuid NOT NULL,
    project_id uuid NOT NULL,
    name character varying(200) NOT NULL,
    role character varying(32) NOT NULL,
    scopes_json text NOT NULL,
    prefix character varying(8) NOT NULL,
    secret_hash character varying(64) NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    created_by uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    last_used_at timestamp with time zone,
    last_used_ip character varying(64),
    revoked_at timestamp with time zone,
    revoked_by uuid,
    revoke_reason character varying(500),
    replaced_by_key_id uuid,
    superseded_until timestamp with time zone,
    CONSTRAINT pk_api_keys PRIMARY KEY (id),
    CONSTRAINT fk_api_keys_projects_project_id FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);

-- Unique across projects: authentication finds the key by prefix before it knows the project.
CREATE UNIQUE INDEX ix_api_keys_prefix ON api_keys (prefix);

CREATE INDEX ix_api_keys_project_id_created_at ON api_keys (project_id, created_at);

CREATE TABLE api_key_changes (
    id uuid NOT NULL,
    project_id uuid NOT NULL,
    key_id uuid NOT NULL,
    action character varying(16) NOT NULL,
    key_name character varying(200) NOT NULL,
    key_prefix character varying(8) NOT NULL,
    role character varying(32) NOT NULL,
    scopes_json text NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    replaced_by_key_id uuid,
    superseded_until timestamp with time zone,
    reason character varying(500),
    changed_by uuid NOT NULL,
    changed_at timestamp with time zone NOT NULL,
    CONSTRAINT pk_api_key_changes PRIMARY KEY (id)
);

CREATE INDEX ix_api_key_changes_project_id_changed_at ON api_key_changes (project_id, changed_at);

CREATE TABLE rate_limits (
    id uuid NOT NULL,
    project_id uuid NOT NULL,
    scope character varying(16) NOT NULL,
    subject character varying(100),
    max_requests integer,
    max_rows bigint,
    window_seconds integer NOT NULL,
    enabled boolean NOT NULL,
    created_by uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_by uuid NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    CONSTRAINT pk_rate_limits PRIMARY KEY (id),
    CONSTRAINT fk_rate_limits_projects_project_id FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);

CREATE INDEX ix_rate_limits_project_id ON rate_limits (project_id);

CREATE TABLE rate_limit_changes (
    id uuid NOT NULL,
    project_id uuid NOT NULL,
    rate_limit_id uuid NOT NULL,
    action character varying(16) NOT NULL,
    before character varying(1000),
    after character varying(1000),
    changed_by uuid NOT NULL,
    changed_at timestamp with time zone NOT NULL,
    CONSTRAINT pk_rate_limit_changes PRIMARY KEY (id)
);

CREATE INDEX ix_rate_limit_changes_project_id_changed_at ON rate_limit_changes (project_id, changed_at);
