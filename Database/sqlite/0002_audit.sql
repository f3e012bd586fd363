-- 0002 audit trail: tamper-evident events (a SHA-256 hash chain per project) and the per-project chain head.
-- Timestamps are UTC ticks (INTEGER); GUIDs are TEXT; hashes are 32-byte BLOBs.
-- JSON fields (details, before/after state, tables, classifications) are TEXT kept byte-for-byte as written,
-- because the hash covers their exact text.

CREATE TABLE "audit_events" (
    "project_id" TEXT NOT NULL,
    "seq" INTEGER NOT NULL,
    "id" TEXT NOT NULL,
    "prev_hash" BLOB NOT NULL,
    "hash" BLOB NOT NULL,
    "occurred_at" INTEGER NOT NULL,
    "event_type" TEXT NOT NULL,
    "resource_type" TEXT NULL,
    "resource_id" TEXT NULL,
    "action" TEXT NULL,
    "actor_type" TEXT NOT NULL,
    "actor_id" TEXT NULL,
    "actor_email" TEXT NULL,
    "actor_role" TEXT NULL,
    "session_id" TEXT NULL,
    "details" TEXT NULL,
    "before_state" TEXT NULL,
    "after_state" TEXT NULL,
    "prompt" TEXT NULL,
    "sql_text" TEXT NULL,
    "tables_accessed" TEXT NULL,
    "success" INTEGER NOT NULL,
    "error_message" TEXT NULL,
    "duration_ms" INTEGER NULL,
    "rows_returned" INTEGER NULL,
    "security_level" TEXT NOT NULL,
    "data_classifications" TEXT NULL,
    "client_ip" TEXT NULL,
    "user_agent" TEXT NULL,
    "request_id" TEXT NULL,
    CONSTRAINT "pk_audit_events" PRIMARY KEY ("project_id", "seq")
);

CREATE INDEX "ix_audit_events_project_id_occurred_at" ON "audit_events" ("project_id", "occurred_at");
CREATE INDEX "ix_audit_events_project_id_event_type_occurred_at" ON "audit_events" ("project_id", "event_type", "occurred_at");
CREATE INDEX "ix_audit_events_project_id_actor_id_occurred_at" ON "audit_events" ("project_id", "actor_id", "occurred_at");

-- The last link of each project's chain. The writer advances it in the same transaction as the events, only if it
-- still holds the seq the writer expected, so two writers (portal and job worker) can never fork a chain, and the
-- verifier can tell a deleted tail from a short chain.
CREATE TABLE "audit_chain_heads" (
    "project_id" TEXT NOT NULL CONSTRAINT "pk_audit_chain_heads" PRIMARY KEY,
    "seq" INTEGER NOT NULL,
    "hash" BLOB NOT NULL,
    "updated_at" INTEGER NOT NULL
);
