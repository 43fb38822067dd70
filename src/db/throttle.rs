//! The `login_throttle` table: consecutive failed sign-ins per submitted username and per client IP,
//! in the database so that every instance sees the same counts.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::schema::login_throttle;
use super::{portable_sql, DbConn};

/// The throttle key of a submitted username (existing or not).
pub fn user_key(submitted: &str) -> String {
    let name: String = submitted.trim().to_lowercase().chars().take(64).collect();
    format!("user:{name}")
}

pub fn ip_key(ip: &str) -> String {
    format!("ip:{ip}")
}

/// The latest `locked_until` among `keys` that is still in the future, if any.
pub fn locked_until(conn: &mut DbConn, keys: &[&str], now: i64) -> QueryResult<Option<i64>> {
    let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    login_throttle::table
        .filter(login_throttle::key.eq_any(keys))
        .filter(login_throttle::locked_until.gt(now))
        .select(diesel::dsl::max(login_throttle::locked_until))
        .first::<Option<i64>>(conn)
}

/// Reserves one attempt on each `(key, limit)` **before** the password (or code) is checked: one
/// statement that counts the attempt on every key and refuses it, key by key, at that key's limit, so
/// parallel requests cannot outrun the lock. Returns the keys it reserved; the caller gives those back
/// when not all were (see [`crate::auth::attempts`]). An attempt counts from here; failures older than
/// `window` no longer count. A key is refused while it is locked or `limit` attempts are already
/// counted in the window, checked or in flight.
///
/// One statement rather than one per key in a transaction: a sign-in is mostly hashing, and on
/// PostgreSQL each round trip and commit is CPU taken from the hashing threads.
pub fn reserve(conn: &mut DbConn, counters: &[(&str, i64)], now: i64, window: i64) -> QueryResult<Vec<String>> {
    if counters.is_empty() {
        return Ok(Vec::new());
    }
    // Portable: SQLite ≥ 3.35 and PostgreSQL share multi-row ON CONFLICT … DO UPDATE … WHERE …
    // RETURNING; a row whose update the WHERE refuses is neither changed nor returned, on both.
    // $1 = now, $2 = start of the window, then each key and its limit.
    let values: Vec<String> = (0..counters.len()).map(|i| format!("(${}, 1, $1, 0)", 3 + 2 * i)).collect();
    let limits: String = (0..counters.len()).map(|i| format!(" WHEN ${} THEN ${}", 3 + 2 * i, 4 + 2 * i)).collect();
    let sql = portable_sql(
        conn,
        &format!(
            "INSERT INTO login_throttle (key, failures, last_failure_at, locked_until) VALUES {} \
             ON CONFLICT (key) DO UPDATE SET \
             failures = CASE WHEN login_throttle.last_failure_at < $2 THEN 1 ELSE login_throttle.failures + 1 END, \
             last_failure_at = $1 \
             WHERE login_throttle.locked_until <= $1 \
             AND (login_throttle.last_failure_at < $2 OR login_throttle.failures < CASE login_throttle.key{limits} END) \
             RETURNING key",
            values.join(", ")
        ),
    );
    let reserved: Vec<Reserved> = crate::on_backend!(conn, |c| {
        let mut query = diesel::sql_query(sql).into_boxed().bind::<BigInt, _>(now).bind::<BigInt, _>(now - window);
        for (key, limit) in counters {
            query = query.bind::<Text, _>(*key).bind::<BigInt, _>(*limit);
        }
        query.load(c)?
    });
    Ok(reserved.into_iter().map(|r| r.key).collect())
}

#[derive(QueryableByName)]
struct Reserved {
    #[diesel(sql_type = Text)]
    key: String,
}

/// The reserved attempt failed: it stays counted, and when the count has reached `limit` the key is
/// locked until `now + window` (and its count starts again from zero). Returns true when this
/// failure set the lock.
pub fn fail(conn: &mut DbConn, key: &str, now: i64, window: i64, limit: i64) -> QueryResult<bool> {
    let sql = portable_sql(
        conn,
        "UPDATE login_throttle SET locked_until = $2, failures = 0 \
         WHERE key = $1 AND failures >= $3 AND locked_until <= $4",
    );
    let locked = crate::on_backend!(conn, |c| diesel::sql_query(sql)
        .bind::<Text, _>(key)
        .bind::<BigInt, _>(now + window)
        .bind::<BigInt, _>(limit)
        .bind::<BigInt, _>(now)
        .execute(c)?);
    Ok(locked == 1)
}

/// The reserved attempt was not a failure (it succeeded, or was not checked after all): it no longer
/// counts.
pub fn release(conn: &mut DbConn, key: &str) -> QueryResult<usize> {
    diesel::update(login_throttle::table.find(key).filter(login_throttle::failures.gt(0)))
        .set(login_throttle::failures.eq(login_throttle::failures - 1))
        .execute(conn)
}

/// A successful sign-in, in one statement: resets `reset_key` (the username's count and any lock) and
/// gives back the attempt reserved on `release_key` (the address's) like [`release`].
pub fn succeeded(conn: &mut DbConn, reset_key: &str, release_key: Option<&str>) -> QueryResult<usize> {
    let sql = portable_sql(
        conn,
        "UPDATE login_throttle SET \
         failures = CASE WHEN key = $1 THEN 0 ELSE failures - 1 END, \
         locked_until = CASE WHEN key = $1 THEN 0 ELSE locked_until END \
         WHERE key = $1 OR (key = $2 AND failures > 0)",
    );
    crate::on_backend!(conn, |c| diesel::sql_query(sql)
        .bind::<Text, _>(reset_key)
        .bind::<diesel::sql_types::Nullable<Text>, _>(release_key)
        .execute(c))
}

/// Current failure count of a key (0 when none): for tests and diagnostics.
pub fn failures(conn: &mut DbConn, key: &str) -> QueryResult<i32> {
    Ok(login_throttle::table.find(key).select(login_throttle::failures).first(conn).optional()?.unwrap_or(0))
}

/// Deletes counters that neither lock nor count any more.
pub fn prune(conn: &mut DbConn, now: i64, window: i64) -> QueryResult<usize> {
    diesel::delete(
        login_throttle::table
            .filter(login_throttle::locked_until.le(now))
            .filter(login_throttle::last_failure_at.lt(now - window)),
    )
    .execute(conn)
}
