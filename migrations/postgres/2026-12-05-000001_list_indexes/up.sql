-- The API's lists filter, sort and page in SQL (LIMIT/OFFSET, a count up
-- to 10,000 rows): an index for each order a list is paged in, ending
-- with the id that breaks the ties. Names sort case-insensitively by
-- lower(), compared by code point (COLLATE "C", as SQLite compares), not
-- by the database's locale.
CREATE INDEX users_name_lower_c ON users ((lower(name) COLLATE "C"), id);
CREATE INDEX users_username_lower_c ON users ((lower(username) COLLATE "C"), id);
CREATE INDEX users_created_at ON users (created_at, id);

DROP INDEX personal_access_tokens_user;
CREATE INDEX personal_access_tokens_user ON personal_access_tokens (user_id, id);
CREATE INDEX personal_access_tokens_created_at ON personal_access_tokens (created_at, id);
-- A missing date sorts last ascending, first descending, on both backends.
CREATE INDEX personal_access_tokens_expires_at ON personal_access_tokens ((expires_at IS NULL), expires_at, id);
CREATE INDEX personal_access_tokens_last_used_at ON personal_access_tokens ((last_used_at IS NULL), last_used_at, id);
CREATE INDEX personal_access_tokens_name_lower_c ON personal_access_tokens ((lower(name) COLLATE "C"), id);

CREATE INDEX projects_owner ON projects (owner_id, id);
CREATE INDEX projects_created_at ON projects (created_at, id);
CREATE INDEX projects_last_activity_at ON projects (last_activity_at, id);
CREATE INDEX projects_name_lower_c ON projects ((lower(name) COLLATE "C"), id);
-- Also the namespace ranges (a path prefix) of the existence checks.
CREATE INDEX projects_path_lower_c ON projects ((lower(path) COLLATE "C"), id);
