-- Two-step sign-in: after a right password, for a user with a second factor, the
-- sign-in waits here (not in `sessions`) until the second factor succeeds. The browser holds a
-- random id in a cookie; only its hash is stored. Single use, for 5 minutes. Portable SQL.
CREATE TABLE pending_sign_ins (
    id_hash       TEXT   PRIMARY KEY NOT NULL,
    user_id       TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The stored password hash the password was verified against: a password reset in between
    -- makes the pending sign-in worthless.
    password_hash TEXT   NOT NULL,
    next          TEXT,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX pending_sign_ins_expires_at ON pending_sign_ins (expires_at);
