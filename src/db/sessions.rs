//! The `sessions` table. Every time is epoch milliseconds; a row is live while
//! `idle_expires_at > now` (the idle expiry is never set past the absolute one).

use diesel::prelude::*;

use super::schema::{sessions, users};
use super::users::User;
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
}

/// The session a token hash names, with its user: one indexed read per request.
pub fn find_with_user(conn: &mut DbConn, token_hash: &str) -> QueryResult<Option<(SessionRow, User)>> {
    sessions::table
        .inner_join(users::table)
        .filter(sessions::token_hash.eq(token_hash))
        .select((SessionRow::as_select(), User::as_select()))
        .first(conn)
        .optional()
}

pub fn insert(conn: &mut DbConn, row: &NewSession<'_>) -> QueryResult<usize> {
    diesel::insert_into(sessions::table).values(row).execute(conn)
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
    diesel::update(sessions::table.find(id).filter(sessions::idle_expires_at.gt(now)))
        .set((sessions::last_seen_at.eq(now), sessions::idle_expires_at.eq(idle_expires_at)))
        .execute(conn)
}

pub fn delete_by_token_hash(conn: &mut DbConn, token_hash: &str) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::token_hash.eq(token_hash))).execute(conn)
}

/// Deletes a session by public id if it has expired by `now` (the row met on access).
pub fn delete_if_expired(conn: &mut DbConn, id: &str, now: i64) -> QueryResult<usize> {
    diesel::delete(sessions::table.find(id).filter(sessions::idle_expires_at.le(now))).execute(conn)
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

/// Live sessions with their user's name, most recent activity first.
pub fn list_live(conn: &mut DbConn, now: i64, user_id: Option<&str>) -> QueryResult<Vec<(SessionRow, String)>> {
    let mut query = sessions::table
        .inner_join(users::table)
        .filter(sessions::idle_expires_at.gt(now))
        .select((SessionRow::as_select(), users::username))
        .order((sessions::last_seen_at.desc(), sessions::id.asc()))
        .into_boxed();
    if let Some(user_id) = user_id {
        query = query.filter(sessions::user_id.eq(user_id.to_owned()));
    }
    query.load(conn)
}

/// All rows, expired or not (for tests and diagnostics).
pub fn count_all(conn: &mut DbConn) -> QueryResult<i64> {
    sessions::table.count().get_result(conn)
}
