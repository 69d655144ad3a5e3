DROP TABLE recovery_codes;
DROP TABLE sessions;
ALTER TABLE users DROP COLUMN otp_last_step;
