ALTER TABLE users DROP COLUMN factor_epoch;
ALTER TABLE pending_sign_ins DROP COLUMN binding;
ALTER TABLE login_throttle DROP COLUMN lock_count;
ALTER TABLE sessions DROP COLUMN authenticated_with;
