-- 0010 Integrations and retention: webhook/Slack/Teams endpoints and their deliveries, SIEM exports with their
-- cursor, retention policies per event class and the manifests of archived audit events.
-- Timestamps are UTC ticks (INTEGER); GUIDs are TEXT; hashes are 32-byte BLOBs.

CREATE TABLE "webhook_endpoints" (
    "id" TEXT NOT NULL CONSTRAINT "pk_webhook_endpoints" PRIMARY KEY,
    "project_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "url" TEXT NOT NULL,
    "event_types" TEXT NOT NULL,
    "secret_protected" TEXT NOT NULL,
    "previous_secret_protected" TEXT NULL,
    "previous_secret_until" INTEGER NULL,
    "enabled" INTEGER NOT NULL,
    "disabled_reason" TEXT NULL,
    "query_cursor" INTEGER NOT NULL,
    "created_by" TEXT NOT NULL,
    "created_at" INTEGER NOT NULL,
    "updated_at" INTEGER NOT NULL,
    CONSTRAINT "fk_webhook_endpoints_projects_project_id" FOREIGN KEY ("project_id") REFERENCES "projects" ("id") ON DELETE CASCADE
);

CREATE INDEX "ix_webhook_endpoints_project_id" ON "webhook_endpoints" ("project_id");

-- One row per (message, endpoint). The id is the Standard Webhooks webhook-id, so a receiver de-duplicates a
-- redelivery after a crash between sending and recording. lease_* let several workers share the work.
CREATE TABLE "webhook_deliveries" (
    "id" TEXT NOT NULL CONSTRAINT "pk_webhook_deliveries" PRIMARY KEY,
    "project_id" TEXT NOT NULL,
    "endpoint_id" TEXT NOT NULL,
    "outbox_message_id" TEXT NULL,
    "event_type" TEXT NOT NULL,
    "payload" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "attempts" INTEGER NOT NULL,
    "next_attempt_at" INTEGER NOT NULL,
    "last_attempt_at" INTEGER NULL,
    "response_code" INTEGER NULL,
    "response_excerpt" TEXT NULL,
    "lease_owner" TEXT NULL,
    "lease_until" INTEGER NULL,
    "created_at" INTEGER NOT NULL,
    "delivered_at" INTEGER NULL,
    CONSTRAINT "fk_webhook_deliveries_webhook_endpoints_endpoint_id" FOREIGN KEY ("endpoint_id") REFERENCES "webhook_endpoints" ("id") ON DELETE CASCADE
);

CREATE INDEX "ix_webhook_deliveries_status_next_attempt_at" ON "webhook_deliveries" ("status", "next_attempt_at");
CREATE INDEX "ix_webhook_deliveries_endpoint_id_created_at" ON "webhook_deliveries" ("endpoint_id", "created_at");
CREATE INDEX "ix_webhook_deliveries_lease_owner" ON "webhook_deliveries" ("lease_owner");

CREATE TABLE "siem_integrations" (
    "id" TEXT NOT NULL CONSTRAINT "pk_siem_integrations" PRIMARY KEY,
    "project_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "format" TEXT NOT NULL,
    "endpoint" TEXT NOT NULL,
    "use_tls" INTEGER NOT NULL,
    "secret_protected" TEXT NULL,
    "event_types" TEXT NULL,
    "batch_size" INTEGER NOT NULL,
    "status" TEXT NOT NULL,
    "cursor_seq" INTEGER NOT NULL,
    "attempts" INTEGER NOT NULL,
    "next_attempt_at" INTEGER NOT NULL,
    "lease_owner" TEXT NULL,
    "lease_until" INTEGER NULL,
    "last_success_at" INTEGER NULL,
    "last_error" TEXT NULL,
    "last_error_at" INTEGER NULL,
    "exported_count" INTEGER NOT NULL,
    "created_by" TEXT NOT NULL,
    "created_at" INTEGER NOT NULL,
    CONSTRAINT "fk_siem_integrations_projects_project_id" FOREIGN KEY ("project_id") REFERENCES "projects" ("id") ON DELETE CASCADE
);

CREATE INDEX "ix_siem_integrations_project_id" ON "siem_integrations" ("project_id");

-- The transactional record of every integration, webhook and retention change (the audit event follows the commit).
CREATE TABLE "integration_changes" (
    "id" TEXT NOT NULL CONSTRAINT "pk_integration_changes" PRIMARY KEY,
    "project_id" TEXT NOT NULL,
    "subject_type" TEXT NOT NULL,
    "subject_id" TEXT NOT NULL,
    "action" TEXT NOT NULL,
    "before" TEXT NULL,
    "after" TEXT NULL,
    "changed_by" TEXT NOT NULL,
    "changed_at" INTEGER NOT NULL
);

CREATE INDEX "ix_integration_changes_project_id_changed_at" ON "integration_changes" ("project_id", "changed_at");

CREATE TABLE "retention_policies" (
    "id" TEXT NOT NULL CONSTRAINT "pk_retention_policies" PRIMARY KEY,
    "project_id" TEXT NOT NULL,
    "event_class" TEXT NOT NULL,
    "days" INTEGER NOT NULL,
    "updated_by" TEXT NOT NULL,
    "updated_at" INTEGER NOT NULL
);

CREATE UNIQUE INDEX "ix_retention_policies_project_id_event_class" ON "retention_policies" ("project_id", "event_class");

-- One archive file of one project's events of one day (compressed JSONL) and what it holds. Deleting the events
-- from audit_events happens in the same transaction that records the manifest.
CREATE TABLE "audit_archives" (
    "id" TEXT NOT NULL CONSTRAINT "pk_audit_archives" PRIMARY KEY,
    "project_id" TEXT NOT NULL,
    "day" INTEGER NOT NULL,
    "file_name" TEXT NOT NULL,
    "event_count" INTEGER NOT NULL,
    "first_seq" INTEGER NOT NULL,
    "last_seq" INTEGER NOT NULL,
    "first_prev_hash" BLOB NOT NULL,
    "last_hash" BLOB NOT NULL,
    "sha256" TEXT NOT NULL,
    "byte_size" INTEGER NOT NULL,
    "created_at" INTEGER NOT NULL
);

CREATE INDEX "ix_audit_archives_project_id_day" ON "audit_archives" ("project_id", "day");
