DROP TABLE application_settings;
DROP TABLE project_members;
DROP TABLE projects;
DROP TABLE personal_access_tokens;
DROP TABLE users;
