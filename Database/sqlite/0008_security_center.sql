-- 0008 Security center: alerts (de-duplicated by fingerprint), their triage history, suppression rules, per-project
-- detector thresholds and the anomaly scan's watermark per audit chain.
-- Timestamps are UTC ticks (INTEGER); GUIDs are TEXT.

CREATE TABLE "security_alerts" (
    "id" TEXT NOT NULL CONSTRAINT "pk_security_alerts" PRIMARY KEY,
    "project_id" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "rule" TEXT NOT NULL,
    "severity" TEXT NOT NULL,
    "source" TEXT NOT NULL,
    "fingerprint" TEXT NOT NULL,
    "title" TEXT NOT NULL,
    "description" TEXT NOT NULL,
    "subject_type" TEXT NOT NULL,
    "subject_id" TEXT NOT NULL,
    "subject_label" TEXT NULL,
    "key_id" TEXT NULL,
    "user_id" TEXT NULL,
    "evidence_json" TEXT NOT NULL,
    "audit_event_ids" TEXT NOT NULL,
    "occurrences" INTEGER NOT NULL,
    "first_seen_at" INTEGER NOT NULL,
    "last_seen_at" INTEGER NOT NULL,
    "status" TEXT NOT NULL,
    "assignee_id" TEXT NULL,
    "acknowledged_by" TEXT NULL,
    "acknowledged_at" INTEGER NULL,
    "resolution_note" TEXT NULL,
    "resolved_by" TEXT NULL,
    "resolved_at" INTEGER NULL,
    "created_at" INTEGER NOT NULL,
    "updated_at" INTEGER NOT NULL,
    CONSTRAINT "fk_security_alerts_projects_project_id" FOREIGN KEY ("project_id") REFERENCES "projects" ("id") ON DELETE CASCADE
);

CREATE INDEX "ix_security_alerts_project_id_fingerprint_last_seen_at" ON "security_alerts" ("project_id", "fingerprint", "last_seen_at");
CREATE INDEX "ix_security_alerts_project_id_status_created_at" ON "security_alerts" ("project_id", "status", "created_at");

CREATE TABLE "security_alert_changes" (
    "id" TEXT NOT NULL CONSTRAINT "pk_security_alert_changes" PRIMARY KEY,
    "project_id" TEXT NOT NULL,
    "alert_id" TEXT NOT NULL,
    "action" TEXT NOT NULL,
    "before" TEXT NULL,
    "after" TEXT NULL,
    "note" TEXT NULL,
    "changed_by" TEXT NOT NULL,
    "changed_at" INTEGER NOT NULL
);

CREATE INDEX "ix_security_alert_changes_project_id_alert_id_changed_at" ON "security_alert_changes" ("project_id", "alert_id", "changed_at");

CREATE TABLE "security_suppressions" (
    "id" TEXT NOT NULL CONSTRAINT "pk_security_suppressions" PRIMARY KEY,
    "project_id" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "rule" TEXT NOT NULL,
    "subject_type" TEXT NOT NULL,
    "subject_id" TEXT NOT NULL,
    "reason" TEXT NOT NULL,
    "alert_id" TEXT NULL,
    "created_by" TEXT NOT NULL,
    "created_at" INTEGER NOT NULL,
    "expires_at" INTEGER NOT NULL,
    CONSTRAINT "fk_security_suppressions_projects_project_id" FOREIGN KEY ("project_id") REFERENCES "projects" ("id") ON DELETE CASCADE
);

CREATE INDEX "ix_security_suppressions_project_id_expires_at" ON "security_suppressions" ("project_id", "expires_at");

CREATE TABLE "security_detector_settings" (
    "project_id" TEXT NOT NULL,
    "rule" TEXT NOT NULL,
    "enabled" INTEGER NOT NULL,
    "thresholds_json" TEXT NOT NULL,
    "updated_by" TEXT NOT NULL,
    "updated_at" INTEGER NOT NULL,
    CONSTRAINT "pk_security_detector_settings" PRIMARY KEY ("project_id", "rule"),
    CONSTRAINT "fk_security_detector_settings_projects_project_id" FOREIGN KEY ("project_id") REFERENCES "projects" ("id") ON DELETE CASCADE
);

-- One row per audit chain (a project's, or the organization chain Guid.Empty): the last seq the scan has examined.
-- Advanced with a compare-and-set in the transaction that writes the scan's alerts, so a re-run raises nothing twice.
CREATE TABLE "security_scan_watermarks" (
    "chain_id" TEXT NOT NULL CONSTRAINT "pk_security_scan_watermarks" PRIMARY KEY,
    "last_seq" INTEGER NOT NULL,
    "last_scan_at" INTEGER NOT NULL,
    "events_examined" INTEGER NOT NULL
);

-- What the anomaly scan has learned, kept so an incremental scan reads only new events: events and rows per user or
-- key per UTC day and hour (baselines for off-hours, volume and dormancy), and the sources (IP, user agent) each
-- user or key has been seen from. Written in the scan's transaction, with the watermark.
CREATE TABLE "security_activity_profiles" (
    "project_id" TEXT NOT NULL,
    "actor_id" TEXT NOT NULL,
    "day" INTEGER NOT NULL,
    "hour" INTEGER NOT NULL,
    "actor_type" TEXT NOT NULL,
    "events" INTEGER NOT NULL,
    "rows" INTEGER NOT NULL,
    CONSTRAINT "pk_security_activity_profiles" PRIMARY KEY ("project_id", "actor_id", "day", "hour")
);

CREATE TABLE "security_known_sources" (
    "project_id" TEXT NOT NULL,
    "actor_id" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "value" TEXT NOT NULL,
    "first_seen_at" INTEGER NOT NULL,
    CONSTRAINT "pk_security_known_sources" PRIMARY KEY ("project_id", "actor_id", "kind", "value")
);
