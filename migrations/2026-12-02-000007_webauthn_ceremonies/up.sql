-- Passkey (WebAuthn) ceremonies in progress: between the request that asks the browser for a passkey
-- and the one that brings its answer, the server keeps the challenge here (never in a cookie). A row is
-- used once: the answer takes it with a conditional DELETE (only this browser's, only unexpired), so a
-- replayed answer finds nothing. Portable SQL, like every migration here.
CREATE TABLE webauthn_ceremonies (
    id         TEXT   PRIMARY KEY NOT NULL,  -- random, handed to the browser that started it
    purpose    TEXT   NOT NULL,              -- 'register', 'sign_in', 'second_step', 'reauth'
    binding    TEXT   NOT NULL,              -- SHA-256 of that browser's CSRF token (its cookie, and its session if any)
    user_id    TEXT   REFERENCES users (id) ON DELETE CASCADE,  -- NULL for a sign-in with a passkey alone
    client_ip  TEXT   NOT NULL,
    state      TEXT   NOT NULL,              -- webauthn-rs' ceremony state (the challenge …), JSON
    expires_at BIGINT NOT NULL
);
CREATE INDEX webauthn_ceremonies_expires_at ON webauthn_ceremonies (expires_at);
CREATE INDEX webauthn_ceremonies_client_ip ON webauthn_ceremonies (client_ip, expires_at);
