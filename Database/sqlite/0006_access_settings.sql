-- 0006 Access control: the per-project gateway settings (injection screening block|flag) and the record of every
-- change to query permissions, column masks and those settings (before/after JSON), written in the same transaction
-- as the change and then appended to the audit trail.
-- Timestamps are UTC ticks (INTEGER); GUIDs are TEXT.

CREATE TABLE "gateway_settings" (
    "project_id" TEXT NOT NULL CONSTRAINT "pk_gateway_settings" PRIMARY KEY,
    "injection_screening" TEXT NOT NULL,
    "updated_by" TEXT NOT NULL,
    "updated_at" INTEGER NOT NULL,
    CONSTRAINT "fk_gateway_settings_projects_project_id" FOREIGN KEY ("project_id") REFERENCES "projects" ("id") ON DELETE CASCADE
);

CREATE TABLE "access_changes" (
    "id" TEXT NOT NULL CONSTRAINT "pk_access_changes" PRIMARY KEY,
    "project_id" TEXT NOT NULL,
    "subject_type" TEXT NOT NULL,
    "subject_id" TEXT NOT NULL,
    "action" TEXT NOT NULL,
    "before" TEXT NULL,
    "after" TEXT NULL,
    "changed_by" TEXT NOT NULL,
    "changed_at" INTEGER NOT NULL
);

CREATE INDEX "ix_access_changes_project_id_changed_at" ON "access_changes" ("project_id", "changed_at");
