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

/// Reserves one attempt for `key` **before** the password (or code) is checked: one statement that
/// counts the attempt and refuses it at the limit, so parallel requests cannot outrun the lock. An
/// attempt counts from here; failures older than `window` no longer count. Refused (false) while the
/// key is locked or `limit` attempts are already counted in the window, checked or in flight.
pub fn reserve(conn: &mut DbConn, key: &str, now: i64, window: i64, limit: i64) -> QueryResult<bool> {
    // Portable: SQLite ≥ 3.24 and PostgreSQL share ON CONFLICT … DO UPDATE … WHERE. A row whose
    // update the WHERE refuses counts as 0 rows on both.
    let sql = portable_sql(
        conn,
        "INSERT INTO login_throttle (key, failures, last_failure_at, locked_until) VALUES ($1, 1, $2, 0) \
         ON CONFLICT (key) DO UPDATE SET \
         failures = CASE WHEN login_throttle.last_failure_at < $3 THEN 1 ELSE login_throttle.failures + 1 END, \
         last_failure_at = $2 \
         WHERE login_throttle.locked_until <= $2 \
         AND (login_throttle.last_failure_at < $3 OR login_throttle.failures < $4)",
    );
    let reserved = crate::on_backend!(conn, |c| diesel::sql_query(sql)
        .bind::<Text, _>(key)
        .bind::<BigInt, _>(now)
        .bind::<BigInt, _>(now - window)
        .bind::<BigInt, _>(limit)
        .execute(c)?);
    Ok(reserved == 1)
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

/// A successful sign-in resets the username's count.
pub fn reset(conn: &mut DbConn, key: &str) -> QueryResult<usize> {
    diesel::delete(login_throttle::table.find(key)).execute(conn)
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
