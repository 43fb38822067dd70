//! `GET /login/mfa` and `POST /login/mfa`: the second step of a sign-in (an app code or a recovery
//! code; the passkey button for users with passkeys). Only the browser that passed the password
//! step has a pending sign-in ([`crate::auth::pending`]); anyone else is sent to `/login`. A wrong
//! code counts towards the username's lock like a wrong password (the same reserved counter).

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{render, Layout};
use crate::auth::attempts::{self, Counter};
use crate::auth::codes;
use crate::auth::csrf::CsrfToken;
use crate::auth::pending::{self, Finished, PendingSignIn};
use crate::db::events::NewEvent;
use crate::db::{self, factors, users};
use crate::error::AppError;
use crate::state::State;

#[derive(Template)]
#[template(path = "login_mfa.html")]
struct MfaPage {
    layout: Layout,
    has_totp: bool,
    has_passkeys: bool,
}

async fn page(
    state: &State,
    csrf: &CsrfToken,
    pending: &PendingSignIn,
    status: StatusCode,
    error: Option<&str>,
) -> Result<HttpResponse, AppError> {
    let id = pending.user_id.clone();
    let f = db::run(&state.pool, move |conn| Ok(factors::factors_of(conn, &id)?)).await?;
    let mut layout = Layout::new(None, csrf);
    layout.error = error.map(str::to_owned);
    render(status, &MfaPage { layout, has_totp: f.totp, has_passkeys: f.passkeys > 0 })
}

pub async fn form(req: HttpRequest, csrf: CsrfToken, state: State) -> Result<HttpResponse, AppError> {
    match pending::current(&state, &req).await? {
        Some(p) => page(&state, &csrf, &p, StatusCode::OK, None).await,
        None => Ok(pending::to_login(&state)),
    }
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
}

pub const WRONG_CODE: &str = "That code is not right. Enter the code your app shows now, or a recovery code.";

pub async fn submit(
    req: HttpRequest,
    session: Session,
    csrf: CsrfToken,
    form: web::Form<CodeForm>,
    state: State,
) -> Result<HttpResponse, AppError> {
    let Some(pending) = pending::current(&state, &req).await? else {
        return Ok(pending::to_login(&state));
    };
    let ip = state.client_ip(&req);
    let counters = [Counter::user(&state, &pending.username)];
    let id = pending.user_id.clone();
    let user = match attempts::reserve_then(&state, &counters, move |conn| users::find_by_id(conn, &id)).await? {
        Ok(Some(user)) => user,
        Ok(None) => {
            attempts::release(&state, &counters).await?;
            return Ok(pending::to_login(&state));
        }
        Err(until) => {
            // The lock ends the pending sign-in.
            pending::discard(&state, &pending).await?;
            tracing::warn!(username = %pending.username, client_ip = %ip, "second step refused: locked out");
            let mut res = super::login::locked(until, state.now_ms())?;
            let _ = res.add_cookie(&pending::removal(&state));
            return Ok(res);
        }
    };
    let why = match codes::check(&state.totp_seal, &user, &form.code, state.now_ms()) {
        None => "wrong code",
        Some(proof) => {
            let method = proof.method();
            match pending::finish(&state, &req, &session, &pending, Some(proof), method).await? {
                Finished::SignedIn(res) => return Ok(res),
                Finished::Refused(res) => {
                    attempts::release(&state, &counters).await?;
                    return Ok(res);
                }
                Finished::CodeNotAccepted => "code not accepted (used already, or not one of the user's)",
            }
        }
    };
    let event = NewEvent::new("second_factor_failed").user(&pending.username).ip(&ip).detail(why);
    let locked = attempts::fail(&state, &counters, event).await?;
    tracing::warn!(username = %pending.username, client_ip = %ip, why, locked = locked.is_some(), "second step failed");
    if locked.is_some() {
        pending::discard(&state, &pending).await?;
        let until = state.now_ms() + crate::util::duration_ms(state.config.login_lockout);
        let mut res = super::login::locked(until, state.now_ms())?;
        let _ = res.add_cookie(&pending::removal(&state));
        return Ok(res);
    }
    page(&state, &csrf, &pending, StatusCode::UNAUTHORIZED, Some(WRONG_CODE)).await
}
