-- Email addresses on users, one-time account links (invitations, password resets), and the mail
-- outbox. Portable SQL, like every migration here.

-- Optional; stored lowercased, so the unique index makes addresses unique case-insensitively.
ALTER TABLE users ADD COLUMN email TEXT;
CREATE UNIQUE INDEX users_email_key ON users (email);

-- A link's token is random and high-entropy, so a plain SHA-256 of it is enough at rest; taking a
-- row (DELETE … RETURNING) spends it. Deleted with its user.
CREATE TABLE account_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    purpose TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX account_tokens_user ON account_tokens (user_id, purpose);

-- Mail waiting to be sent, sent, or given up on. Written in the transaction of what causes it; the
-- sender of any instance claims a due row (locked_until, a lease) and records the outcome. `payload`
-- is what the mail is composed from (a link's token sealed), emptied once sent.
CREATE TABLE mail_outbox (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    user_id TEXT,
    recipient TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'waiting',
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    locked_until BIGINT NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at BIGINT
);
CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt_at);
CREATE INDEX mail_outbox_user ON mail_outbox (user_id, kind, created_at);
