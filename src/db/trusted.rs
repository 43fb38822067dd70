//! The `trusted_browsers` table: browsers a user trusts to skip the second factor at sign-in.

use diesel::prelude::*;

use super::schema::trusted_browsers;
use super::DbConn;

/// A trusted browser as the security page lists it.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = trusted_browsers)]
pub struct TrustedBrowser {
    pub id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_used_at: Option<i64>,
    pub user_agent: String,
    pub ip: String,
}

/// A browser to trust.
pub struct NewTrusted<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub token_hash: &'a str,
    pub now: i64,
    pub expires_at: i64,
    pub user_agent: &'a str,
    pub ip: &'a str,
}

pub fn insert(conn: &mut DbConn, t: &NewTrusted<'_>) -> QueryResult<usize> {
    diesel::insert_into(trusted_browsers::table)
        .values((
            trusted_browsers::id.eq(t.id),
            trusted_browsers::user_id.eq(t.user_id),
            trusted_browsers::token_hash.eq(t.token_hash),
            trusted_browsers::created_at.eq(t.now),
            trusted_browsers::expires_at.eq(t.expires_at),
            trusted_browsers::user_agent.eq(t.user_agent),
            trusted_browsers::ip.eq(t.ip),
        ))
        .execute(conn)
}

/// The id of `user_id`'s live trusted browser with this token hash, if there is one.
pub fn find_live(conn: &mut DbConn, user_id: &str, token_hash: &str, now: i64) -> QueryResult<Option<String>> {
    trusted_browsers::table
        .filter(trusted_browsers::token_hash.eq(token_hash))
        .filter(trusted_browsers::user_id.eq(user_id))
        .filter(trusted_browsers::expires_at.gt(now))
        .select(trusted_browsers::id)
        .first(conn)
        .optional()
}

/// Records a use of the trusted browser `id`.
pub fn touch(conn: &mut DbConn, id: &str, now: i64) -> QueryResult<usize> {
    diesel::update(trusted_browsers::table.find(id)).set(trusted_browsers::last_used_at.eq(now)).execute(conn)
}

/// `user_id`'s live trusted browsers, newest first.
pub fn list_live(conn: &mut DbConn, user_id: &str, now: i64) -> QueryResult<Vec<TrustedBrowser>> {
    trusted_browsers::table
        .filter(trusted_browsers::user_id.eq(user_id))
        .filter(trusted_browsers::expires_at.gt(now))
        .order((trusted_browsers::created_at.desc(), trusted_browsers::id))
        .select(TrustedBrowser::as_select())
        .load(conn)
}

/// Forgets `user_id`'s trusted browser `id`; returns how many were forgotten (0: not theirs, or
/// gone).
pub fn delete_own(conn: &mut DbConn, user_id: &str, id: &str) -> QueryResult<usize> {
    diesel::delete(trusted_browsers::table.find(id).filter(trusted_browsers::user_id.eq(user_id))).execute(conn)
}

/// Forgets every trusted browser of a user; returns how many.
pub fn delete_for_user(conn: &mut DbConn, user_id: &str) -> QueryResult<usize> {
    diesel::delete(trusted_browsers::table.filter(trusted_browsers::user_id.eq(user_id))).execute(conn)
}

/// Deletes the trusted browsers whose trust has run out.
pub fn prune(conn: &mut DbConn, now: i64) -> QueryResult<usize> {
    diesel::delete(trusted_browsers::table.filter(trusted_browsers::expires_at.le(now))).execute(conn)
}
