//! The pending sign-in between the password and the second factor.
//!
//! After a right password, a user with a second factor gets **no session** yet: a row in
//! `pending_sign_ins` (the user, the password hash that was verified, `next`, an expiry 5 minutes
//! away), named by the hash of a random id in its own HttpOnly cookie, and **bound to the browser**
//! that typed the password (a hash of its CSRF token, which its visitor cookie gives): the cookie
//! copied into another browser, with that browser's own visitor cookie, finds nothing. The second
//! step takes the row (single use) in the transaction that spends the code and creates the session,
//! so a code or a pending sign-in can serve at most one sign-in. A wrong code does not use it up;
//! a lock does.

use actix_web::cookie::{Cookie, SameSite};
use subtle::ConstantTimeEq;

use super::Visit;
use crate::accounts::{self, AccountError, PendingStart};
use crate::db::{self, pending, users};
use crate::error::AppError;
use crate::state::AppState;

/// How long the second step may take.
pub const LIFETIME_MS: i64 = 5 * 60 * 1000;

/// A pending sign-in, as the second step reads it.
#[derive(Clone, Debug)]
pub struct PendingSignIn {
    pub id_hash: String,
    pub user_id: String,
    pub username: String,
    /// The stored password hash the password was verified against.
    pub verified_hash: String,
    pub next: Option<String>,
}

fn cookie_name(state: &AppState) -> &'static str {
    if state.cookie.secure() {
        "__Host-dashboard_signin"
    } else {
        "dashboard_signin"
    }
}

fn cookie(state: &AppState, value: String) -> Cookie<'static> {
    Cookie::build(cookie_name(state), value)
        .path("/")
        .http_only(true)
        .secure(state.cookie.secure())
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::milliseconds(LIFETIME_MS))
        .finish()
}

/// The cookie that makes the browser forget its pending sign-in.
pub fn removal(state: &AppState) -> Cookie<'static> {
    let mut c = cookie(state, String::new());
    c.make_removal();
    c
}

/// Starts the second step for `user`, whose password was just verified against their stored hash
/// (`rehash`: a stronger hash of it, stored now): the cookie that names it. `Err` when the account
/// changed meanwhile (nothing was recorded).
pub async fn begin(
    visit: &Visit,
    user: &users::User,
    rehash: Option<String>,
    next: Option<String>,
) -> Result<Result<Cookie<'static>, AccountError>, AppError> {
    let state = &visit.state;
    let id = crate::util::random_alphanumeric(43);
    let id_hash = crate::util::sha256_hex(&id);
    let (now, user_id, verified, binding) =
        (state.now_ms(), user.id.clone(), user.password_hash.clone(), visit.browser.clone());
    let started = db::run(&state.pool, move |conn| {
        let start = PendingStart {
            user_id: &user_id,
            verified_hash: &verified,
            rehash: rehash.as_deref(),
            id_hash: &id_hash,
            binding: &binding,
            next: next.as_deref(),
            now,
            expires_at: now + LIFETIME_MS,
        };
        Ok(accounts::begin_pending_sign_in(conn, &start))
    })
    .await?;
    Ok(started.map(|()| {
        tracing::info!(username = %user.username, "password verified; waiting for the second factor");
        cookie(state, id)
    }))
}

/// This browser's pending sign-in while it lasts; `None` without one, after it expired (its row is
/// then deleted), or when the cookie names one that another browser started (left alone: the
/// browser it belongs to can still finish it).
pub async fn current(visit: &Visit) -> Result<Option<PendingSignIn>, AppError> {
    let state = &visit.state;
    let Some(id) = visit.req.cookie(cookie_name(state)).map(|c| c.value().to_owned()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let (id_hash, now) = (crate::util::sha256_hex(&id), state.now_ms());
    let found = db::run(&state.pool, move |conn| {
        let row = pending::find(conn, &id_hash)?;
        if row.as_ref().is_some_and(|r| r.expires_at <= now) {
            pending::delete(conn, &id_hash)?;
            return Ok(None);
        }
        Ok(row)
    })
    .await?;
    let Some(row) = found else { return Ok(None) };
    if !bool::from(row.binding.as_bytes().ct_eq(visit.browser.as_bytes())) {
        tracing::warn!(username = %row.username, client_ip = %visit.ip, "a pending sign-in was presented by another browser");
        return Ok(None);
    }
    Ok(Some(PendingSignIn {
        id_hash: row.id_hash,
        user_id: row.user_id,
        username: row.username,
        verified_hash: row.password_hash,
        next: row.next,
    }))
}

/// Ends a pending sign-in without signing in (it met a lock, or the account changed).
pub async fn discard(state: &AppState, pending: &PendingSignIn) -> Result<(), AppError> {
    let id_hash = pending.id_hash.clone();
    db::run(&state.pool, move |conn| Ok(pending::delete(conn, &id_hash)?)).await?;
    Ok(())
}
