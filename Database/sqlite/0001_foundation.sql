-- 0001 foundation: organizations, projects, members, identity, suite installation, job runs.
-- Timestamps are UTC ticks (INTEGER) so SQLite can compare and order them; GUIDs are TEXT.

CREATE TABLE "job_runs" (
    "id" TEXT NOT NULL CONSTRAINT "pk_job_runs" PRIMARY KEY,
    "job_name" TEXT NOT NULL,
    "job_group" TEXT NOT NULL,
    "trigger_name" TEXT NULL,
    "fire_instance_id" TEXT NOT NULL,
    "scheduled_for" INTEGER NULL,
    "started_at" INTEGER NOT NULL,
    "finished_at" INTEGER NULL,
    "outcome" TEXT NOT NULL,
    "message" TEXT NULL,
    "instance_name" TEXT NOT NULL
);


CREATE TABLE "membership_changes" (
    "id" TEXT NOT NULL CONSTRAINT "pk_membership_changes" PRIMARY KEY,
    "project_id" TEXT NOT NULL,
    "user_id" TEXT NOT NULL,
    "user_email" TEXT NULL,
    "old_role" TEXT NULL,
    "new_role" TEXT NULL,
    "changed_by" TEXT NULL,
    "changed_by_email" TEXT NULL,
    "changed_at" INTEGER NOT NULL
);


CREATE TABLE "organizations" (
    "id" TEXT NOT NULL CONSTRAINT "pk_organizations" PRIMARY KEY,
    "name" TEXT NOT NULL,
    "created_at" INTEGER NOT NULL
);


CREATE TABLE "setup_tokens" (
    "id" TEXT NOT NULL CONSTRAINT "pk_setup_tokens" PRIMARY KEY,
    "token_hash" TEXT NOT NULL,
    "created_at" INTEGER NOT NULL,
    "expires_at" INTEGER NOT NULL,
    "used_at" INTEGER NULL
);


CREATE TABLE "suite_changes" (
    "id" TEXT NOT NULL CONSTRAINT "pk_suite_changes" PRIMARY KEY,
    "project_id" TEXT NOT NULL,
    "action" TEXT NOT NULL,
    "module" TEXT NULL,
    "before" TEXT NULL,
    "after" TEXT NULL,
    "changed_by" TEXT NULL,
    "changed_at" INTEGER NOT NULL
);


CREATE TABLE "identity_users" (
    "id" TEXT NOT NULL CONSTRAINT "pk_identity_users" PRIMARY KEY,
    "organization_id" TEXT NULL,
    "display_name" TEXT NULL,
    "is_organization_admin" INTEGER NOT NULL,
    "created_at" INTEGER NOT NULL,
    "user_name" TEXT NULL,
    "normalized_user_name" TEXT NULL,
    "email" TEXT NULL,
    "normalized_email" TEXT NULL,
    "email_confirmed" INTEGER NOT NULL,
    "password_hash" TEXT NULL,
    "security_stamp" TEXT NULL,
    "concurrency_stamp" TEXT NULL,
    "phone_number" TEXT NULL,
    "phone_number_confirmed" INTEGER NOT NULL,
    "two_factor_enabled" INTEGER NOT NULL,
    "lockout_end" INTEGER NULL,
    "lockout_enabled" INTEGER NOT NULL,
    "access_failed_count" INTEGER NOT NULL,
    CONSTRAINT "fk_identity_users_organizations_organization_id" FOREIGN KEY ("organization_id") REFERENCES "organizations" ("id") ON DELETE RESTRICT
);


CREATE TABLE "projects" (
    "id" TEXT NOT NULL CONSTRAINT "pk_projects" PRIMARY KEY,
    "organization_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "description" TEXT NULL,
    "is_demo" INTEGER NOT NULL,
    "created_at" INTEGER NOT NULL,
    "created_by" TEXT NULL,
    CONSTRAINT "fk_projects_organizations_organization_id" FOREIGN KEY ("organization_id") REFERENCES "organizations" ("id") ON DELETE RESTRICT
);


CREATE TABLE "identity_user_claims" (
    "id" INTEGER NOT NULL CONSTRAINT "pk_identity_user_claims" PRIMARY KEY AUTOINCREMENT,
    "user_id" TEXT NOT NULL,
    "claim_type" TEXT NULL,
    "claim_value" TEXT NULL,
    CONSTRAINT "fk_identity_user_claims_identity_users_user_id" FOREIGN KEY ("user_id") REFERENCES "identity_users" ("id") ON DELETE CASCADE
);


CREATE TABLE "identity_user_logins" (
    "login_provider" TEXT NOT NULL,
    "provider_key" TEXT NOT NULL,
    "provider_display_name" TEXT NULL,
    "user_id" TEXT NOT NULL,
    CONSTRAINT "pk_identity_user_logins" PRIMARY KEY ("login_provider", "provider_key"),
    CONSTRAINT "fk_identity_user_logins_identity_users_user_id" FOREIGN KEY ("user_id") REFERENCES "identity_users" ("id") ON DELETE CASCADE
);


CREATE TABLE "identity_user_tokens" (
    "user_id" TEXT NOT NULL,
    "login_provider" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "value" TEXT NULL,
    CONSTRAINT "pk_identity_user_tokens" PRIMARY KEY ("user_id", "login_provider", "name"),
    CONSTRAINT "fk_identity_user_tokens_identity_users_user_id" FOREIGN KEY ("user_id") REFERENCES "identity_users" ("id") ON DELETE CASCADE
);


CREATE TABLE "installed_applications" (
    "id" TEXT NOT NULL CONSTRAINT "pk_installed_applications" PRIMARY KEY,
    "project_id" TEXT NOT NULL,
    "app_id" TEXT NOT NULL,
    "version" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "tier" TEXT NOT NULL,
    "enabled_modules" TEXT NOT NULL,
    "subscription_reference" TEXT NULL,
    "installed_by" TEXT NULL,
    "installed_at" INTEGER NOT NULL,
    "updated_at" INTEGER NOT NULL,
    CONSTRAINT "fk_installed_applications_projects_project_id" FOREIGN KEY ("project_id") REFERENCES "projects" ("id") ON DELETE CASCADE
);


CREATE TABLE "module_settings" (
    "id" TEXT NOT NULL CONSTRAINT "pk_module_settings" PRIMARY KEY,
    "project_id" TEXT NOT NULL,
    "module" TEXT NOT NULL,
    "settings_json" TEXT NOT NULL,
    "updated_at" INTEGER NOT NULL,
    "updated_by" TEXT NULL,
    CONSTRAINT "fk_module_settings_projects_project_id" FOREIGN KEY ("project_id") REFERENCES "projects" ("id") ON DELETE CASCADE
);


CREATE TABLE "project_members" (
    "id" TEXT NOT NULL CONSTRAINT "pk_project_members" PRIMARY KEY,
    "project_id" TEXT NOT NULL,
    "user_id" TEXT NOT NULL,
    "role" TEXT NOT NULL,
    "suspended" INTEGER NOT NULL,
    "added_at" INTEGER NOT NULL,
    "added_by" TEXT NULL,
    CONSTRAINT "fk_project_members_identity_users_user_id" FOREIGN KEY ("user_id") REFERENCES "identity_users" ("id") ON DELETE CASCADE,
    CONSTRAINT "fk_project_members_projects_project_id" FOREIGN KEY ("project_id") REFERENCES "projects" ("id") ON DELETE CASCADE
);


CREATE INDEX "ix_identity_user_claims_user_id" ON "identity_user_claims" ("user_id");


CREATE INDEX "ix_identity_user_logins_user_id" ON "identity_user_logins" ("user_id");


CREATE INDEX "email_index" ON "identity_users" ("normalized_email");


CREATE INDEX "ix_identity_users_organization_id" ON "identity_users" ("organization_id");


CREATE UNIQUE INDEX "user_name_index" ON "identity_users" ("normalized_user_name");


CREATE UNIQUE INDEX "ix_installed_applications_project_id_app_id" ON "installed_applications" ("project_id", "app_id");


CREATE INDEX "ix_job_runs_job_group_job_name_started_at" ON "job_runs" ("job_group", "job_name", "started_at");


CREATE INDEX "ix_membership_changes_project_id_changed_at" ON "membership_changes" ("project_id", "changed_at");


CREATE UNIQUE INDEX "ix_module_settings_project_id_module" ON "module_settings" ("project_id", "module");


CREATE UNIQUE INDEX "ix_project_members_project_id_user_id" ON "project_members" ("project_id", "user_id");


CREATE INDEX "ix_project_members_user_id" ON "project_members" ("user_id");


CREATE UNIQUE INDEX "ix_projects_organization_id_name" ON "projects" ("organization_id", "name");


CREATE INDEX "ix_suite_changes_project_id_changed_at" ON "suite_changes" ("project_id", "changed_at");


