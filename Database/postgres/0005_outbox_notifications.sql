-- 0005 The outbox and in-portal notifications, shared by governance, security and integrations.
-- An outbox message is written in the same transaction as the change that caused it (an alert, an approval, a
-- report being ready); the integrations dispatcher turns it into webhook deliveries and channel messages later.

CREATE TABLE outbox_messages (
    id uuid NOT NULL,
    project_id uuid NOT NULL,
    event_type character varying(64) NOT NULL,
    subject_type character varying(64),
    subject_id character varying(200),
    payload_json text NOT NULL,
    created_at timestamp with time zone NOT NULL,
    processed_at timestamp with time zone,
    CONSTRAINT pk_outbox_messages PRIMARY KEY (id)
);

CREATE INDEX ix_outbox_messages_processed_at_id ON outbox_messages (processed_at, id);
CREATE INDEX ix_outbox_messages_project_id_created_at ON outbox_messages (project_id, created_at);

CREATE TABLE notifications (
    id uuid NOT NULL,
    project_id uuid NOT NULL,
    user_id uuid NOT NULL,
    kind character varying(64) NOT NULL,
    title character varying(300) NOT NULL,
    body character varying(2000),
    link character varying(500),
    created_at timestamp with time zone NOT NULL,
    read_at timestamp with time zone,
    CONSTRAINT pk_notifications PRIMARY KEY (id),
    CONSTRAINT fk_notifications_projects_project_id FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE,
    CONSTRAINT fk_notifications_identity_users_user_id FOREIGN KEY (user_id) REFERENCES identity_users (id) ON DELETE CASCADE
);

CREATE INDEX ix_notifications_user_id_read_at_created_at ON notifications (user_id, read_at, created_at);
CREATE INDEX ix_notifications_project_id ON notifications (project_id);
