-- 0005 The outbox and in-portal notifications, shared by governance, security and integrations.
-- An outbox message is written in the same transaction as the change that caused it (an alert, an approval, a
-- report being ready); the integrations dispatcher turns it into webhook deliveries and channel messages later.
-- Timestamps are UTC ticks (INTEGER); GUIDs are TEXT.

CREATE TABLE "outbox_messages" (
    "id" TEXT NOT NULL CONSTRAINT "pk_outbox_messages" PRIMARY KEY,
    "project_id" TEXT NOT NULL,
    "event_type" TEXT NOT NULL,
    "subject_type" TEXT NULL,
    "subject_id" TEXT NULL,
    "payload_json" TEXT NOT NULL,
    "created_at" INTEGER NOT NULL,
    "processed_at" INTEGER NULL
);

CREATE INDEX "ix_outbox_messages_processed_at_id" ON "outbox_messages" ("processed_at", "id");
CREATE INDEX "ix_outbox_messages_project_id_created_at" ON "outbox_messages" ("project_id", "created_at");

CREATE TABLE "notifications" (
    "id" TEXT NOT NULL CONSTRAINT "pk_notifications" PRIMARY KEY,
    "project_id" TEXT NOT NULL,
    "user_id" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "title" TEXT NOT NULL,
    "body" TEXT NULL,
    "link" TEXT NULL,
    "created_at" INTEGER NOT NULL,
    "read_at" INTEGER NULL,
    CONSTRAINT "fk_notifications_projects_project_id" FOREIGN KEY ("project_id") REFERENCES "projects" ("id") ON DELETE CASCADE,
    CONSTRAINT "fk_notifications_identity_users_user_id" FOREIGN KEY ("user_id") REFERENCES "identity_users" ("id") ON DELETE CASCADE
);

CREATE INDEX "ix_notifications_user_id_read_at_created_at" ON "notifications" ("user_id", "read_at", "created_at");
CREATE INDEX "ix_notifications_project_id" ON "notifications" ("project_id");
