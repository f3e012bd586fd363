-- 0009 Compliance reports: each generated report (its parameters, progress, SHA-256 and who generated it), the signed
-- PDF bytes, the monthly/quarterly schedules, and the portal's report-signing certificate.
-- The PDF is kept in the database, not the data directory: clustered job workers share only the database with the
-- portal, and a report's PDF is bounded (its tables are aggregated and capped), so backups carry reports with the trail.
-- Timestamps are UTC ticks (INTEGER); GUIDs are TEXT.

CREATE TABLE "compliance_reports" (
    "id" TEXT NOT NULL CONSTRAINT "pk_compliance_reports" PRIMARY KEY,
    "project_id" TEXT NOT NULL,
    "report_type" TEXT NOT NULL,
    "title" TEXT NOT NULL,
    "period_start" INTEGER NOT NULL,
    "period_end" INTEGER NOT NULL,
    "parameters_json" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "progress" INTEGER NOT NULL,
    "progress_message" TEXT NULL,
    "requested_by" TEXT NULL,
    "requested_by_email" TEXT NULL,
    "schedule_id" TEXT NULL,
    "generator" TEXT NOT NULL,
    "requested_at" INTEGER NOT NULL,
    "started_at" INTEGER NULL,
    "completed_at" INTEGER NULL,
    "claimed_by" TEXT NULL,
    "max_seq" INTEGER NOT NULL,
    "event_count" INTEGER NOT NULL,
    "data_sha256" TEXT NULL,
    "pdf_sha256" TEXT NULL,
    "pdf_size" INTEGER NULL,
    "signer_thumbprint" TEXT NULL,
    "chain_ok" INTEGER NULL,
    "error" TEXT NULL,
    CONSTRAINT "fk_compliance_reports_projects_project_id" FOREIGN KEY ("project_id") REFERENCES "projects" ("id") ON DELETE CASCADE
);

CREATE INDEX "ix_compliance_reports_project_id_requested_at" ON "compliance_reports" ("project_id", "requested_at");
CREATE INDEX "ix_compliance_reports_status_requested_at" ON "compliance_reports" ("status", "requested_at");

CREATE TABLE "compliance_report_files" (
    "report_id" TEXT NOT NULL CONSTRAINT "pk_compliance_report_files" PRIMARY KEY,
    "project_id" TEXT NOT NULL,
    "pdf" BLOB NOT NULL,
    CONSTRAINT "fk_compliance_report_files_compliance_reports_report_id" FOREIGN KEY ("report_id") REFERENCES "compliance_reports" ("id") ON DELETE CASCADE
);

CREATE TABLE "compliance_report_schedules" (
    "id" TEXT NOT NULL CONSTRAINT "pk_compliance_report_schedules" PRIMARY KEY,
    "project_id" TEXT NOT NULL,
    "report_type" TEXT NOT NULL,
    "frequency" TEXT NOT NULL,
    "enabled" INTEGER NOT NULL,
    "created_by" TEXT NOT NULL,
    "created_at" INTEGER NOT NULL,
    "next_run_at" INTEGER NOT NULL,
    "last_run_at" INTEGER NULL,
    "last_report_id" TEXT NULL,
    CONSTRAINT "fk_compliance_report_schedules_projects_project_id" FOREIGN KEY ("project_id") REFERENCES "projects" ("id") ON DELETE CASCADE
);

CREATE INDEX "ix_compliance_report_schedules_project_id" ON "compliance_report_schedules" ("project_id");
CREATE INDEX "ix_compliance_report_schedules_enabled_next_run_at" ON "compliance_report_schedules" ("enabled", "next_run_at");

-- The portal's report-signing certificate (organization-wide, not a tenant row). The PKCS#12 bytes are encrypted with
-- the portal's secret keys (SecretProtector); only one row is active at a time.
CREATE TABLE "report_signing_certificates" (
    "id" TEXT NOT NULL CONSTRAINT "pk_report_signing_certificates" PRIMARY KEY,
    "subject" TEXT NOT NULL,
    "thumbprint" TEXT NOT NULL,
    "not_before" INTEGER NOT NULL,
    "not_after" INTEGER NOT NULL,
    "pfx_protected" TEXT NOT NULL,
    "created_at" INTEGER NOT NULL
);

CREATE UNIQUE INDEX "ix_report_signing_certificates_thumbprint" ON "report_signing_certificates" ("thumbprint");
