-- New-device notices and the admin overview. Portable SQL, like every migration here.

-- The devices (browser family and system, from the user agent: "Firefox on Linux") and networks
-- (IPv4 /24, IPv6 /64) each user has signed in from, and when last. A sign-in from a pair not seen
-- in 90 days is a new device; rows older than that are pruned with the other housekeeping.
CREATE TABLE known_devices (
    user_id    TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device     TEXT   NOT NULL,
    network    TEXT   NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL,
    PRIMARY KEY (user_id, device, network)
);
CREATE INDEX known_devices_last_seen ON known_devices (last_seen);

-- The new-device notices a session has yet to dismiss (JSON, NULL when none): on the session row,
-- so the per-request session lookup reads them with the row instead of asking a second query.
ALTER TABLE sessions ADD COLUMN new_device_notices TEXT;

-- The overview counts sign-ins, failures, lockouts and new-device sign-ins per hour over 24 hours:
-- auth_events_kind_at (kind, at) already serves that as one index range per kind (covering, no
-- table reads). Its sessions chart counts live sessions through sessions_idle_expires_at.
