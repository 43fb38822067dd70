-- What a session's last authentication was, growing locks, pending sign-ins bound to their browser,
-- and a counter of second-factor changes. Portable SQL, like every migration here.

-- How the session last authenticated (`password`, `totp`, `recovery`, `passkey`): for a user with a
-- second factor only an authentication that used it opens the re-authentication window.
-- `auth_method` stays how it signed in.
ALTER TABLE sessions ADD COLUMN authenticated_with TEXT NOT NULL DEFAULT 'password';
UPDATE sessions SET authenticated_with = auth_method;

-- How many locks in a row a key has had without a success in between: each one lasts twice the
-- one before, up to a day.
ALTER TABLE login_throttle ADD COLUMN lock_count INTEGER NOT NULL DEFAULT 0;

-- The browser a pending sign-in belongs to (a hash of its visitor cookie's secret): the pending
-- cookie copied into another browser finishes nothing.
ALTER TABLE pending_sign_ins ADD COLUMN binding TEXT NOT NULL DEFAULT '';

-- Incremented at every change of the user's authenticator app (on, off, reset), so a set-up form
-- sealed before a change cannot be replayed after it.
ALTER TABLE users ADD COLUMN factor_epoch INTEGER NOT NULL DEFAULT 0;
