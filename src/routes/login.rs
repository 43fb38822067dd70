//! `GET /login` and `POST /login`.

use actix_session::Session;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use askama::Template;
use secrecy::SecretString;
use serde::Deserialize;

use super::{refuse, render, see_other, Layout};
use crate::accounts::{self, AccountError, AuthMethod, CloudGrant, NewSession, PasswordSignIn};
use crate::auth::attempts::{self, Counter};
use crate::auth::csrf::CsrfToken;
use crate::auth::guard::EndedSession;
use crate::auth::password;
use crate::auth::{is_local_path, CurrentUser};
use crate::config::PASSWORD_MAX_LENGTH;
use crate::db::events::{self, NewEvent};
use crate::db::{self, users};
use crate::error::AppError;
use crate::state::{AppState, State};

/// The one message for every failed sign-in, whatever the reason.
pub const INVALID_CREDENTIALS: &str = "Invalid username or password.";
pub const SESSION_EXPIRED: &str = "Your session has expired. Please sign in again.";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    next: Option<String>,
    username: String,
    /// Offer "Sign in with a passkey" (where passkeys work: see [`AppState::passkeys_offered`]).
    passkeys: bool,
    /// Link to `/password-reset` (SMTP is configured).
    password_reset: bool,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

pub async fn form(
    req: HttpRequest,
    query: web::Query<LoginQuery>,
    csrf: CsrfToken,
    state: State,
) -> Result<HttpResponse, AppError> {
    let user = req.extensions().get::<CurrentUser>().cloned();
    let expired = user.is_none() && req.extensions().get::<EndedSession>().is_some();
    let mut layout = Layout::new(user, &csrf);
    if expired {
        layout.notice = Some(SESSION_EXPIRED.into());
    }
    let next = query.into_inner().next.filter(|n| is_local_path(n));
    let passkeys = state.passkeys_offered();
    let password_reset = state.mail.on;
    let page = LoginPage { layout, next, username: String::new(), passkeys, password_reset };
    let mut res = render(StatusCode::OK, &page)?;
    if expired {
        // Say it once: drop the dead cookie so a later visit to this page does not repeat it.
        res.add_cookie(&state.cookie.removal()).map_err(|e| AppError::Internal(e.into()))?;
    }
    Ok(res)
}

#[derive(Template)]
#[template(path = "error.html")]
struct LockedPage {
    status: u16,
    title: &'static str,
    message: String,
}

/// Cloud access was required at sign-in and could not be had (logged and recorded).
pub(crate) struct CloudRefused;

/// A gateway token for a user whose credentials were just verified (when cloud access is
/// configured; `None` when it is not, or unavailable but not required).
pub(crate) async fn cloud_at_sign_in(
    state: &AppState,
    user: &users::User,
    ip: &str,
) -> Result<Option<crate::cloud::Token>, CloudRefused> {
    let Some(cloud) = state.cloud.as_ref() else { return Ok(None) };
    match cloud.obtain(user.role()).await {
        Ok(token) => Ok(Some(token)),
        Err(e) if cloud.required => {
            tracing::warn!(username = %user.username, client_ip = %ip, error = %e, "sign-in refused: cloud access unavailable");
            let event = NewEvent::new("sign_in_failed").user(&user.username).ip(ip).detail("cloud access unavailable");
            events::log(&state.pool, event).await;
            crate::metrics::sign_in(crate::metrics::SignIn::Refused);
            Err(CloudRefused)
        }
        Err(e) => {
            tracing::warn!(username = %user.username, error = %e, "cloud access unavailable at sign-in; will retry");
            Ok(None)
        }
    }
}

/// The session row a sign-in of `user` on this request creates.
pub(crate) fn new_session(
    req: &HttpRequest,
    state: &AppState,
    token: &crate::session::NewToken,
    user: &users::User,
    cloud_token: Option<crate::cloud::Token>,
    ip: String,
    auth_method: AuthMethod,
) -> NewSession {
    let cloud = cloud_token.zip(state.cloud.as_ref()).map(|(t, cloud)| CloudGrant {
        sealed_token: cloud.seal(&token.row.public_id, &t.access_token),
        role: user.role().as_str().to_owned(),
        expires_at: t.expires_at,
    });
    let user_agent = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    NewSession {
        token: token.row.clone(),
        ip,
        user_agent,
        cloud,
        timeouts: state.config.timeouts,
        now: state.now_ms(),
        auth_method,
    }
}

/// The form again with the one message for every failed sign-in.
pub(crate) fn invalid(
    state: &AppState,
    csrf: &CsrfToken,
    next: Option<String>,
    username: String,
) -> Result<HttpResponse, AppError> {
    let (passkeys, password_reset) = (state.passkeys_offered(), state.mail.on);
    refuse(StatusCode::UNAUTHORIZED, Layout::new(None, csrf), INVALID_CREDENTIALS, |layout| LoginPage {
        layout,
        next,
        username,
        passkeys,
        password_reset,
    })
}

pub(crate) fn locked(until: i64, now: i64) -> Result<HttpResponse, AppError> {
    let page = LockedPage { status: 429, title: "Too many failed sign-ins", message: locked_message(until, now) };
    let mut res = render(StatusCode::TOO_MANY_REQUESTS, &page)?;
    res.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(retry_after_secs(until, now)));
    Ok(res)
}

/// What a locked-out person is told: how long to wait, in whole minutes.
pub(crate) fn locked_message(until: i64, now: i64) -> String {
    let minutes = ((until - now) as f64 / 60_000.0).ceil().max(1.0);
    format!(
        "Too many failed sign-ins for this account or from this address. Please wait {minutes} minute{} and try again.",
        if minutes == 1.0 { "" } else { "s" }
    )
}

/// `Retry-After` for a lock that ends at `until`.
pub(crate) fn retry_after_secs(until: i64, now: i64) -> i64 {
    ((until - now) / 1000).max(1)
}

pub async fn submit(
    req: HttpRequest,
    form: web::Form<LoginForm>,
    session: Session,
    csrf: CsrfToken,
    state: State,
) -> Result<HttpResponse, AppError> {
    let LoginForm { username, password, next } = form.into_inner();
    let ip = state.client_ip(&req);
    let next = next.filter(|n| is_local_path(n));
    let shown_username: String = username.trim().chars().take(64).collect();
    let counters = [Counter::user(&state, &username), Counter::ip(&state, &ip)];
    state.hasher.check_room(&ip).map_err(anyhow::Error::new)?;

    // An attempt is reserved on the username's and the address's counters before anything is
    // hashed; at the limit (or while locked) nothing is, whatever the name, existing or not.
    // The account (if any) is read in the same database call.
    let name = users::normalize_username(&username).ok();
    // (With the user's passkey count: whether a second step follows is decided after the password.)
    let reserved = attempts::reserve_then(&state, &counters, move |conn| match &name {
        Some(name) => match users::find_by_username_with_passkeys(conn, name)? {
            Some((user, passkeys)) => Ok((Some(user), passkeys)),
            None => Ok((None, 0)),
        },
        None => Ok((None, 0)),
    })
    .await?;
    let (user, passkeys) = match reserved {
        Ok(found) => found,
        Err(until) => {
            tracing::warn!(username = %shown_username, client_ip = %ip, "sign-in refused: locked out");
            crate::metrics::sign_in(crate::metrics::SignIn::Locked);
            return locked(until, state.now_ms());
        }
    };

    // Over-long passwords are refused before any hashing; unknown users still cost one verification
    // (against a dummy hash) so that timing does not tell them apart from known ones.
    let too_long = password.chars().count() > PASSWORD_MAX_LENGTH;
    let secret = SecretString::from(password);
    let verified = match too_long {
        true => false,
        false => match state.hasher.verify(secret.clone(), user.as_ref().map(|u| u.password_hash.clone()), &ip).await {
            Ok(verified) => verified,
            Err(e) => {
                // Not checked (the hashing queue is full): the attempt does not count.
                attempts::release(&state, &counters).await?;
                return Err(e.into());
            }
        },
    };
    let user = match user {
        Some(user) if verified && !user.is_disabled() => user,
        _ => {
            tracing::warn!(username = %shown_username, client_ip = %ip, "sign-in failed");
            crate::metrics::sign_in(crate::metrics::SignIn::Wrong);
            let event = NewEvent::new("sign_in_failed").user(&shown_username).ip(&ip);
            if let Some(what) = attempts::fail(&state, &counters, event).await? {
                tracing::warn!(username = %shown_username, client_ip = %ip, locked = what, "sign-in locked out");
            }
            return invalid(&state, &csrf, next, shown_username);
        }
    };
    let user_key = counters[0].key.clone();

    // Hashes made with weaker parameters than today's are upgraded while we hold the password.
    let rehash =
        if password::needs_rehash(&user.password_hash) { Some(state.hasher.hash(secret, &ip).await?) } else { None };

    // A user with a second factor: the password step is done, the session waits for the second
    // (no session row before it). The answer to a wrong password above never says whether there is one.
    if state.config.mfa.enabled() && (user.totp_secret.is_some() || passkeys > 0) {
        attempts::release(&state, &counters).await?; // not a guess; the username's failures stay counted
        return match crate::auth::pending::begin(&state, &user, rehash, next.clone()).await? {
            Ok(res) => Ok(res),
            Err(_) => {
                let event = NewEvent::new("sign_in_failed")
                    .user(&user.username)
                    .ip(&ip)
                    .detail("the account changed meanwhile");
                attempts::fail(&state, &counters[..1], event).await?;
                invalid(&state, &csrf, next, shown_username)
            }
        };
    }

    // Cloud access: only now that the password is verified (no amplification by wrong guesses).
    let cloud_token = match cloud_at_sign_in(&state, &user, &ip).await {
        Ok(token) => token,
        Err(CloudRefused) => {
            attempts::release(&state, &counters).await?; // the password was right
            return invalid(&state, &csrf, next, shown_username);
        }
    };
    let token = crate::session::prepare(&req, &session, &user.id)?;
    let session_row = new_session(&req, &state, &token, &user, cloud_token, ip.clone(), AuthMethod::Password);
    let sign_in = PasswordSignIn {
        user_id: user.id.clone(),
        verified_hash: user.password_hash.clone(),
        rehash,
        throttle_key: user_key,
        // The password was right: this attempt was not a guess (given back by the same transaction).
        address_key: Some(counters[1].key.clone()),
        session: session_row,
    };
    match db::run(&state.pool, move |conn| Ok(accounts::sign_in(conn, &sign_in)))
        .await
        .map_err(|e| crate::session::abandoned(&session, e))?
    {
        Ok(_) => {
            crate::session::hand_over(token);
            tracing::info!(username = %user.username, client_ip = %ip, "sign-in succeeded");
            crate::metrics::sign_in(crate::metrics::SignIn::Success);
            Ok(see_other(next.as_deref().unwrap_or("/")))
        }
        Err(AccountError::Changed) => {
            // Reset or disabled while the password was being checked: that check no longer holds.
            crate::session::abandon(&session);
            let event =
                NewEvent::new("sign_in_failed").user(&user.username).ip(&ip).detail("the account changed meanwhile");
            attempts::fail(&state, &counters[..1], event).await?;
            tracing::warn!(username = %user.username, client_ip = %ip, "sign-in refused: the account changed meanwhile");
            crate::metrics::sign_in(crate::metrics::SignIn::Refused);
            invalid(&state, &csrf, next, shown_username)
        }
        Err(e) => {
            crate::session::abandon(&session);
            Err(e.into())
        }
    }
}
