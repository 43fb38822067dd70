//! The `webauthn_ceremonies` table: passkey ceremonies in progress (see [`crate::auth::passkeys`]).

use diesel::prelude::*;

use super::schema::webauthn_ceremonies;
use super::DbConn;

/// What a ceremony is for: the answer must be for the same purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Adding a passkey to the signed-in user.
    Register,
    /// Signing in with a passkey alone.
    SignIn,
    /// The second step of a sign-in, after the password.
    SecondStep,
    /// Confirming who you are before a sensitive action.
    Reauth,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Register => "register",
            Purpose::SignIn => "sign_in",
            Purpose::SecondStep => "second_step",
            Purpose::Reauth => "reauth",
        }
    }
}

/// A ceremony to keep.
pub struct NewCeremony<'a> {
    pub purpose: Purpose,
    /// See [`crate::routes::passkeys`]: a hash of the browser's CSRF token.
    pub binding: &'a str,
    pub user_id: Option<&'a str>,
    pub client_ip: &'a str,
    pub state: &'a str,
    pub expires_at: i64,
}

/// A ceremony taken for its answer.
#[derive(Debug, Queryable)]
pub struct Taken {
    pub user_id: Option<String>,
    pub state: String,
}

/// Why a ceremony was not kept.
#[derive(Debug)]
pub enum NotKept {
    /// This address already has `limit` ceremonies waiting for an answer.
    TooMany,
    Database(diesel::result::Error),
}

impl From<diesel::result::Error> for NotKept {
    fn from(e: diesel::result::Error) -> Self {
        NotKept::Database(e)
    }
}

/// Keeps a ceremony; returns its id. Expired ceremonies are deleted first (they are small and few:
/// each lives minutes, and an answered one is gone), and an address may have `limit` waiting, so
/// that starting ceremonies in a loop cannot fill the table. (Counted before the insert: parallel
/// starts may pass the limit by a few. It bounds the table; it is not an exact quota.)
pub fn insert(conn: &mut DbConn, c: &NewCeremony<'_>, now: i64, limit: i64) -> Result<String, NotKept> {
    prune(conn, now)?;
    let waiting: i64 =
        webauthn_ceremonies::table.filter(webauthn_ceremonies::client_ip.eq(c.client_ip)).count().get_result(conn)?;
    if waiting >= limit {
        return Err(NotKept::TooMany);
    }
    let id = crate::util::random_b64(18);
    diesel::insert_into(webauthn_ceremonies::table)
        .values((
            webauthn_ceremonies::id.eq(&id),
            webauthn_ceremonies::purpose.eq(c.purpose.as_str()),
            webauthn_ceremonies::binding.eq(c.binding),
            webauthn_ceremonies::user_id.eq(c.user_id),
            webauthn_ceremonies::client_ip.eq(c.client_ip),
            webauthn_ceremonies::state.eq(c.state),
            webauthn_ceremonies::expires_at.eq(c.expires_at),
        ))
        .execute(conn)?;
    Ok(id)
}

/// Takes the ceremony `id` for its answer, **once**: one conditional `DELETE … RETURNING`, so of two
/// answers racing (a replay), one gets it and the other nothing. Only a ceremony of this browser
/// (`binding`), for `purpose`, and not expired by `now` is taken; another browser's is left alone.
pub fn take(conn: &mut DbConn, id: &str, binding: &str, purpose: Purpose, now: i64) -> QueryResult<Option<Taken>> {
    diesel::delete(
        webauthn_ceremonies::table
            .find(id)
            .filter(webauthn_ceremonies::binding.eq(binding))
            .filter(webauthn_ceremonies::purpose.eq(purpose.as_str()))
            .filter(webauthn_ceremonies::expires_at.gt(now)),
    )
    .returning((webauthn_ceremonies::user_id, webauthn_ceremonies::state))
    .get_result(conn)
    .optional()
}

/// Deletes expired ceremonies (the pruner's housekeeping).
pub fn prune(conn: &mut DbConn, now: i64) -> QueryResult<usize> {
    diesel::delete(webauthn_ceremonies::table.filter(webauthn_ceremonies::expires_at.le(now))).execute(conn)
}
