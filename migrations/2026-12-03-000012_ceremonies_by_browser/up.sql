-- Passkey ceremonies are limited per browser first (a further start replaces that browser's
-- oldest): the start looks a browser's ceremonies up by their binding.
CREATE INDEX webauthn_ceremonies_binding ON webauthn_ceremonies (binding, expires_at);
