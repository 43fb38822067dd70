//! `GET /login` and `POST /login`.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{refuse, render, see_other, Layout};
use crate::auth::csrf::CsrfToken;
use crate::auth::guard::EndedSession;
use crate::auth::{is_local_path, CurrentUser};
use crate::error::AppError;
use crate::signin::{self, pending, Outcome, Refused, Visit};
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

pub async fn submit(visit: Visit, form: web::Form<LoginForm>) -> Result<HttpResponse, AppError> {
    let LoginForm { username, password, next } = form.into_inner();
    let next = next.filter(|n| is_local_path(n));
    let outcome = signin::with_password(&visit, &username, password, next.clone()).await?;
    match answer(&visit.state, outcome)? {
        Ok(res) => Ok(res),
        Err(_) => invalid(&visit.state, &visit.csrf, next, username.trim().chars().take(64).collect()),
    }
}

/// A sign-in step's outcome as the pages answer it: `303` on (to `next`, or to `/login/mfa` with
/// the pending sign-in's cookie), `429` for a lock, `303` to `/login` to start again. The pending
/// sign-in's cookie goes once it is over. `Err` for a refusal the caller answers with its own page.
pub(crate) fn answer(state: &AppState, outcome: Outcome) -> Result<Result<HttpResponse, Refused>, AppError> {
    let mut res = match outcome {
        Outcome::SignedIn { next, trusted } => {
            let mut res = see_other(&next);
            if let Some(cookie) = trusted {
                res.add_cookie(&cookie).map_err(|e| AppError::Internal(e.into()))?;
            }
            res
        }
        Outcome::SecondStep { cookie } => {
            let mut res = see_other("/login/mfa");
            res.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
            res.add_cookie(&cookie).map_err(|e| AppError::Internal(e.into()))?;
            return Ok(Ok(res));
        }
        Outcome::Locked { until } => locked(until, state.now_ms())?,
        Outcome::Refused(Refused::StartAgain) => return start_again(state).map(Ok),
        Outcome::Refused(other) => return Ok(Err(other)),
    };
    res.add_cookie(&pending::removal(state)).map_err(|e| AppError::Internal(e.into()))?;
    Ok(Ok(res))
}

/// `303` to `/login`, forgetting the pending sign-in.
pub(crate) fn start_again(state: &AppState) -> Result<HttpResponse, AppError> {
    let mut res = see_other("/login");
    res.add_cookie(&pending::removal(state)).map_err(|e| AppError::Internal(e.into()))?;
    Ok(res)
}
