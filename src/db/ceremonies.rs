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
    /// The browser that started it: a hash of its CSRF token (derived from its visitor cookie, or
    /// once signed in from its session), so another browser's answer does not find it.
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

/// How many ceremonies may wait for an answer at once.
#[derive(Clone, Copy, Debug)]
pub struct Waiting {
    /// Per browser: a further start replaces that browser's oldest (a browser crowds out only
    /// itself).
    pub per_browser: i64,
    /// Per client address, across its browsers: a bound on the table, refused beyond.
    pub per_address: i64,
}

/// Why a ceremony was not kept.
#[derive(Debug)]
pub enum NotKept {
    /// This address already has as many ceremonies waiting for an answer as it may.
    TooMany,
    Database(diesel::result::Error),
}

impl From<diesel::result::Error> for NotKept {
    fn from(e: diesel::result::Error) -> Self {
        NotKept::Database(e)
    }
}

/// Keeps a ceremony; returns its id. Expired ceremonies are deleted first (they are small and few:
/// each lives minutes, and an answered one is gone). A browser may have `waiting.per_browser`
/// waiting: beyond that its oldest is dropped, so one browser starting ceremonies in a loop only
/// ever holds a few and cannot use up its address's share. An address may have
/// `waiting.per_address` waiting (from many browsers), so that nobody can fill the table. (Counted
/// before the insert: parallel starts may pass the limits by a few. They bound the table; they are
/// not exact quotas.)
pub fn insert(conn: &mut DbConn, c: &NewCeremony<'_>, now: i64, waiting: Waiting) -> Result<String, NotKept> {
    prune(conn, now)?;
    let own: Vec<(String, i64)> = webauthn_ceremonies::table
        .filter(webauthn_ceremonies::binding.eq(c.binding))
        .select((webauthn_ceremonies::id, webauthn_ceremonies::expires_at))
        .order((webauthn_ceremonies::expires_at, webauthn_ceremonies::id))
        .load(conn)?;
    let over = (own.len() as i64 + 1 - waiting.per_browser.max(1)).max(0) as usize;
    let oldest: Vec<&str> = own.iter().take(over).map(|(id, _)| id.as_str()).collect();
    if !oldest.is_empty() {
        diesel::delete(webauthn_ceremonies::table.filter(webauthn_ceremonies::id.eq_any(oldest))).execute(conn)?;
    }
    let at_address: i64 =
        webauthn_ceremonies::table.filter(webauthn_ceremonies::client_ip.eq(c.client_ip)).count().get_result(conn)?;
    if at_address >= waiting.per_address {
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
