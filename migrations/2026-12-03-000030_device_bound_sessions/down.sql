ALTER TABLE sessions DROP COLUMN dbsc_cookie_expires_at;
ALTER TABLE sessions DROP COLUMN dbsc_cookie_hash;
ALTER TABLE sessions DROP COLUMN dbsc_challenge;
ALTER TABLE sessions DROP COLUMN dbsc_key;
