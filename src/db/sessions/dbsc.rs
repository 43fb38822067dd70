//! A session's device-bound state, kept in its own row (by session id), so parallel requests and
//! several instances agree: the browser's key, the one challenge its next signed request must
//! carry, and the current bound cookie. Every write holds only for a live session.

use diesel::prelude::*;

use crate::db::schema::sessions;
use crate::db::DbConn;

/// What a signed request for session `id` is checked against.
#[derive(Clone, Debug, Queryable)]
pub struct Binding {
    /// The registered key (a JWK), once there is one.
    pub key: Option<String>,
    pub challenge: Option<String>,
}

/// The live session `id`'s binding state.
pub fn binding(conn: &mut DbConn, id: &str, now: i64) -> QueryResult<Option<Binding>> {
    sessions::table
        .find(id)
        .filter(sessions::idle_expires_at.gt(now))
        .select((sessions::dbsc_key, sessions::dbsc_challenge))
        .first(conn)
        .optional()
}

/// Sets the challenge the next signed request of the live session `id` must carry (replacing any
/// earlier one: an old challenge is good for nothing after this).
pub fn set_challenge(conn: &mut DbConn, id: &str, challenge: &str, now: i64) -> QueryResult<usize> {
    diesel::update(sessions::table.find(id).filter(sessions::idle_expires_at.gt(now)))
        .set(sessions::dbsc_challenge.eq(challenge))
        .execute(conn)
}

/// Spends `challenge` of the live session `id`, once: of two requests carrying it, one gets `true`.
pub fn take_challenge(conn: &mut DbConn, id: &str, challenge: &str, now: i64) -> QueryResult<bool> {
    let n = diesel::update(
        sessions::table
            .find(id)
            .filter(sessions::idle_expires_at.gt(now))
            .filter(sessions::dbsc_challenge.eq(challenge)),
    )
    .set(sessions::dbsc_challenge.eq(None::<String>))
    .execute(conn)?;
    Ok(n == 1)
}

/// Binds the live, not yet bound session `id` to `key`, with its first bound cookie.
pub fn bind(
    conn: &mut DbConn,
    id: &str,
    key: &str,
    cookie_hash: &str,
    cookie_expires_at: i64,
    now: i64,
) -> QueryResult<bool> {
    let n = diesel::update(
        sessions::table.find(id).filter(sessions::idle_expires_at.gt(now)).filter(sessions::dbsc_key.is_null()),
    )
    .set((
        sessions::dbsc_key.eq(key),
        sessions::dbsc_cookie_hash.eq(cookie_hash),
        sessions::dbsc_cookie_expires_at.eq(cookie_expires_at),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Gives the live bound session `id` a new bound cookie (the old one stops working at once).
pub fn rotate_cookie(
    conn: &mut DbConn,
    id: &str,
    cookie_hash: &str,
    cookie_expires_at: i64,
    now: i64,
) -> QueryResult<bool> {
    let n = diesel::update(
        sessions::table.find(id).filter(sessions::idle_expires_at.gt(now)).filter(sessions::dbsc_key.is_not_null()),
    )
    .set((sessions::dbsc_cookie_hash.eq(cookie_hash), sessions::dbsc_cookie_expires_at.eq(cookie_expires_at)))
    .execute(conn)?;
    Ok(n == 1)
}

/// How many live sessions are device-bound.
pub fn count_bound(conn: &mut DbConn, now: i64) -> QueryResult<i64> {
    sessions::table
        .filter(sessions::idle_expires_at.gt(now))
        .filter(sessions::dbsc_key.is_not_null())
        .count()
        .get_result(conn)
}
