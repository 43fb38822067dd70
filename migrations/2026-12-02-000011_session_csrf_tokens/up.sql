-- The CSRF token of a signed-in session, kept with its row: the session lookup reads it with the
-- rest, so a signed-in request neither unseals the visitor cookie nor computes an HMAC to know the
-- token its forms carry. Rows from before this migration have '' and get a token derived from the
-- server key and their public id (auth::csrf). Portable SQL, like every migration here.
ALTER TABLE sessions ADD COLUMN csrf_token TEXT NOT NULL DEFAULT '';
