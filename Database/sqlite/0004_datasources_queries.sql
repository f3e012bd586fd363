-- 0004 Datasources, approved queries, query permissions and column masks.
-- Datasource passwords are stored only as SecretProtector ciphertext ("enc:<key id>:<base64>").
-- Timestamps are UTC ticks (INTEGER); GUIDs are TEXT; booleans are INTEGER 0/1.

CREATE TABLE "datasources" (
    "id" TEXT NOT NULL CONSTRAINT "pk_datasources" PRIMARY KEY,
    "project_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "engine" TEXT NOT NULL,
    "sqlite_path" TEXT NULL,
    "host" TEXT NULL,
    "port" INTEGER NULL,
    "database_name" TEXT NULL,
    "username" TEXT NULL,
    "password_protected" TEXT NULL,
    "created_by" TEXT NOT NULL,
    "created_at" INTEGER NOT NULL,
    "updated_by" TEXT NOT NULL,
    "updated_at" INTEGER NOT NULL,
    CONSTRAINT "fk_datasources_projects_project_id" FOREIGN KEY ("project_id") REFERENCES "projects" ("id") ON DELETE CASCADE
);

CREATE UNIQUE INDEX "ix_datasources_project_id_name" ON "datasources" ("project_id", "name");

CREATE TABLE "approved_queries" (
    "id" TEXT NOT NULL CONSTRAINT "pk_approved_queries" PRIMARY KEY,
    "project_id" TEXT NOT NULL,
    "datasource_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "description" TEXT NOT NULL,
    "sql" TEXT NOT NULL,
    "parameters_json" TEXT NOT NULL,
    "classifications_json" TEXT NOT NULL,
    "row_cap" INTEGER NOT NULL,
    "timeout_ms" INTEGER NOT NULL,
    "version" INTEGER NOT NULL,
    "status" TEXT NOT NULL,
    "created_by" TEXT NOT NULL,
    "created_at" INTEGER NOT NULL,
    "updated_by" TEXT NOT NULL,
    "updated_at" INTEGER NOT NULL,
    CONSTRAINT "fk_approved_queries_projects_project_id" FOREIGN KEY ("project_id") REFERENCES "projects" ("id") ON DELETE CASCADE,
    CONSTRAINT "fk_approved_queries_datasources_datasource_id" FOREIGN KEY ("datasource_id") REFERENCES "datasources" ("id") ON DELETE RESTRICT
);

CREATE UNIQUE INDEX "ix_approved_queries_project_id_name" ON "approved_queries" ("project_id", "name");

CREATE INDEX "ix_approved_queries_datasource_id" ON "approved_queries" ("datasource_id");

CREATE TABLE "query_permissions" (
    "id" TEXT NOT NULL CONSTRAINT "pk_query_permissions" PRIMARY KEY,
    "project_id" TEXT NOT NULL,
    "query_id" TEXT NOT NULL,
    "principal_type" TEXT NOT NULL,
    "principal" TEXT NULL,
    "can_view" INTEGER NOT NULL,
    "can_execute" INTEGER NOT NULL,
    "can_edit" INTEGER NOT NULL,
    "updated_by" TEXT NOT NULL,
    "updated_at" INTEGER NOT NULL,
    CONSTRAINT "fk_query_permissions_projects_project_id" FOREIGN KEY ("project_id") REFERENCES "projects" ("id") ON DELETE CASCADE,
    CONSTRAINT "fk_query_permissions_approved_queries_query_id" FOREIGN KEY ("query_id") REFERENCES "approved_queries" ("id") ON DELETE CASCADE
);

CREATE INDEX "ix_query_permissions_project_id_query_id" ON "query_permissions" ("project_id", "query_id");

-- One grant per principal and query; COALESCE because an "all" grant has no principal and NULLs never collide.
CREATE UNIQUE INDEX "ux_query_permissions_principal" ON "query_permissions" ("query_id", "principal_type", COALESCE("principal", ''));

CREATE TABLE "column_masks" (
    "id" TEXT NOT NULL CONSTRAINT "pk_column_masks" PRIMARY KEY,
    "project_id" TEXT NOT NULL,
    "datasource_id" TEXT NOT NULL,
    "table_name" TEXT NOT NULL,
    "column_name" TEXT NOT NULL,
    "mask_type" TEXT NOT NULL,
    "show_first" INTEGER NOT NULL,
    "show_last" INTEGER NOT NULL,
    "visible_to_roles_json" TEXT NOT NULL,
    "classification" TEXT NULL,
    "created_by" TEXT NOT NULL,
    "created_at" INTEGER NOT NULL,
    "updated_by" TEXT NOT NULL,
    "updated_at" INTEGER NOT NULL,
    CONSTRAINT "fk_column_masks_projects_project_id" FOREIGN KEY ("project_id") REFERENCES "projects" ("id") ON DELETE CASCADE,
    CONSTRAINT "fk_column_masks_datasources_datasource_id" FOREIGN KEY ("datasource_id") REFERENCES "datasources" ("id") ON DELETE CASCADE
);

CREATE UNIQUE INDEX "ix_column_masks_datasource_id_table_name_column_name" ON "column_masks" ("datasource_id", "table_name", "column_name");

CREATE INDEX "ix_column_masks_project_id" ON "column_masks" ("project_id");
