-- Device-bound sessions: a session whose browser registered a key (kept here as a JWK) is served only
-- with a short-lived bound cookie that only a request signed with that key renews. The state lives in
-- the session's own row, so parallel requests and several instances agree. Portable SQL.
ALTER TABLE sessions ADD COLUMN dbsc_key TEXT;
-- The challenge the browser's next signed request must carry (single use).
ALTER TABLE sessions ADD COLUMN dbsc_challenge TEXT;
-- The hash of the current bound cookie, and when it stops working.
ALTER TABLE sessions ADD COLUMN dbsc_cookie_hash TEXT;
ALTER TABLE sessions ADD COLUMN dbsc_cookie_expires_at BIGINT;
