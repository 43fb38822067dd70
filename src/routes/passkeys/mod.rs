//! The passkey ceremonies' JSON endpoints, called by `static/passkeys.js` (internal: not part of the
//! contract). Each ceremony is two `POST`s: `…/start` answers the options for
//! `navigator.credentials.create/get` and the id of the ceremony kept on the server; `…/finish`
//! brings the browser's answer with that id. Both carry the page's CSRF token in `X-CSRF-Token`.
//!
//! - `/account/passkeys/register/…`: add a passkey to the signed-in user (a sensitive action);
//! - `/login/passkey/…`: sign in with a passkey alone (any user's: the passkey names its user);
//! - `/login/mfa/passkey/…`: the second step of a sign-in, after the password;
//! - `/reauth/passkey/…`: confirm who you are with one of your passkeys.
//!
//! A ceremony is bound to the browser that started it ([`crate::auth::ceremonies`]); another
//! browser's answer does not find it. Answers are
//! `{"redirect": PATH}` on success, `{"error": MESSAGE}` with a 4xx/5xx status otherwise (plus
//! `"redirect"` when the browser should go elsewhere, such as to sign in again).

mod reauth;
mod register;
mod sign_in;

pub use reauth::{reauth_finish, reauth_start};
pub use register::{register_finish, register_start};
pub use sign_in::{second_step_finish, second_step_start, sign_in_finish, sign_in_start};

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};

use crate::auth::ceremonies::{self, NotStarted};
use crate::auth::csrf::CsrfToken;
use crate::auth::passkeys::{CeremonyState, RelyingParty};
use crate::db::ceremonies::Purpose;
use crate::error::AppError;
use crate::signin::{Outcome, Refused};
use crate::state::AppState;

/// What the person is told when a passkey did not sign them in (whatever the reason: which one is in
/// the audit log).
const NOT_ACCEPTED: &str = "That passkey was not accepted. Try again, or use your password.";
const EXPIRED: &str = "This passkey request has expired or was already used. Please try again.";

/// An error answer: `{"error": …}` (and `"redirect"`) with its status.
#[derive(Debug)]
pub struct JsonError {
    status: StatusCode,
    message: String,
    redirect: Option<String>,
    retry_after: Option<i64>,
}

impl JsonError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), redirect: None, retry_after: None }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// Signed out meanwhile (the session or account ended): to the sign-in page.
    fn signed_out() -> Self {
        Self {
            redirect: Some("/login".into()),
            ..Self::new(StatusCode::UNAUTHORIZED, "Your session has ended. Please sign in again.")
        }
    }

    fn locked(until: i64, now: i64) -> Self {
        Self {
            retry_after: Some(super::login::retry_after_secs(until, now)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, super::login::locked_message(until, now))
        }
    }
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    redirect: Option<&'a str>,
}

impl ResponseError for JsonError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        res.insert_header((header::CACHE_CONTROL, "no-store"));
        if let Some(secs) = self.retry_after {
            res.insert_header((header::RETRY_AFTER, secs));
        }
        let mut res = res.json(ErrorBody { error: &self.message, redirect: self.redirect.as_deref() });
        res.extensions_mut().insert(crate::error::JsonAnswer);
        res
    }
}

impl From<AppError> for JsonError {
    /// Internal errors keep their status; the words are the error pages'.
    fn from(e: AppError) -> Self {
        let status = e.status_code();
        match e {
            AppError::Unauthenticated => Self::signed_out(),
            AppError::BadRequest(m) | AppError::Forbidden(m) => Self::new(status, m),
            AppError::NotFound => Self::new(status, "Not found."),
            AppError::Unavailable => {
                Self::new(status, "The dashboard cannot reach its database right now. Please try again in a moment.")
            }
            AppError::Busy | AppError::PayloadTooLarge => Self::new(status, "Please try again in a moment."),
            AppError::Internal(cause) => {
                tracing::error!(error = %format!("{cause:#}"), "internal error");
                Self::new(status, "Something went wrong. It has been logged; please try again.")
            }
        }
    }
}

impl From<anyhow::Error> for JsonError {
    fn from(e: anyhow::Error) -> Self {
        AppError::from(e).into()
    }
}

pub(super) type Answer = Result<HttpResponse, JsonError>;

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(serde_json::json!({ "redirect": to }))
}

/// A ceremony started: its id and the options for the browser.
#[derive(Serialize)]
struct Started<T> {
    ceremony: String,
    options: T,
}

/// A ceremony's answer from the browser.
#[derive(Deserialize)]
pub struct Finish<T> {
    ceremony: String,
    credential: T,
    /// Where to go once signed in or confirmed (a local path).
    #[serde(default)]
    next: Option<String>,
    /// At the second step: trust this browser from now on (the page's *Trust this browser* box).
    #[serde(default)]
    trust: bool,
}

#[derive(Deserialize)]
pub struct RegisterStart {
    #[serde(default)]
    name: String,
}

/// The relying party, or a `404` saying why passkeys are not available here (this server cannot
/// have them, or `DASHBOARD_MFA=off`).
fn relying_party(state: &AppState) -> Result<&RelyingParty, JsonError> {
    if !state.config.mfa.enabled() {
        return Err(JsonError::new(
            StatusCode::NOT_FOUND,
            "Second factors, passkeys included, are off on this server.",
        ));
    }
    state.passkeys.relying_party().map_err(|why| JsonError::new(StatusCode::NOT_FOUND, why))
}

fn internal(e: impl std::fmt::Display) -> JsonError {
    AppError::Internal(anyhow::anyhow!("passkeys: {e}")).into()
}

/// Keeps a ceremony for its answer, and answers the browser its id and `options`.
async fn started(
    visit: (&AppState, &str, &CsrfToken),
    purpose: (Purpose, Option<&str>),
    ceremony: &CeremonyState,
    options: impl Serialize,
) -> Answer {
    let (state, ip, csrf) = visit;
    match ceremonies::keep(state, purpose, (&ceremonies::binding(csrf), ip), ceremony).await {
        Ok(id) => Ok(HttpResponse::Ok().json(Started { ceremony: id, options })),
        Err(NotStarted::TooMany) => Err(JsonError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many passkey requests from this address are waiting. Please finish one, or wait a few minutes.",
        )),
        Err(NotStarted::Failed(e)) => Err(e.into()),
    }
}

/// A sign-in step's outcome as this API answers it: `{"redirect": …}` on (with the pending
/// sign-in's cookie gone once it is over), `429` for a lock, `401` with what the person is told for
/// a refusal.
fn outcome_answer(state: &AppState, outcome: Outcome) -> Answer {
    let message = match outcome {
        Outcome::SignedIn { next, trusted } => {
            let mut res = forgetting_pending(state, redirect(&next));
            if let Some(cookie) = trusted {
                res.add_cookie(&cookie).map_err(internal)?;
            }
            return Ok(res);
        }
        Outcome::Refused(Refused::StartAgain) => return Ok(forgetting_pending(state, redirect("/login"))),
        Outcome::Locked { until } => return Err(JsonError::locked(until, state.now_ms())),
        Outcome::SecondStep { .. } => return Err(internal("a passkey sign-in asked for a second step")),
        Outcome::Refused(Refused::CeremonyGone) => EXPIRED,
        Outcome::Refused(Refused::Invalid) => NOT_ACCEPTED,
        Outcome::Refused(Refused::WrongFactor) => "That passkey was not accepted. Please try again.",
    };
    Err(JsonError::new(StatusCode::UNAUTHORIZED, message))
}

fn forgetting_pending(state: &AppState, mut res: HttpResponse) -> HttpResponse {
    // The cookie is well formed: a fixed name and an empty value.
    let _ = res.add_cookie(&crate::signin::pending::removal(state));
    res
}
