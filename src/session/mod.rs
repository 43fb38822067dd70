//! Database-backed sessions: the actix-session store, the cookie, what a request knows of its
//! session, and the pruner.

pub mod context;
pub mod cookie;
pub mod lookup;
pub mod pruner;
pub mod store;

pub use cookie::SessionCookie;
pub use store::{DbSessionStore, Timeouts};

use actix_identity::Identity;
use actix_session::Session;
use actix_web::{HttpMessage, HttpRequest};
use secrecy::SecretString;

use crate::db::users::Role;
use crate::error::AppError;
use crate::util::{random_alphanumeric, random_b64, sha256_hex};

/// The signed-in session of a request, as the store loaded it from the row and its user (once per
/// request; the guard puts it into the request).
#[derive(Clone, Debug)]
pub struct CurrentUser {
    pub user_id: String,
    pub username: String,
    pub role: Role,
    /// The public id (never the token).
    pub session_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub absolute_expires_at: Option<i64>,
    /// Sign-ins from new devices this session has yet to dismiss (every page shows them).
    pub notices: Vec<crate::accounts::NewDeviceNotice>,
    /// When it last authenticated (sign-in, `/reauth`) or did a sensitive action (epoch ms).
    pub authenticated_at: i64,
    /// How it last authenticated (at sign-in, how it signed in).
    pub authenticated_with: crate::accounts::AuthMethod,
    /// Whether the user has the authenticator app on, and at least one passkey.
    pub has_totp: bool,
    pub has_passkey: bool,
    /// Whether second factors are on at all (`DASHBOARD_MFA` is not `off`; set by the policy
    /// middleware), for the pages' navigation.
    pub second_factors_on: bool,
    /// The session's CSRF token, kept with its row (see `auth::csrf`).
    pub csrf: SessionCsrf,
    /// The path of this request (set by the extractor), so the navigation can mark the current page.
    pub path: String,
    /// For a device-bound session, its current bound cookie (see `auth::dbsc`).
    pub bound: Option<BoundCookie>,
}

/// A device-bound session's current bound cookie: its hash and when it stops working.
#[derive(Clone, Debug)]
pub struct BoundCookie {
    pub cookie_hash: String,
    pub expires_at: i64,
}

/// A signed-in session's CSRF token as its row keeps it (empty for a row from before rows kept
/// one). `Debug` does not show it.
#[derive(Clone, Default)]
pub struct SessionCsrf(pub String);

impl std::fmt::Debug for SessionCsrf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionCsrf(..)")
    }
}

impl CurrentUser {
    /// Whether the user has a second factor (the app or a passkey).
    pub fn has_second_factor(&self) -> bool {
        self.has_totp || self.has_passkey
    }
}

/// A session about to be written by the accounts service: the token the cookie will carry (only its
/// hash goes to the row), the public id, its CSRF token, and actix-session's state for the `data`
/// column.
pub struct NewToken {
    token: SecretString,
    pub row: TokenRow,
}

/// What the row of a new token holds (never the token itself).
#[derive(Clone, Debug)]
pub struct TokenRow {
    pub token_hash: String,
    pub public_id: String,
    pub data: String,
    /// The session's CSRF token (random, 32 bytes as base64url), kept in its row.
    pub csrf_token: String,
}

/// Starts signing `user_id` in on this request (or renews the signed-in session's token): marks the
/// session as logged in through actix-identity and makes a new token. Nothing is stored yet: the
/// caller writes the row in its transaction, then calls [`hand_over`] — or [`abandon`] when the
/// transaction refused. The middleware deletes the request's previous session row, if any, so a
/// planted or earlier cookie dies here.
pub fn prepare(req: &HttpRequest, session: &Session, user_id: &str) -> Result<NewToken, AppError> {
    Identity::login(&req.extensions(), user_id.to_owned())
        .map_err(|e| AppError::Internal(anyhow::anyhow!("cannot start the session: {e}")))?;
    let data = serde_json::to_string(&*session.entries()).map_err(|e| AppError::Internal(e.into()))?;
    Ok(NewToken::new(data))
}

impl NewToken {
    /// A fresh random token (64 characters, ≈381 bits), public id and CSRF token, for a row holding
    /// `data`.
    pub fn new(data: String) -> Self {
        let token = random_alphanumeric(64);
        let token_hash = sha256_hex(&token);
        let row = TokenRow { token_hash, public_id: random_b64(16), data, csrf_token: random_b64(32) };
        NewToken { token: SecretString::from(token), row }
    }

    /// The token itself (what the cookie carries).
    pub fn secret(&self) -> &SecretString {
        &self.token
    }
}

/// The signed-in session's row now has `token` (rotated in place by the accounts service): the
/// request's cookie gets it, through actix-identity's renewal. Before the rotation succeeded nothing
/// about the request's session changes, so a refusal or an error leaves the session as it was.
pub fn renewed(req: &HttpRequest, user_id: &str, token: NewToken) -> Result<(), AppError> {
    Identity::login(&req.extensions(), user_id.to_owned())
        .map_err(|e| AppError::Internal(anyhow::anyhow!("cannot renew the session: {e}")))?;
    hand_over(token);
    Ok(())
}

/// The row for `token` is written: the response's cookie carries it.
pub fn hand_over(token: NewToken) {
    context::set_issued(token.token);
}

/// The row was not written (the account changed meanwhile, or the session ended): the request is
/// signed out, and no session is stored.
pub fn abandon(session: &Session) {
    session.purge();
}

/// [`abandon`], for an error on the way: returns the error for the handler.
pub fn abandoned(session: &Session, error: anyhow::Error) -> AppError {
    abandon(session);
    error.into()
}
