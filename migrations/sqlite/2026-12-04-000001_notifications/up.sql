-- Mail notices about tokens, one row per token and kind, so that each is
-- sent once however many instances check: a sender claims a row
-- (claimed_at) before it sends and marks it sent after; a claim older than
-- an hour is taken again (its sender died). detail says how a token was
-- made, or from which IP a revoked token was reused.
CREATE TABLE notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    token_id INTEGER NOT NULL REFERENCES personal_access_tokens (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    detail TEXT,
    created_at TIMESTAMP NOT NULL,
    claimed_at TIMESTAMP,
    sent_at TIMESTAMP,
    outcome TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX notifications_token_kind ON notifications (token_id, kind);
CREATE INDEX notifications_due ON notifications (sent_at, next_attempt_at);

-- The day each daily check last ran (claimed by one instance).
CREATE TABLE job_runs (
    name TEXT PRIMARY KEY NOT NULL,
    last_day DATE NOT NULL
);
