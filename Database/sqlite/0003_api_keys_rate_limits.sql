-- 0003 API keys and rate limits for the gateway.
-- Keys are stored as a SHA-256 hash plus an 8-character lookup prefix; the secret itself is never stored.
-- Timestamps are UTC ticks (INTEGER); GUIDs are TEXT.

CREATE TABLE "api_keys" (
    "id" TEXT NOT NULL CONSTRAINT "pk_api_keys" PRIMARY KEY,
    "project_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "role" TEXT NOT NULL,
    "scopes_json" TEXT NOT NULL,
    "prefix" TEXT NOT NULL,
    "secret_hash" TEXT NOT NULL,
    "expires_at" INTEGER NOT NULL,
    "created_by" TEXT NOT NULL,
    "created_at" INTEGER NOT NULL,
    "last_used_at" INTEGER NULL,
    "last_used_ip" TEXT NULL,
    "revoked_at" INTEGER NULL,
    "revoked_by" TEXT NULL,
    "revoke_reason" TEXT NULL,
    "replaced_by_key_id" TEXT NULL,
    "superseded_until" INTEGER NULL,
    CONSTRAINT "fk_api_keys_projects_project_id" FOREIGN KEY ("project_id") REFERENCES "projects" ("id") ON DELETE CASCADE
);

-- Unique across projects: authentication finds the key by prefix before it knows the project.
CREATE UNIQUE INDEX "ix_api_keys_prefix" ON "api_keys" ("prefix");

CREATE INDEX "ix_api_keys_project_id_created_at" ON "api_keys" ("project_id", "created_at");

CREATE TABLE "api_key_changes" (
    "id" TEXT NOT NULL CONSTRAINT "pk_api_key_changes" PRIMARY KEY,
    "project_id" TEXT NOT NULL,
    "key_id" TEXT NOT NULL,
    "action" TEXT NOT NULL,
    "key_name" TEXT NOT NULL,
    "key_prefix" TEXT NOT NULL,
    "role" TEXT NOT NULL,
    "scopes_json" TEXT NOT NULL,
    "expires_at" INTEGER NOT NULL,
    "replaced_by_key_id" TEXT NULL,
    "superseded_until" INTEGER NULL,
    "reason" TEXT NULL,
    "changed_by" TEXT NOT NULL,
    "changed_at" INTEGER NOT NULL
);

CREATE INDEX "ix_api_key_changes_project_id_changed_at" ON "api_key_changes" ("project_id", "changed_at");

CREATE TABLE "rate_limits" (
    "id" TEXT NOT NULL CONSTRAINT "pk_rate_limits" PRIMARY KEY,
    "project_id" TEXT NOT NULL,
    "scope" TEXT NOT NULL,
    "subject" TEXT NULL,
    "max_requests" INTEGER NULL,
    "max_rows" INTEGER NULL,
    "window_seconds" INTEGER NOT NULL,
    "enabled" INTEGER NOT NULL,
    "created_by" TEXT NOT NULL,
    "created_at" INTEGER NOT NULL,
    "updated_by" TEXT NOT NULL,
    "updated_at" INTEGER NOT NULL,
    CONSTRAINT "fk_rate_limits_projects_project_id" FOREIGN KEY ("project_id") REFERENCES "projects" ("id") ON DELETE CASCADE
);

CREATE INDEX "ix_rate_limits_project_id" ON "rate_limits" ("project_id");

CREATE TABLE "rate_limit_changes" (
    "id" TEXT NOT NULL CONSTRAINT "pk_rate_limit_changes" PRIMARY KEY,
    "project_id" TEXT NOT NULL,
    "rate_limit_id" TEXT NOT NULL,
    "action" TEXT NOT NULL,
    "before" TEXT NULL,
    "after" TEXT NULL,
    "changed_by" TEXT NOT NULL,
    "changed_at" INTEGER NOT NULL
);

CREATE INDEX "ix_rate_limit_changes_project_id_changed_at" ON "rate_limit_changes" ("project_id", "changed_at");
