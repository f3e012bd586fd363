-- 0006 Access control: the per-project gateway settings (injection screening block|flag) and the record of every
-- change to query permissions, column masks and those settings (before/after JSON), written in the same transaction
-- as the change and then appended to the audit trail.

CREATE TABLE gateway_settings (
    project_id uuid NOT NULL,
    injection_screening character varying(8) NOT NULL,
    updated_by uuid NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    CONSTRAINT pk_gateway_settings PRIMARY KEY (project_id),
    CONSTRAINT fk_gateway_settings_projects_project_id FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);

CREATE TABLE access_changes (
    id uuid NOT NULL,
    project_id uuid NOT NULL,
    subject_type character varying(32) NOT NULL,
    subject_id uuid NOT NULL,
    action character varying(16) NOT NULL,
    before character varying(4000),
    after character varying(4000),
    changed_by uuid NOT NULL,
    changed_at timestamp with time zone NOT NULL,
    CONSTRAINT pk_access_changes PRIMARY KEY (id)
);

CREATE INDEX ix_access_changes_project_id_changed_at ON access_changes (project_id, changed_at);
