-- Failed sign-in counters, shared by every instance on this database. Keys: 'user:NAME' (any submitted
-- name, existing or not) and 'ip:ADDRESS'.
CREATE TABLE login_throttle (
    key             TEXT    PRIMARY KEY NOT NULL,
    failures        INTEGER NOT NULL,
    last_failure_at BIGINT  NOT NULL,
    locked_until    BIGINT  NOT NULL DEFAULT 0
);

-- The audit log: who signed in or failed to, who ended which session, who changed what.
-- Never a password, token, JWT or secret.
CREATE TABLE auth_events (
    id         TEXT   PRIMARY KEY NOT NULL,
    at         BIGINT NOT NULL,
    kind       TEXT   NOT NULL,
    username   TEXT,              -- the account concerned (as submitted, for failed sign-ins)
    actor      TEXT,              -- who did it when not that user: an admin's name, 'cli' or 'system'
    client_ip  TEXT,
    session_id TEXT,              -- public session id
    detail     TEXT   NOT NULL DEFAULT ''
);
CREATE INDEX auth_events_at_id ON auth_events (at, id);
CREATE INDEX auth_events_username_at ON auth_events (username, at);
CREATE INDEX auth_events_kind_at ON auth_events (kind, at);
