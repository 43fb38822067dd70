#!/usr/bin/env python3
"""Seeds N sessions for one user straight into the database (SQLite file or PostgreSQL URL).

    bench_seed.py DATABASE_URL USERNAME COUNT live|expired
"""
import hashlib
import os
import subprocess
import sys
import time


def main():
    url, username, count, state = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
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
