//! The `account_tokens` table: one-time links that act on an account (an invitation, a password
//! reset). Only a hash of the token is stored; taking one deletes it, so it works once.

use diesel::prelude::*;

use super::schema::account_tokens;
use super::DbConn;

/// What a link is for: a token answers only for its own purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Set the first password of an account an admin created without one.
    Invitation,
    /// Set a new password without the old one.
    PasswordReset,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Invitation => "invitation",
            Purpose::PasswordReset => "password_reset",
        }
    }
}

/// The stored form of a token.
pub fn hash(token: &str) -> String {
    crate::util::sha256_hex(token)
}

pub fn insert(
    conn: &mut DbConn,
    token_hash: &str,
    purpose: Purpose,
    user_id: &str,
    now: i64,
    expires_at: i64,
) -> QueryResult<usize> {
    diesel::insert_into(account_tokens::table)
        .values((
            account_tokens::token_hash.eq(token_hash),
            account_tokens::purpose.eq(purpose.as_str()),
            account_tokens::user_id.eq(user_id),
            account_tokens::created_at.eq(now),
            account_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)
}

/// The user a live token of `purpose` belongs to, without spending it (the form page).
pub fn peek(conn: &mut DbConn, token_hash: &str, purpose: Purpose, now: i64) -> QueryResult<Option<String>> {
    account_tokens::table
        .find(token_hash)
        .filter(account_tokens::purpose.eq(purpose.as_str()))
        .filter(account_tokens::expires_at.gt(now))
        .select(account_tokens::user_id)
        .first(conn)
        .optional()
}

/// Spends a live token of `purpose`, **once**: one conditional `DELETE … RETURNING`, so of two
/// requests racing with the same link one gets its user and the other nothing.
pub fn take(conn: &mut DbConn, token_hash: &str, purpose: Purpose, now: i64) -> QueryResult<Option<String>> {
    crate::on_backend!(conn, |c| diesel::delete(
        account_tokens::table
            .find(token_hash)
            .filter(account_tokens::purpose.eq(purpose.as_str()))
            .filter(account_tokens::expires_at.gt(now)),
    )
    .returning(account_tokens::user_id)
    .get_result(c)
    .optional())
}

/// Deletes every token of `purpose` of a user (the others die with the one used).
pub fn delete_for_user(conn: &mut DbConn, user_id: &str, purpose: Purpose) -> QueryResult<usize> {
    diesel::delete(
        account_tokens::table
            .filter(account_tokens::user_id.eq(user_id))
            .filter(account_tokens::purpose.eq(purpose.as_str())),
    )
    .execute(conn)
}

/// Deletes expired tokens (the pruner's housekeeping).
pub fn prune(conn: &mut DbConn, now: i64) -> QueryResult<usize> {
    diesel::delete(account_tokens::table.filter(account_tokens::expires_at.le(now))).execute(conn)
}
