#!/usr/bin/env python3
"""Seeds N sessions for one user, or N audit events, straight into the database (SQLite file or
PostgreSQL URL).

    bench_seed.py DATABASE_URL USERNAME COUNT live|expired
    bench_seed.py DATABASE_URL USERNAME COUNT events

Events are spread evenly over the last 90 days (the default retention), so a 24-hour window holds
about 1/90 of them, in the mix of a busy site: of every 100, 60 sign-ins, 25 failed sign-ins,
10 sign-outs, 3 new-device sign-ins, 2 lockouts.
"""
import hashlib
import os
import subprocess
import sys
import time


KINDS = ["sign_in"] * 60 + ["sign_in_failed"] * 25 + ["sign_out"] * 10 + ["new_device_sign_in"] * 3 + ["locked_out"] * 2
SPAN_MS = 90 * 24 * 3_600_000


def seed_events(url, username, count):
    now = int(time.time() * 1000)
    step = SPAN_MS // count
    if url.startswith(("postgres://", "postgresql://")):
        kinds = "ARRAY[" + ",".join(f"'{k}'" for k in KINDS) + "]"
        sql = f"""
        INSERT INTO auth_events (id, at, kind, username, actor, client_ip, session_id, detail)
        SELECT 'ev' || g, {now} - g::bigint * {step}, ({kinds})[1 + g % 100], '{username}', NULL, '10.0.0.1', NULL, ''
        FROM generate_series(1, {count}) AS g;
        """
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql], check=True)
        # What autovacuum does soon after on a live database: statistics, and the visibility map
        # that lets the overview's query read the index alone.
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", "VACUUM ANALYZE auth_events"], check=True)
    else:
        import sqlite3

        path = url[len("sqlite://"):] if url.startswith("sqlite://") else url
        db = sqlite3.connect(path, timeout=30)
        rows = ((f"ev{i}", now - i * step, KINDS[i % 100], username, "10.0.0.1", "") for i in range(1, count + 1))
        with db:
            db.executemany(
                "INSERT INTO auth_events (id, at, kind, username, client_ip, detail) VALUES (?,?,?,?,?,?)", rows
            )
        db.execute("ANALYZE")
        db.close()


def main():
    url, username, count, state = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    if state == "events":
        seed_events(url, username, count)
        return
    now = int(time.time() * 1000)
    expires = now + 3_600_000 if state == "live" else now - 60_000
    tag = f"{state}{os.getpid()}"
    if url.startswith(("postgres://", "postgresql://")):
        sql = f"""
        INSERT INTO sessions (id, token_hash, user_id, data, created_at, last_seen_at, idle_expires_at,
                              absolute_expires_at, ip, user_agent)
        SELECT '{tag}-' || g, md5('{tag}a' || g) || md5('{tag}b' || g),
               (SELECT id FROM users WHERE username = '{username}'), '{{}}',
               {now} - g, {now} - g, {expires}, NULL, '10.0.0.1', 'seed'
        FROM generate_series(1, {count}) AS g;
        """
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql], check=True)
    else:
        import sqlite3

        path = url[len("sqlite://"):] if url.startswith("sqlite://") else url
        db = sqlite3.connect(path, timeout=30)
        (user_id,) = db.execute("SELECT id FROM users WHERE username = ?", (username,)).fetchone()
        rows = (
            (f"{tag}-{i}", hashlib.sha256(f"{tag}{i}".encode()).hexdigest(), user_id, "{}", now - i, now - i,
             expires, None, "10.0.0.1", "seed")
            for i in range(count)
        )
        with db:
            db.executemany(
                "INSERT INTO sessions (id, token_hash, user_id, data, created_at, last_seen_at, idle_expires_at,"
                " absolute_expires_at, ip, user_agent) VALUES (?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
        db.close()


if __name__ == "__main__":
    main()
