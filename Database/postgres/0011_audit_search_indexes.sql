-- 0011 audit search at scale: indexes for the Audit Log page's filters that select few events (a session, one person's
-- e-mail, warnings and alerts), so their first page and a deep "Load more" page read only matching index entries
-- instead of walking millions of rows newest-first. Levels are indexed only when not normal: "normal" is nearly every
-- event, which the (project_id, occurred_at) index already serves, and keeping it out keeps the index small and the
-- audit writer fast.
CREATE INDEX ix_audit_events_project_id_session_id_occurred_at ON audit_events (project_id, session_id, occurred_at);
CREATE INDEX ix_audit_events_project_id_actor_email_occurred_at ON audit_events (project_id, actor_email, occurred_at);
CREATE INDEX ix_audit_events_project_id_security_level_occurred_at ON audit_events (project_id, security_level, occurred_at) WHERE security_level <> 'normal';
