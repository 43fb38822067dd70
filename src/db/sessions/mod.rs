//! The `sessions` table. Every time is epoch milliseconds; a row is live while
//! `idle_expires_at > now` (the idle expiry is never set past the absolute one).

use diesel::prelude::*;

pub mod dbsc;
mod lists;

pub use lists::*;

use super::schema::{passkeys, sessions, users};
use super::DbConn;

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id: String,
    pub token_hash: String,
    pub user_id: String,
    pub data: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub idle_expires_at: i64,
    pub absolute_expires_at: Option<i64>,
    pub ip: String,
    pub user_agent: String,
    pub cloud_token: Option<String>,
    pub cloud_role: Option<String>,
    pub cloud_expires_at: Option<i64>,
    pub auth_method: String,
    pub authenticated_at: i64,
    /// The browser's key, for a device-bound session.
    pub dbsc_key: Option<String>,
}

#[derive(Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession<'a> {
    pub id: &'a str,
    pub token_hash: &'a str,
    pub user_id: &'a str,
    pub data: &'a str,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub idle_expires_at: i64,
    pub absolute_expires_at: Option<i64>,
    pub ip: &'a str,
    pub user_agent: &'a str,
    pub cloud_token: Option<&'a str>,
    pub cloud_role: Option<&'a str>,
    pub cloud_expires_at: Option<i64>,
    pub auth_method: &'a str,
    pub authenticated_at: i64,
    /// How it last authenticated: at sign-in, how it signed in.
    pub authenticated_with: &'a str,
    /// The session's CSRF token (see `auth::csrf`).
    pub csrf_token: &'a str,
    /// The challenge a device-bound registration must answer (see [`dbsc`]), when one is offered.
    pub dbsc_challenge: Option<&'a str>,
}

/// What a request reads of its session and user, once per request, so nothing more: no password
/// hash, no sealed cloud token, no user agent, no `data` (actix-session's state, which holds only the
/// user id: the store rebuilds it from `user_id`).
#[derive(Clone, Debug, Queryable)]
pub struct LiveRow {
    pub id: String,
    pub token_hash: String,
    pub user_id: String,
    pub created_at: i64,
    pub idle_expires_at: i64,
    pub absolute_expires_at: Option<i64>,
    pub ip: String,
    pub username: String,
    pub role: String,
    pub disabled: i32,
    /// New-device notices this session has yet to dismiss (JSON; `None`, the common case, when none).
    pub new_device_notices: Option<String>,
    pub authenticated_at: i64,
    pub authenticated_with: String,
    /// Whether the user has the authenticator app on, and at least one passkey (for the
    /// second-factor policy, which would otherwise query on every request of such a user).
    pub has_totp: bool,
    pub has_passkey: bool,
    /// The session's CSRF token; '' for a row from before it had one.
    pub csrf_token: String,
    /// For a device-bound session: the hash of its current bound cookie and when it stops working.
    pub dbsc_cookie_hash: Option<String>,
    pub dbsc_cookie_expires_at: Option<i64>,
}

impl LiveRow {
    pub fn user_disabled(&self) -> bool {
        self.disabled != 0
    }
}

/// The columns of [`LiveRow`], in its order (a macro: the tuple's type is long to spell out).
macro_rules! live_columns {
    () => {
        (
            sessions::id,
            sessions::token_hash,
            sessions::user_id,
            sessions::created_at,
            sessions::idle_expires_at,
            sessions::absolute_expires_at,
            sessions::ip,
            users::username,
            users::role,
            users::disabled,
            sessions::new_device_notices,
            sessions::authenticated_at,
            sessions::authenticated_with,
            users::totp_secret.is_not_null(),
            diesel::dsl::exists(passkeys::table.filter(passkeys::user_id.eq(users::id))),
            sessions::csrf_token,
            sessions::dbsc_cookie_hash,
            sessions::dbsc_cookie_expires_at,
        )
    };
}

/// The sessions several token hashes name, with their users, in any order (hashes with no row are
/// left out): the session lookup thread answers a batch of requests with this. Both are cached
/// prepared statements on the backend's own connection. PostgreSQL gets one statement
/// (`token_hash = ANY($1)`, one plan whatever the count); SQLite, where a round trip costs nothing,
/// a point read per hash inside one read transaction (the WAL read lock is taken once per batch).
/// No `LIMIT` (the token hash is unique): SQLite plans around a bound `LIMIT ?` value, so every
/// new binding would expire the cached statement and parse the SQL again.
pub fn find_by_token_hashes(conn: &mut DbConn, token_hashes: &[&str]) -> QueryResult<Vec<LiveRow>> {
    match conn {
        DbConn::Postgres(pg) => sessions::table
            .inner_join(users::table)
            .filter(sessions::token_hash.eq_any(token_hashes))
            .select(live_columns!())
            .load(pg),
        DbConn::Sqlite(sqlite) => {
            let read_all = |c: &mut diesel::SqliteConnection| {
                let mut found = Vec::with_capacity(token_hashes.len());
                for hash in token_hashes {
                    found.extend(
                        sessions::table
                            .inner_join(users::table)
                            .filter(sessions::token_hash.eq(hash))
                            .select(live_columns!())
                            .get_result(c)
                            .optional()?,
                    );
                }
                Ok(found)
            };
            if token_hashes.len() > 1 {
                sqlite.transaction(read_all)
            } else {
                read_all(sqlite)
            }
        }
    }
}

/// On the backend's own connection (as every statement of a sign-in): its prepared-statement cache
/// spares PostgreSQL a parse and plan per sign-in (through the `MultiConnection` it prepares anew).
pub fn insert(conn: &mut DbConn, row: &NewSession<'_>) -> QueryResult<usize> {
    crate::on_backend!(conn, |c| diesel::insert_into(sessions::table).values(row).execute(c))
}

/// Replaces the session data. An UPDATE, never an upsert: a session ended meanwhile stays ended
/// (0 rows).
pub fn update_data(conn: &mut DbConn, token_hash: &str, data: &str) -> QueryResult<usize> {
    diesel::update(sessions::table.filter(sessions::token_hash.eq(token_hash)))
        .set(sessions::data.eq(data))
        .execute(conn)
}

/// Slides the idle expiry of a live session (never past its absolute expiry); 0 rows when it has
/// ended or expired meanwhile.
pub fn refresh(conn: &mut DbConn, id: &str, now: i64, idle_expires_at: i64) -> QueryResult<usize> {
    crate::on_backend!(conn, |c| diesel::update(sessions::table.find(id).filter(sessions::idle_expires_at.gt(now)))
        .set((sessions::last_seen_at.eq(now), sessions::idle_expires_at.eq(idle_expires_at)))
        .execute(c))
}

/// Gives a live session of `user_id` a new token (its hash); 0 rows when the session has ended or
/// expired.
pub fn rotate_token(conn: &mut DbConn, id: &str, user_id: &str, token_hash: &str, now: i64) -> QueryResult<usize> {
    diesel::update(
        sessions::table.find(id).filter(sessions::user_id.eq(user_id)).filter(sessions::idle_expires_at.gt(now)),
    )
    .set(sessions::token_hash.eq(token_hash))
    .execute(conn)
}

/// Records that the session `id` did a sensitive action at `now`: its re-authentication window
/// starts again, with the same kind of authentication. 0 rows when it has ended.
pub fn set_authenticated_at(conn: &mut DbConn, id: &str, now: i64) -> QueryResult<usize> {
    diesel::update(sessions::table.find(id)).set(sessions::authenticated_at.eq(now)).execute(conn)
}

/// Records that the session `id` authenticated at `now` with `method` (a `sessions.auth_method`
/// value): its re-authentication window starts again. 0 rows when it has ended.
pub fn set_authenticated(conn: &mut DbConn, id: &str, now: i64, method: &str) -> QueryResult<usize> {
    diesel::update(sessions::table.find(id))
        .set((sessions::authenticated_at.eq(now), sessions::authenticated_with.eq(method)))
        .execute(conn)
}

pub fn delete_by_token_hash(conn: &mut DbConn, token_hash: &str) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::token_hash.eq(token_hash))).execute(conn)
}

pub fn delete_by_id(conn: &mut DbConn, id: &str) -> QueryResult<usize> {
    diesel::delete(sessions::table.find(id)).execute(conn)
}

pub fn delete_for_user(conn: &mut DbConn, user_id: &str) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)
}

pub fn delete_all(conn: &mut DbConn) -> QueryResult<usize> {
    diesel::delete(sessions::table).execute(conn)
}

/// A user's expired sessions, deleted when they sign in.
pub fn delete_expired_for_user(conn: &mut DbConn, user_id: &str, now: i64) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id)).filter(sessions::idle_expires_at.le(now)))
        .execute(conn)
}

/// Deletes at most `batch` expired sessions; returns how many. Short statements keep the write lock
/// brief. On PostgreSQL `SKIP LOCKED` lets several instances prune at once without waiting on, or
/// deadlocking over, the same rows.
pub fn prune_batch(conn: &mut DbConn, now: i64, batch: i64) -> QueryResult<usize> {
    use diesel::sql_types::BigInt;
    match conn {
        DbConn::Postgres(pg) => diesel::sql_query(
            "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE idle_expires_at <= $1 \
             LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind::<BigInt, _>(now)
        .bind::<BigInt, _>(batch)
        .execute(pg),
        DbConn::Sqlite(sqlite) => diesel::sql_query(
            "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE idle_expires_at <= ? LIMIT ?)",
        )
        .bind::<BigInt, _>(now)
        .bind::<BigInt, _>(batch)
        .execute(sqlite),
    }
}

/// What a sign-in needs to know of the user's other live sessions: which was used least recently
/// (for the cap), and from what device and network (for new-device notices).
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct OtherSession {
    pub id: String,
    pub last_seen_at: i64,
    pub ip: String,
    pub user_agent: String,
    pub new_device_notices: Option<String>,
    pub idle_expires_at: i64,
}

/// A user's live sessions, least recently used first (the index on `(user_id, last_seen_at)`), after
/// deleting their expired ones: one read of all the user's rows, and the delete only when one of them
/// has expired (at a sign-in usually none has: one statement instead of two on the sign-in path).
pub fn live_of_user_clearing_expired(conn: &mut DbConn, user_id: &str, now: i64) -> QueryResult<Vec<OtherSession>> {
    let mut all: Vec<OtherSession> = crate::on_backend!(conn, |c| sessions::table
        .filter(sessions::user_id.eq(user_id))
        .order((sessions::last_seen_at.asc(), sessions::id.asc()))
        .select(OtherSession::as_select())
        .load(c))?;
    if all.iter().any(|s| s.idle_expires_at <= now) {
        delete_expired_for_user(conn, user_id, now)?;
        all.retain(|s| s.idle_expires_at > now);
    }
    Ok(all)
}

/// A session's undismissed new-device notices (JSON); `None` when there is no such session.
pub fn notices(conn: &mut DbConn, id: &str) -> QueryResult<Option<Option<String>>> {
    sessions::table.find(id).select(sessions::new_device_notices).first(conn).optional()
}

/// Replaces a session's new-device notices (`None`: no notice).
pub fn set_notices(conn: &mut DbConn, id: &str, notices: Option<&str>) -> QueryResult<usize> {
    diesel::update(sessions::table.find(id)).set(sessions::new_device_notices.eq(notices)).execute(conn)
}

/// A live session by public id.
pub fn find_live(conn: &mut DbConn, id: &str, now: i64) -> QueryResult<Option<SessionRow>> {
    sessions::table
        .find(id)
        .filter(sessions::idle_expires_at.gt(now))
        .select(SessionRow::as_select())
        .first(conn)
        .optional()
}

/// Deletes one session only if it belongs to `user_id` (so another user's id changes nothing).
pub fn delete_own(conn: &mut DbConn, id: &str, user_id: &str) -> QueryResult<usize> {
    diesel::delete(sessions::table.find(id).filter(sessions::user_id.eq(user_id))).execute(conn)
}

/// Deletes all of a user's sessions but `keep`.
pub fn delete_for_user_except(conn: &mut DbConn, user_id: &str, keep: &str) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id)).filter(sessions::id.ne(keep))).execute(conn)
}

/// All rows, expired or not (for tests and diagnostics).
pub fn count_all(conn: &mut DbConn) -> QueryResult<i64> {
    sessions::table.count().get_result(conn)
}

/// The username owning a session, if the session exists.
pub fn owner_name(conn: &mut DbConn, id: &str) -> QueryResult<Option<String>> {
    sessions::table.inner_join(users::table).filter(sessions::id.eq(id)).select(users::username).first(conn).optional()
}

/// Stores a session's (sealed) gateway token. An UPDATE: a session that ended meanwhile stays ended.
pub fn set_cloud_token(conn: &mut DbConn, id: &str, sealed: &str, role: &str, expires_at: i64) -> QueryResult<usize> {
    diesel::update(sessions::table.find(id))
        .set((
            sessions::cloud_token.eq(Some(sealed)),
            sessions::cloud_role.eq(Some(role)),
            sessions::cloud_expires_at.eq(Some(expires_at)),
        ))
        .execute(conn)
}

/// A session's sealed gateway token, its role and expiry.
pub fn cloud_token(conn: &mut DbConn, id: &str) -> QueryResult<Option<(String, String, i64)>> {
    let row: Option<(Option<String>, Option<String>, Option<i64>)> = sessions::table
        .find(id)
        .select((sessions::cloud_token, sessions::cloud_role, sessions::cloud_expires_at))
        .first(conn)
        .optional()?;
    Ok(match row {
        Some((Some(t), Some(r), Some(e))) => Some((t, r, e)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::Cursor;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_cursor_survives_its_link(t in any::<i64>(), id in "[A-Za-z0-9_-]{1,30}") {
            let c = Cursor { last_seen_at: t, id };
            prop_assert_eq!(Cursor::parse(&c.encode()), Some(c));
        }

        #[test]
        fn any_text_parses_to_a_cursor_or_nothing_without_panicking(raw in any::<String>()) {
            if let Some(c) = Cursor::parse(&raw) {
                prop_assert_eq!(Cursor::parse(&c.encode()), Some(c));
            }
        }

        #[test]
        fn event_cursors_parse_like_session_cursors(raw in any::<String>()) {
            let a = crate::db::events::parse_cursor(&raw);
            let b = Cursor::parse(&raw).map(|c| (c.last_seen_at, c.id));
            prop_assert_eq!(a, b);
        }
    }
}
