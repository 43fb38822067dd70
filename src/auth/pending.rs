//! The pending sign-in between the password and the second factor.
//!
//! After a right password, a user with a second factor gets **no session** yet: a row in
//! `pending_sign_ins` (the user, the password hash that was verified, `next`, an expiry 5 minutes
//! away), named by the hash of a random id that only this browser holds, in its own HttpOnly
//! cookie. The second step takes the row (single use) in the transaction that spends the code and
//! creates the session, so a code or a pending sign-in can serve at most one sign-in. A wrong code
//! does not use it up; the username's lock does.

use actix_session::Session;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::{HttpRequest, HttpResponse};

use crate::accounts::{self, AccountError, AuthMethod, PendingStart, SecondStep};
use crate::auth::codes::CodeProof;
use crate::db::{self, pending, throttle, users};
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
/// (`rehash`: a stronger hash of it, stored now): `303` to `/login/mfa` with the cookie.
/// `Err` when the account changed meanwhile (nothing was recorded).
pub(crate) async fn begin(
    state: &AppState,
    user: &users::User,
    rehash: Option<String>,
    next: Option<String>,
) -> Result<Result<HttpResponse, AccountError>, AppError> {
    let id = crate::util::random_alphanumeric(43);
    let id_hash = crate::util::sha256_hex(&id);
    let (now, user_id, verified) = (state.now_ms(), user.id.clone(), user.password_hash.clone());
    let started = db::run(&state.pool, move |conn| {
        let start = PendingStart {
            user_id: &user_id,
            verified_hash: &verified,
            rehash: rehash.as_deref(),
            id_hash: &id_hash,
            next: next.as_deref(),
            now,
            expires_at: now + LIFETIME_MS,
        };
        Ok(accounts::begin_pending_sign_in(conn, &start))
    })
    .await?;
    Ok(started.map(|()| {
        tracing::info!(username = %user.username, "password verified; waiting for the second factor");
        let mut res = crate::routes::see_other("/login/mfa");
        res.headers_mut().insert(
            actix_web::http::header::CACHE_CONTROL,
            actix_web::http::header::HeaderValue::from_static("no-store"),
        );
        // The cookie is well formed: a fixed name and an alphanumeric value.
        let _ = res.add_cookie(&cookie(state, id));
        res
    }))
}

/// This browser's pending sign-in while it lasts; `None` without one (or after it expired, when
/// its row is deleted).
pub async fn current(state: &AppState, req: &HttpRequest) -> Result<Option<PendingSignIn>, AppError> {
    let Some(id) = req.cookie(cookie_name(state)).map(|c| c.value().to_owned()).filter(|v| !v.is_empty()) else {
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
    Ok(found.map(|r| PendingSignIn {
        id_hash: r.id_hash,
        user_id: r.user_id,
        username: r.username,
        verified_hash: r.password_hash,
        next: r.next,
    }))
}

/// Ends a pending sign-in without signing in (it met the lock, or the account changed).
pub async fn discard(state: &AppState, pending: &PendingSignIn) -> Result<(), AppError> {
    let id_hash = pending.id_hash.clone();
    db::run(&state.pool, move |conn| Ok(pending::delete(conn, &id_hash)?)).await?;
    Ok(())
}

/// How [`finish`] ended.
pub(crate) enum Finished {
    /// Signed in: the answer to send.
    SignedIn(HttpResponse),
    /// The code was spent already (a replay, or a parallel request won): nothing was written.
    CodeNotAccepted,
    /// No sign-in after all (expired meanwhile, the account changed, cloud access required and
    /// unavailable): the answer to send.
    Refused(HttpResponse),
}

/// Finishes `pending` after its second factor: `proof` (an app or recovery code, spent in the
/// transaction that creates the session) or nothing (a factor the caller verified: a passkey
/// assertion). If the pending sign-in was used or expired meanwhile, or the account changed, nobody
/// is signed in and the answer is `303` to `/login` ([`Finished::Refused`]).
pub(crate) async fn finish(
    state: &AppState,
    req: &HttpRequest,
    session: &Session,
    pending: &PendingSignIn,
    proof: Option<CodeProof>,
    method: AuthMethod,
) -> Result<Finished, AppError> {
    let ip = state.client_ip(req);
    let user_id = pending.user_id.clone();
    let Some(user) = db::run(&state.pool, move |conn| Ok(users::find_by_id(conn, &user_id)?)).await? else {
        return Ok(Finished::Refused(to_login(state)));
    };
    let cloud_token = match crate::routes::login::cloud_at_sign_in(state, &user, &ip).await {
        Ok(token) => token,
        Err(_) => {
            discard(state, pending).await?;
            return Ok(Finished::Refused(to_login(state)));
        }
    };
    let token = crate::session::prepare(req, session, &user.id)?;
    let new_session = crate::routes::login::new_session(req, state, &token, &user, cloud_token, ip.clone(), method);
    let (p, key) = (pending.clone(), throttle::user_key(&pending.username));
    state.second_step_hold.pass().await;
    let finished = db::run(&state.pool, move |conn| {
        let step = SecondStep {
            pending_id_hash: &p.id_hash,
            user_id: &p.user_id,
            verified_hash: &p.verified_hash,
            proof: proof.as_ref(),
            throttle_key: &key,
            session: new_session,
        };
        Ok(accounts::finish_sign_in(conn, &step))
    })
    .await
    .map_err(|e| crate::session::abandoned(session, e))?;
    match finished {
        Ok((user, left)) => {
            crate::session::hand_over(token);
            tracing::info!(username = %user.username, client_ip = %ip, method = method.as_str(), "sign-in succeeded");
            crate::metrics::sign_in(crate::metrics::SignIn::Success);
            // After a recovery code (the phone is probably lost), with nowhere else asked for: the
            // security page, which says how many codes are left.
            let target = match (left, &pending.next) {
                (_, Some(next)) => next.clone(),
                (Some(left), None) => format!("/account/security?done=recovery-code-used&n={left}"),
                (None, None) => "/".to_owned(),
            };
            let mut res = crate::routes::see_other(&target);
            let _ = res.add_cookie(&removal(state));
            Ok(Finished::SignedIn(res))
        }
        Err(AccountError::CodeNotAccepted) => {
            crate::session::abandon(session);
            Ok(Finished::CodeNotAccepted)
        }
        Err(AccountError::PendingGone | AccountError::Changed) => {
            crate::session::abandon(session);
            discard(state, pending).await?;
            tracing::warn!(username = %pending.username, client_ip = %ip, "second step refused: the sign-in expired or the account changed");
            crate::metrics::sign_in(crate::metrics::SignIn::Refused);
            Ok(Finished::Refused(to_login(state)))
        }
        Err(e) => {
            crate::session::abandon(session);
            Err(e.into())
        }
    }
}

/// `303` to `/login`, forgetting the pending sign-in.
pub fn to_login(state: &AppState) -> HttpResponse {
    let mut res = crate::routes::see_other("/login");
    let _ = res.add_cookie(&removal(state));
    res
}
