-- 0007 Governance: suggested queries, approvals, approval policies, query versions and lineage (consumers).
-- A suggestion keeps its datasource and target query ids without foreign keys: either may be deleted while it
-- is pending, and approving it then fails with a clear message instead of the row disappearing.
-- Timestamps are UTC ticks (INTEGER); GUIDs are TEXT; booleans are INTEGER 0/1.

CREATE TABLE "suggestions" (
    "id" TEXT NOT NULL,
    "project_id" TEXT NOT NULL,
    "datasource_id" TEXT NOT NULL,
    "query_id" TEXT NULL,
    "base_version" INTEGER NULL,
    "name" TEXT NOT NULL,
    "description" TEXT NOT NULL,
    "prompt" TEXT NOT NULL,
    "justification" TEXT NOT NULL,
    "sql" TEXT NOT NULL,
    "parameters_json" TEXT NOT NULL,
    "classifications_json" TEXT NOT NULL,
    "analysis_json" TEXT NOT NULL,
    "risk_flags" TEXT NOT NULL,
    "read_classifications" TEXT NOT NULL,
    "row_cap" INTEGER NOT NULL,
    "timeout_ms" INTEGER NOT NULL,
    "content_hash" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "submitted_by_type" TEXT NOT NULL,
    "submitted_by" TEXT NOT NULL,
    "submitted_by_name" TEXT NOT NULL,
    "submitter_user_id" TEXT NULL,
    "created_at" INTEGER NOT NULL,
    "updated_at" INTEGER NOT NULL,
    "expires_at" INTEGER NOT NULL,
    "decided_at" INTEGER NULL,
    "decided_by" TEXT NULL,
    "decision_reason" TEXT NULL,
    "result_query_id" TEXT NULL,
    "result_version" INTEGER NULL,
    "row_version" INTEGER NOT NULL,
    CONSTRAINT "pk_suggestions" PRIMARY KEY ("id"),
    CONSTRAINT "fk_suggestions_projects_project_id" FOREIGN KEY ("project_id") REFERENCES "projects" ("id") ON DELETE CASCADE
);

CREATE INDEX "ix_suggestions_project_id_status_created_at" ON "suggestions" ("project_id", "status", "created_at");
CREATE INDEX "ix_suggestions_project_id_submitted_by" ON "suggestions" ("project_id", "submitted_by");
-- One pending suggestion per exact SQL and parameters on a datasource: a resubmission answers 409.
CREATE UNIQUE INDEX "ux_suggestions_pending_content" ON "suggestions" ("project_id", "datasource_id", "content_hash") WHERE "status" = 'pending';

CREATE TABLE "suggestion_approvals" (
    "id" TEXT NOT NULL,
    "project_id" TEXT NOT NULL,
    "suggestion_id" TEXT NOT NULL,
    "reviewer_id" TEXT NOT NULL,
    "reviewer_role" TEXT NOT NULL,
    "content_hash" TEXT NOT NULL,
    "reason" TEXT NOT NULL,
    "created_at" INTEGER NOT NULL,
    CONSTRAINT "pk_suggestion_approvals" PRIMARY KEY ("id"),
    CONSTRAINT "fk_suggestion_approvals_suggestions_suggestion_id" FOREIGN KEY ("suggestion_id") REFERENCES "suggestions" ("id") ON DELETE CASCADE
);

CREATE INDEX "ix_suggestion_approvals_suggestion_id" ON "suggestion_approvals" ("suggestion_id");

CREATE TABLE "suggestion_events" (
    "id" TEXT NOT NULL,
    "project_id" TEXT NOT NULL,
    "suggestion_id" TEXT NOT NULL,
    "action" TEXT NOT NULL,
    "actor_type" TEXT NOT NULL,
    "actor_id" TEXT NULL,
    "actor_name" TEXT NULL,
    "reason" TEXT NULL,
    "content_hash" TEXT NULL,
    "created_at" INTEGER NOT NULL,
    CONSTRAINT "pk_suggestion_events" PRIMARY KEY ("id"),
    CONSTRAINT "fk_suggestion_events_suggestions_suggestion_id" FOREIGN KEY ("suggestion_id") REFERENCES "suggestions" ("id") ON DELETE CASCADE
);

CREATE INDEX "ix_suggestion_events_suggestion_id_created_at" ON "suggestion_events" ("suggestion_id", "created_at");

CREATE TABLE "governance_settings" (
    "project_id" TEXT NOT NULL,
    "pending_expiry_hours" INTEGER NOT NULL,
    "default_grant_roles_json" TEXT NOT NULL,
    "updated_by" TEXT NOT NULL,
    "updated_at" INTEGER NOT NULL,
    CONSTRAINT "pk_governance_settings" PRIMARY KEY ("project_id"),
    CONSTRAINT "fk_governance_settings_projects_project_id" FOREIGN KEY ("project_id") REFERENCES "projects" ("id") ON DELETE CASCADE
);

CREATE TABLE "approval_policies" (
    "id" TEXT NOT NULL,
    "project_id" TEXT NOT NULL,
    "classification" TEXT NOT NULL,
    "required_approvals" INTEGER NOT NULL,
    "reviewer_roles_json" TEXT NOT NULL,
    "distinct_roles" INTEGER NOT NULL,
    "updated_by" TEXT NOT NULL,
    "updated_at" INTEGER NOT NULL,
    CONSTRAINT "pk_approval_policies" PRIMARY KEY ("id"),
    CONSTRAINT "fk_approval_policies_projects_project_id" FOREIGN KEY ("project_id") REFERENCES "projects" ("id") ON DELETE CASCADE
);

CREATE UNIQUE INDEX "ix_approval_policies_project_id_classification" ON "approval_policies" ("project_id", "classification");

CREATE TABLE "query_versions" (
    "id" TEXT NOT NULL,
    "project_id" TEXT NOT NULL,
    "query_id" TEXT NOT NULL,
    "version" INTEGER NOT NULL,
    "datasource_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "description" TEXT NOT NULL,
    "sql" TEXT NOT NULL,
    "parameters_json" TEXT NOT NULL,
    "classifications_json" TEXT NOT NULL,
    "row_cap" INTEGER NOT NULL,
    "timeout_ms" INTEGER NOT NULL,
    "status" TEXT NOT NULL,
    "change" TEXT NOT NULL,
    "reason" TEXT NULL,
    "suggestion_id" TEXT NULL,
    "restored_from_version" INTEGER NULL,
    "created_by" TEXT NOT NULL,
    "created_at" INTEGER NOT NULL,
    CONSTRAINT "pk_query_versions" PRIMARY KEY ("id"),
    CONSTRAINT "fk_query_versions_projects_project_id" FOREIGN KEY ("project_id") REFERENCES "projects" ("id") ON DELETE CASCADE,
    CONSTRAINT "fk_query_versions_approved_queries_query_id" FOREIGN KEY ("query_id") REFERENCES "approved_queries" ("id") ON DELETE CASCADE
);

CREATE UNIQUE INDEX "ix_query_versions_query_id_version" ON "query_versions" ("query_id", "version");
CREATE INDEX "ix_query_versions_project_id" ON "query_versions" ("project_id");

CREATE TABLE "query_consumers" (
    "id" TEXT NOT NULL,
    "project_id" TEXT NOT NULL,
    "query_id" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "external_id" TEXT NULL,
    "owner" TEXT NULL,
    "created_by" TEXT NOT NULL,
    "created_at" INTEGER NOT NULL,
    CONSTRAINT "pk_query_consumers" PRIMARY KEY ("id"),
    CONSTRAINT "fk_query_consumers_projects_project_id" FOREIGN KEY ("project_id") REFERENCES "projects" ("id") ON DELETE CASCADE,
    CONSTRAINT "fk_query_consumers_approved_queries_query_id" FOREIGN KEY ("query_id") REFERENCES "approved_queries" ("id") ON DELETE CASCADE
);

CREATE INDEX "ix_query_consumers_query_id" ON "query_consumers" ("query_id");
CREATE INDEX "ix_query_consumers_project_id" ON "query_consumers" ("project_id");
