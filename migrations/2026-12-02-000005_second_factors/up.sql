-- Second factors. Portable SQL, like every migration here.

-- The authenticator app (TOTP, RFC 6238): its secret sealed with the server key (like the cloud
-- token), NULL when the app is off; and the last time step a code was accepted for, so that each
-- code is accepted once, by every instance on this database (a conditional UPDATE moves it forward).
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;

-- How the session signed in ('password', 'totp', 'recovery_code', 'passkey'), and when it last
-- authenticated (sign-in, /reauth) or performed a sensitive action: the re-authentication window
-- runs from there.
ALTER TABLE sessions ADD COLUMN auth_method TEXT NOT NULL DEFAULT 'password';
ALTER TABLE sessions ADD COLUMN authenticated_at BIGINT NOT NULL DEFAULT 0;

-- Recovery codes: single use, stored as hashes only.
CREATE TABLE recovery_codes (
    id         TEXT   PRIMARY KEY NOT NULL,
    user_id    TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX recovery_codes_user_id ON recovery_codes (user_id);

-- Passkeys (WebAuthn credentials), several per user, each named.
CREATE TABLE passkeys (
    id            TEXT   PRIMARY KEY NOT NULL,     -- public id, shown on pages
    user_id       TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id TEXT   NOT NULL UNIQUE,          -- base64url of the authenticator's credential id
    name          TEXT   NOT NULL,
    credential    TEXT   NOT NULL,                 -- the stored credential (JSON), public key and counter
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT
);
CREATE INDEX passkeys_user_id ON passkeys (user_id);
