-- Browser sessions: the digest of the cookie's random id (never the id
-- itself), whose they are, from where, and until when. A session waiting
-- for its second factor is marked pending and can do nothing else. The
-- flash holds a new token for the one page that shows it, encrypted under
-- a key only the cookie gives.
CREATE TABLE sessions (
    id BIGSERIAL PRIMARY KEY,
    digest TEXT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    ip TEXT,
    user_agent TEXT,
    two_factor_pending BOOLEAN NOT NULL DEFAULT FALSE,
    flash TEXT
);
CREATE UNIQUE INDEX sessions_digest ON sessions (digest);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- The last TOTP time step a user's code was accepted for: a code is good
-- once (replay refused).
ALTER TABLE users ADD COLUMN otp_last_step BIGINT;

-- Two-factor recovery codes: digests only, each usable once.
CREATE TABLE recovery_codes (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    digest TEXT NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX recovery_codes_user_id ON recovery_codes (user_id);
