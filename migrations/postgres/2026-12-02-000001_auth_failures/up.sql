-- Failed authentications, per client (an IP, or an IPv6 /64) and per
-- account, shared by every instance on the database: the Git ban and the
-- account lock. A row is forgotten once `expires_at` has passed.
CREATE TABLE auth_failures (
    key TEXT PRIMARY KEY NOT NULL,
    failures INTEGER NOT NULL,
    window_start TIMESTAMP NOT NULL,
    locked_until TIMESTAMP,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX auth_failures_expires_at ON auth_failures (expires_at);
