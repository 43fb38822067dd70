//! The `pending_sign_ins` table: sign-ins waiting for their second factor.

use diesel::prelude::*;

use super::schema::{pending_sign_ins, users};
use super::DbConn;

/// A pending sign-in with its user's name.
#[derive(Clone, Debug, Queryable)]
pub struct PendingRow {
    pub id_hash: String,
    pub user_id: String,
    pub password_hash: String,
    pub next: Option<String>,
    pub expires_at: i64,
    pub username: String,
    /// The browser it belongs to.
    pub binding: String,
}

/// A pending sign-in to keep.
pub struct NewPending<'a> {
    pub id_hash: &'a str,
    pub binding: &'a str,
    pub user_id: &'a str,
    pub password_hash: &'a str,
    pub next: Option<&'a str>,
    pub now: i64,
    pub expires_at: i64,
}

pub fn insert(conn: &mut DbConn, p: &NewPending<'_>) -> QueryResult<usize> {
    diesel::insert_into(pending_sign_ins::table)
        .values((
            pending_sign_ins::id_hash.eq(p.id_hash),
            pending_sign_ins::binding.eq(p.binding),
            pending_sign_ins::user_id.eq(p.user_id),
            pending_sign_ins::password_hash.eq(p.password_hash),
            pending_sign_ins::next.eq(p.next),
            pending_sign_ins::created_at.eq(p.now),
            pending_sign_ins::expires_at.eq(p.expires_at),
        ))
        .execute(conn)
}

/// The pending sign-in `id_hash` names, expired or not.
pub fn find(conn: &mut DbConn, id_hash: &str) -> QueryResult<Option<PendingRow>> {
    pending_sign_ins::table
        .inner_join(users::table)
        .filter(pending_sign_ins::id_hash.eq(id_hash))
        .select((
            pending_sign_ins::id_hash,
            pending_sign_ins::user_id,
            pending_sign_ins::password_hash,
            pending_sign_ins::next,
            pending_sign_ins::expires_at,
            users::username,
            pending_sign_ins::binding,
        ))
        .first(conn)
        .optional()
}

/// Takes (deletes) the live pending sign-in `id_hash` of `user_id`: true for the one request that
/// gets it; false when it was taken already, or has expired.
pub fn take(conn: &mut DbConn, id_hash: &str, user_id: &str, now: i64) -> QueryResult<bool> {
    let n = diesel::delete(
        pending_sign_ins::table
            .find(id_hash)
            .filter(pending_sign_ins::user_id.eq(user_id))
            .filter(pending_sign_ins::expires_at.gt(now)),
    )
    .execute(conn)?;
    Ok(n == 1)
}

pub fn delete(conn: &mut DbConn, id_hash: &str) -> QueryResult<usize> {
    diesel::delete(pending_sign_ins::table.find(id_hash)).execute(conn)
}

/// Deletes every pending sign-in of a user (a password reset ends them); returns how many.
pub fn delete_for_user(conn: &mut DbConn, user_id: &str) -> QueryResult<usize> {
    diesel::delete(pending_sign_ins::table.filter(pending_sign_ins::user_id.eq(user_id))).execute(conn)
}

/// Deletes the pending sign-ins that have expired.
pub fn prune(conn: &mut DbConn, now: i64) -> QueryResult<usize> {
    diesel::delete(pending_sign_ins::table.filter(pending_sign_ins::expires_at.le(now))).execute(conn)
}
