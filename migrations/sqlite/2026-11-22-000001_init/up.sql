CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    username TEXT NOT NULL,
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    password_hash TEXT,
    is_admin BOOLEAN NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'blocked')),
    otp_secret TEXT,
    two_factor_enabled BOOLEAN NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));
CREATE UNIQUE INDEX users_email_lower ON users (lower(email));

CREATE TABLE personal_access_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT,
    scopes TEXT NOT NULL,
    token_digest TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at DATE,
    revoked BOOLEAN NOT NULL DEFAULT 0,
    last_used_at TIMESTAMP,
    last_used_ips TEXT NOT NULL DEFAULT '[]',
    ips_updated_at TIMESTAMP,
    impersonation BOOLEAN NOT NULL DEFAULT 0,
    previous_token_id INTEGER REFERENCES personal_access_tokens (id) ON DELETE SET NULL,
    expire_notification_delivered BOOLEAN NOT NULL DEFAULT 0,
    after_expiry_notification_delivered BOOLEAN NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX personal_access_tokens_digest ON personal_access_tokens (token_digest);
CREATE INDEX personal_access_tokens_user ON personal_access_tokens (user_id);
CREATE INDEX personal_access_tokens_previous ON personal_access_tokens (previous_token_id);

CREATE TABLE projects (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    path TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    owner_id INTEGER NOT NULL REFERENCES users (id),
    visibility TEXT NOT NULL CHECK (visibility IN ('private', 'internal', 'public')),
    default_branch TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_activity_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX projects_path_lower ON projects (lower(path));

CREATE TABLE project_members (
    project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    access_level INTEGER NOT NULL CHECK (access_level IN (10, 20, 30, 40, 50)),
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user ON project_members (user_id);

CREATE TABLE application_settings (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
