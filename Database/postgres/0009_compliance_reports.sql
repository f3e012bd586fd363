-- 0009 Compliance reports: each generated report (its parameters, progress, SHA-256 and who generated it), the signed
-- PDF bytes, the monthly/quarterly schedules, and the portal's report-signing certificate.
-- The PDF is kept in the database, not the data directory: clustered job workers share only the database with the
-- portal, and a report's PDF is bounded (its tables are aggregated and capped), so backups carry reports with the trail.

CREATE TABLE compliance_reports (
    id uuid NOT NULL,
    project_id uuid NOT NULL,
    report_type character varying(16) NOT NULL,
    title character varying(200) NOT NULL,
    period_start timestamp with time zone NOT NULL,
    period_end timestamp with time zone NOT NULL,
    parameters_json text NOT NULL,
    status character varying(16) NOT NULL,
    progress integer NOT NULL,
    progress_message character varying(200),
    requested_by uuid,
    requested_by_email character varying(256),
    schedule_id uuid,
    generator character varying(100) NOT NULL,
    requested_at timestamp with time zone NOT NULL,
    started_at timestamp with time zone,
    completed_at timestamp with time zone,
    claimed_by character varying(200),
    max_seq bigint NOT NULL,
    event_count bigint NOT NULL,
    data_sha256 character varying(64),
    pdf_sha256 character varying(64),
    pdf_size bigint,
    signer_thumbprint character varying(64),
    chain_ok boolean,
    error character varying(2000),
    CONSTRAINT pk_compliance_reports PRIMARY KEY (id),
    CONSTRAINT fk_compliance_reports_projects_project_id FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);

CREATE INDEX ix_compliance_reports_project_id_requested_at ON compliance_reports (project_id, requested_at);
CREATE INDEX ix_compliance_reports_status_requested_at ON compliance_reports (status, requested_at);

CREATE TABLE compliance_report_files (
    report_id uuid NOT NULL,
    project_id uuid NOT NULL,
    pdf bytea NOT NULL,
    CONSTRAINT pk_compliance_report_files PRIMARY KEY (report_id),
    CONSTRAINT fk_compliance_report_files_compliance_reports_report_id FOREIGN KEY (report_id) REFERENCES compliance_reports (id) ON DELETE CASCADE
);

CREATE TABLE compliance_report_schedules (
    id uuid NOT NULL,
    project_id uuid NOT NULL,
    report_type character varying(16) NOT NULL,
    frequency character varying(16) NOT NULL,
    enabled boolean NOT NULL,
    created_by uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    next_run_at timestamp with time zone NOT NULL,
    last_run_at timestamp with time zone,
    last_report_id uuid,
    CONSTRAINT pk_compliance_report_schedules PRIMARY KEY (id),
    CONSTRAINT fk_compliance_report_schedules_projects_project_id FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);

CREATE INDEX ix_compliance_report_schedules_project_id ON compliance_report_schedules (project_id);
CREATE INDEX ix_compliance_report_schedules_enabled_next_run_at ON compliance_report_schedules (enabled, next_run_at);

-- The portal's report-signing certificate (organization-wide, not a tenant row). The PKCS#12 bytes are encrypted with
-- the portal's secret keys (SecretProtector).
CREATE TABLE report_signing_certificates (
    id uuid NOT NULL,
    subject character varying(300) NOT NULL,
    thumbprint character varying(64) NOT NULL,
    not_before timestamp with time zone NOT NULL,
    not_after timestamp with time zone NOT NULL,
    pfx_protected text NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT pk_report_signing_certificates PRIMARY KEY (id)
);

CREATE UNIQUE INDEX ix_report_signing_certificates_thumbprint ON report_signing_certificates (thumbprint);
