//! Reading the `sessions` table in lists and counts: the sessions pages (keyset paging), the admin
//! overview and the metrics.

use diesel::prelude::*;

use super::SessionRow;
use crate::db::schema::{sessions, users};
use crate::db::DbConn;

/// Where a page of the session list starts: after this (last seen, id) in newest-first order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub last_seen_at: i64,
    pub id: String,
}

impl Cursor {
    /// `LASTSEEN.ID`, as carried in a "next page" link.
    pub fn parse(s: &str) -> Option<Cursor> {
        let (t, id) = s.split_once('.')?;
        Some(Cursor { last_seen_at: t.parse().ok()?, id: id.to_owned() })
    }

    pub fn encode(&self) -> String {
        format!("{}.{}", self.last_seen_at, self.id)
    }
}

/// Live sessions with their user's name, most recent activity first, optionally for one user,
/// starting after `after`, at most `limit` (keyset paging: every page is one index range scan).
pub fn list_live_page(
    conn: &mut DbConn,
    now: i64,
    user_id: Option<&str>,
    after: Option<&Cursor>,
    limit: i64,
) -> QueryResult<Vec<(SessionRow, String)>> {
    let mut query = sessions::table
        .inner_join(users::table)
        .filter(sessions::idle_expires_at.gt(now))
        .select((SessionRow::as_select(), users::username))
        .order((sessions::last_seen_at.desc(), sessions::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some(user_id) = user_id {
        query = query.filter(sessions::user_id.eq(user_id.to_owned()));
    }
    if let Some(c) = after {
        query = query.filter(
            sessions::last_seen_at
                .lt(c.last_seen_at)
                .or(sessions::last_seen_at.eq(c.last_seen_at).and(sessions::id.lt(c.id.clone()))),
        );
    }
    query.load(conn)
}

/// Every live session (of one user, or all), newest activity first.
pub fn list_live(conn: &mut DbConn, now: i64, user_id: Option<&str>) -> QueryResult<Vec<(SessionRow, String)>> {
    list_live_page(conn, now, user_id, None, i64::MAX)
}

/// (live sessions, distinct users with a live session).
pub fn live_summary(conn: &mut DbConn, now: i64) -> QueryResult<(i64, i64)> {
    let live = sessions::table.filter(sessions::idle_expires_at.gt(now));
    let sessions_count = live.count().get_result(conn)?;
    let users_count = live.select(diesel::dsl::count(sessions::user_id).aggregate_distinct()).get_result(conn)?;
    Ok((sessions_count, users_count))
}

/// Live sessions per role (roles without one are left out).
pub fn live_by_role(conn: &mut DbConn, now: i64) -> QueryResult<Vec<(String, i64)>> {
    sessions::table
        .inner_join(users::table)
        .filter(sessions::idle_expires_at.gt(now))
        .group_by(users::role)
        .select((users::role, diesel::dsl::count_star()))
        .load(conn)
}

/// How many sessions are live (one count on the expiry index; for the metrics scrape).
pub fn count_live(conn: &mut DbConn, now: i64) -> QueryResult<i64> {
    sessions::table.filter(sessions::idle_expires_at.gt(now)).count().get_result(conn)
}

/// How many sessions have expired by `now` (not pruned yet).
pub fn count_expired(conn: &mut DbConn, now: i64) -> QueryResult<i64> {
    sessions::table.filter(sessions::idle_expires_at.le(now)).count().get_result(conn)
}

/// Live session counts per user id.
pub fn live_counts_by_user(conn: &mut DbConn, now: i64) -> QueryResult<Vec<(String, i64)>> {
    sessions::table
        .filter(sessions::idle_expires_at.gt(now))
        .group_by(sessions::user_id)
        .select((sessions::user_id, diesel::dsl::count_star()))
        .load(conn)
}
