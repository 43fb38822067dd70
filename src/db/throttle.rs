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

/// The longest a lock lasts, however many came before it.
pub const LONGEST_LOCK_MS: i64 = 24 * 60 * 60 * 1000;

/// How long the next lock of a key lasts after `locks` locks in a row with no success in between:
/// `window`, then twice that, and so on, at most [`LONGEST_LOCK_MS`] (never shorter than `window`).
pub fn lock_length(window: i64, locks: i32, grows: bool) -> i64 {
    let longest = LONGEST_LOCK_MS.max(window);
    let mut length = window;
    for _ in 0..if grows { locks.max(0) } else { 0 } {
        if length >= longest {
            break;
        }
        length = length.saturating_mul(2);
    }
    length.min(longest)
}

/// A lock a failure set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewLock {
    pub until: i64,
    /// How long it lasts (ms).
    pub length: i64,
}

/// The reserved attempt failed: it stays counted, and when the count has reached `limit` the key is
/// locked (and its count starts again from zero). The lock lasts `window`; for a key that `grows`
/// (a username), each further lock with no success in between lasts twice the one before, up to
/// [`LONGEST_LOCK_MS`]. Returns the lock when this failure set it.
pub fn fail(
    conn: &mut DbConn,
    key: &str,
    now: i64,
    window: i64,
    limit: i64,
    grows: bool,
) -> QueryResult<Option<NewLock>> {
    // A read, then an update that holds only if nothing changed since (the same lock count, still
    // at the limit and unlocked): of parallel failures exactly one sets the lock, with the length
    // the count it read gives. One that lost the race reads again.
    for _ in 0..8 {
        let row: Option<(i32, i32, i64)> = login_throttle::table
            .find(key)
            .select((login_throttle::failures, login_throttle::lock_count, login_throttle::locked_until))
            .first(conn)
            .optional()?;
        let Some((failures, locks, locked_until)) = row else { return Ok(None) };
        if i64::from(failures) < limit || locked_until > now {
            return Ok(None);
        }
        let length = lock_length(window, locks, grows);
        let until = now.saturating_add(length);
        let set = diesel::update(
            login_throttle::table
                .find(key)
                .filter(login_throttle::lock_count.eq(locks))
                .filter(login_throttle::failures.ge(limit as i32))
                .filter(login_throttle::locked_until.le(now)),
        )
        .set((
            login_throttle::locked_until.eq(until),
            login_throttle::failures.eq(0),
            login_throttle::lock_count.eq(if grows { locks.saturating_add(1) } else { 0 }),
        ))
        .execute(conn)?;
        if set == 1 {
            return Ok(Some(NewLock { until, length }));
        }
    }
    Ok(None)
}

/// Ends a key's lock and forgets its failures and earlier locks (an administrator's unlock).
/// Returns whether there was a lock to end.
pub fn unlock(conn: &mut DbConn, key: &str, now: i64) -> QueryResult<bool> {
    let locked = locked_until(conn, &[key], now)?.is_some();
    diesel::update(login_throttle::table.find(key))
        .set((login_throttle::locked_until.eq(0), login_throttle::failures.eq(0), login_throttle::lock_count.eq(0)))
        .execute(conn)?;
    Ok(locked)
}

/// The locks still running among `keys`: each key with the end of its lock.
pub fn locks(conn: &mut DbConn, keys: &[String], now: i64) -> QueryResult<Vec<(String, i64)>> {
    login_throttle::table
        .filter(login_throttle::key.eq_any(keys))
        .filter(login_throttle::locked_until.gt(now))
        .select((login_throttle::key, login_throttle::locked_until))
        .load(conn)
}

/// The reserved attempt was not a failure (it succeeded, or was not checked after all): it no longer
/// counts.
pub fn release(conn: &mut DbConn, key: &str) -> QueryResult<usize> {
    diesel::update(login_throttle::table.find(key).filter(login_throttle::failures.gt(0)))
        .set(login_throttle::failures.eq(login_throttle::failures - 1))
        .execute(conn)
}

/// A successful sign-in, in one statement: resets `reset_key` (the username's count, any lock, and
/// the growth of further locks) and gives back the attempt reserved on `release_key` (the
/// address's) like [`release`].
pub fn succeeded(conn: &mut DbConn, reset_key: &str, release_key: Option<&str>) -> QueryResult<usize> {
    let sql = portable_sql(
        conn,
        "UPDATE login_throttle SET \
         failures = CASE WHEN key = $1 THEN 0 ELSE failures - 1 END, \
         locked_until = CASE WHEN key = $1 THEN 0 ELSE locked_until END, \
         lock_count = CASE WHEN key = $1 THEN 0 ELSE lock_count END \
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

/// Deletes counters that neither lock nor count any more. A key with locks behind it is kept: its
/// next lock is to be longer, until a success resets it.
pub fn prune(conn: &mut DbConn, now: i64, window: i64) -> QueryResult<usize> {
    diesel::delete(
        login_throttle::table
            .filter(login_throttle::locked_until.le(now))
            .filter(login_throttle::lock_count.eq(0))
            .filter(login_throttle::last_failure_at.lt(now - window)),
    )
    .execute(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_double_up_to_a_day() {
        let m = 60_000;
        let lengths: Vec<i64> = (0..9).map(|n| lock_length(15 * m, n, true) / m).collect();
        assert_eq!(lengths, [15, 30, 60, 120, 240, 480, 960, 1440, 1440]);
        assert_eq!(lock_length(15 * m, i32::MAX, true), LONGEST_LOCK_MS);
        assert_eq!(lock_length(15 * m, 5, false), 15 * m, "an address's locks do not grow");
        assert_eq!(lock_length(48 * 60 * m, 3, true), 48 * 60 * m, "never shorter than the window");
    }
}
