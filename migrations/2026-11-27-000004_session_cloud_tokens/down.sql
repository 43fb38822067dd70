ALTER TABLE sessions DROP COLUMN cloud_expires_at;
ALTER TABLE sessions DROP COLUMN cloud_role;
ALTER TABLE sessions DROP COLUMN cloud_token;
