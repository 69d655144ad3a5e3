ALTER TABLE personal_access_tokens DROP COLUMN push_ref_patterns;
ALTER TABLE personal_access_tokens DROP COLUMN repositories;
