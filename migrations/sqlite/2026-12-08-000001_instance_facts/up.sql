-- Facts about the instance itself, a row each: the fingerprint of the
-- secret key the database was set up with (a MAC of a constant under the
-- key, which tells nothing of the key), so that an instance started with
-- another key, or none, refuses to start instead of failing every token.
CREATE TABLE instance_facts (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
