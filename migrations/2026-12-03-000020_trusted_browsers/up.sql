-- Browsers a user trusts to skip the second factor at sign-in (the password is still asked): a long-lived
-- random cookie whose hash is kept here, with the user, until it expires or is forgotten. Portable SQL.
CREATE TABLE trusted_browsers (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    last_used_at BIGINT,
    user_agent TEXT NOT NULL,
    ip TEXT NOT NULL
);
CREATE INDEX trusted_browsers_user ON trusted_browsers (user_id, expires_at);
CREATE INDEX trusted_browsers_expires_at ON trusted_browsers (expires_at);
