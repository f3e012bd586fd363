-- 0008 Security center: alerts (de-duplicated by fingerprint), their triage history, suppression rules, per-project
-- detector thresholds and the anomaly scan's watermark per audit chain.

CREATE TABLE security_alerts (
    id uuid NOT NULL,
    project_id uuid NOT NULL,
    type character varying(32) NOT NULL,
    rule character varying(64) NOT NULL,
    severity character varying(16) NOT NULL,
    source character varying(16) NOT NULL,
    fingerprint character varying(300) NOT NULL,
    title character varying(300) NOT NULL,
    description character varying(2000) NOT NULL,
    subject_type character varying(16) NOT NULL,
    subject_id character varying(200) NOT NULL,
    subject_label character varying(256),
    key_id uuid,
    user_id uuid,
    evidence_json text NOT NULL,
    audit_event_ids text NOT NULL,
    occurrences integer NOT NULL,
    first_seen_at timestamp with time zone NOT NULL,
    last_seen_at timestamp with time zone NOT NULL,
    status character varying(16) NOT NULL,
    assignee_id uuid,
    acknowledged_by uuid,
    acknowledged_at timestamp with time zone,
    resolution_note character varying(2000),
    resolved_by uuid,
    resolved_at timestamp with time zone,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    CONSTRAINT pk_security_alerts PRIMARY KEY (id),
    CONSTRAINT fk_security_alerts_projects_project_id FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);

CREATE INDEX ix_security_alerts_project_id_fingerprint_last_seen_at ON security_alerts (project_id, fingerprint, last_seen_at);
CREATE INDEX ix_security_alerts_project_id_status_created_at ON security_alerts (project_id, status, created_at);

CREATE TABLE security_alert_changes (
    id uuid NOT NULL,
    project_id uuid NOT NULL,
    alert_id uuid NOT NULL,
    action character varying(32) NOT NULL,
    before character varying(2000),
    after character varying(2000),
    note character varying(2000),
    changed_by uuid NOT NULL,
    changed_at timestamp with time zone NOT NULL,
    CONSTRAINT pk_security_alert_changes PRIMARY KEY (id)
);

CREATE INDEX ix_security_alert_changes_project_id_alert_id_changed_at ON security_alert_changes (project_id, alert_id, changed_at);

CREATE TABLE security_suppressions (
    id uuid NOT NULL,
    project_id uuid NOT NULL,
    type character varying(32) NOT NULL,
    rule character varying(64) NOT NULL,
    subject_type character varying(16) NOT NULL,
    subject_id character varying(200) NOT NULL,
    reason character varying(2000) NOT NULL,
    alert_id uuid,
    created_by uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    CONSTRAINT pk_security_suppressions PRIMARY KEY (id),
    CONSTRAINT fk_security_suppressions_projects_project_id FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);

CREATE INDEX ix_security_suppressions_project_id_expires_at ON security_suppressions (project_id, expires_at);

CREATE TABLE security_detector_settings (
    project_id uuid NOT NULL,
    rule character varying(64) NOT NULL,
    enabled boolean NOT NULL,
    thresholds_json character varying(2000) NOT NULL,
    updated_by uuid NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    CONSTRAINT pk_security_detector_settings PRIMARY KEY (project_id, rule),
    CONSTRAINT fk_security_detector_settings_projects_project_id FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);

-- One row per audit chain (a project's, or the organization chain, all zeros): the last seq the scan has examined.
-- Advanced with a compare-and-set in the transaction that writes the scan's alerts, so a re-run raises nothing twice.
CREATE TABLE security_scan_watermarks (
    chain_id uuid NOT NULL,
    last_seq bigint NOT NULL,
    last_scan_at timestamp with time zone NOT NULL,
    events_examined bigint NOT NULL,
    CONSTRAINT pk_security_scan_watermarks PRIMARY KEY (chain_id)
);

-- What the anomaly scan has learned, kept so an incremental scan reads only new events: events and rows per user or
-- key per UTC day and hour (baselines for off-hours, volume and dormancy), and the sources (IP, user agent) each
-- user or key has been seen from. Written in the scan's transaction, with the watermark.
CREATE TABLE security_activity_profiles (
    project_id uuid NOT NULL,
    actor_id character varying(200) NOT NULL,
    day integer NOT NULL,
    hour integer NOT NULL,
    actor_type character varying(16) NOT NULL,
    events bigint NOT NULL,
    rows bigint NOT NULL,
    CONSTRAINT pk_security_activity_profiles PRIMARY KEY (project_id, actor_id, day, hour)
);

CREATE TABLE security_known_sources (
    project_id uuid NOT NULL,
    actor_id character varying(200) NOT NULL,
    kind character varying(8) NOT NULL,
    value character varying(512) NOT NULL,
    first_seen_at timestamp with time zone NOT NULL,
    CONSTRAINT pk_security_known_sources PRIMARY KEY (project_id, actor_id, kind, value)
);
