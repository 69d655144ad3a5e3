-- Restricted tokens (issue 18): the repository patterns and the push ref
-- patterns a token is limited to, one a line; NULL is no restriction.
ALTER TABLE personal_access_tokens ADD COLUMN repositories TEXT;
ALTER TABLE personal_access_tokens ADD COLUMN push_ref_patterns TEXT;
