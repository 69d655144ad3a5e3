-- The audit log: one row per change (token, user, 2FA, password,
-- settings), sign-in, Sudo use and ban, written in the transaction of the
-- change it records. No foreign keys: an event outlives what it names.
-- details is a JSON object of the event's own fields; never a secret.
CREATE TABLE audit_events (
    id BIGSERIAL PRIMARY KEY,
    author_id BIGINT,
    author_name TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id BIGINT NOT NULL,
    entity_path TEXT,
    event_name TEXT NOT NULL,
    target_type TEXT,
    target_id BIGINT,
    target_details TEXT,
    ip_address TEXT,
    details TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX audit_events_created_at ON audit_events (created_at, id);
CREATE INDEX audit_events_entity ON audit_events (entity_type, entity_id, id);
