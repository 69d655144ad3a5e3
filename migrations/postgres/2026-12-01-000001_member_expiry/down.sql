ALTER TABLE project_members DROP COLUMN expires_at;
