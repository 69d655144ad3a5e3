-- The API's lists filter, sort and page in SQL (LIMIT/OFFSET, a count up
-- to 10,000 rows): an index for each order a list is paged in. On SQLite
-- every index ends with the rowid (the id), which breaks the ties. Names
-- sort case-insensitively, by lower(); the unique lower(username) and
-- lower(path) indexes serve those orders already.
CREATE INDEX users_name_lower ON users (lower(name));
CREATE INDEX users_created_at ON users (created_at);

CREATE INDEX personal_access_tokens_created_at ON personal_access_tokens (created_at);
-- A missing date sorts last ascending, first descending, on both backends.
CREATE INDEX personal_access_tokens_expires_at ON personal_access_tokens ((expires_at IS NULL), expires_at);
CREATE INDEX personal_access_tokens_last_used_at ON personal_access_tokens ((last_used_at IS NULL), last_used_at);
CREATE INDEX personal_access_tokens_name_lower ON personal_access_tokens (lower(name));
-- Token sorts break ties by id ascending in both directions: descending
-- needs an index of its own, or the planner sorts the whole table.
CREATE INDEX personal_access_tokens_created_at_desc ON personal_access_tokens (created_at DESC, id);
CREATE INDEX personal_access_tokens_expires_at_desc ON personal_access_tokens ((expires_at IS NULL) DESC, expires_at DESC, id);
CREATE INDEX personal_access_tokens_last_used_at_desc ON personal_access_tokens ((last_used_at IS NULL) DESC, last_used_at DESC, id);
CREATE INDEX personal_access_tokens_name_lower_desc ON personal_access_tokens (lower(name) DESC, id);

CREATE INDEX projects_owner ON projects (owner_id);
CREATE INDEX projects_created_at ON projects (created_at);
CREATE INDEX projects_last_activity_at ON projects (last_activity_at);
CREATE INDEX projects_name_lower ON projects (lower(name));
