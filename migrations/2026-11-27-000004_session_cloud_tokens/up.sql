-- The gateway JWT of a session, kept on the server only: sealed with the server key
-- (ChaCha20-Poly1305, bound to the session's public id), with the role it was issued for and when it expires.
ALTER TABLE sessions ADD COLUMN cloud_token TEXT;
ALTER TABLE sessions ADD COLUMN cloud_role TEXT;
ALTER TABLE sessions ADD COLUMN cloud_expires_at BIGINT;
