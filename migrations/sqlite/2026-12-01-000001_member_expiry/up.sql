-- A membership may end: GitLab's members expires_at (a date, UTC).
ALTER TABLE project_members ADD COLUMN expires_at DATE;
