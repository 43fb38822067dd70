//! `GET /reauth` and `POST /reauth`: confirm who you are before a sensitive action (the password,
//! plus an app code or a recovery code when the user has the app). Wrong attempts count towards the
//! username's lock through the same atomic counter as sign-in; the lock is shared.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use secrecy::SecretString;
use serde::Deserialize;

use super::{render, see_other, Layout};
use crate::accounts::AuthMethod;
use crate::auth::attempts::{self, Counter};
use crate::auth::codes;
use crate::auth::csrf::CsrfToken;
use crate::auth::{local_next, reauth, CurrentUser};
use crate::config::PASSWORD_MAX_LENGTH;
use crate::db::events::NewEvent;
use crate::db::{self, factors, users};
use crate::error::AppError;
use crate::state::ClientIp;
use crate::state::State;

#[derive(Template)]
#[template(path = "reauth.html")]
struct ReauthPage {
    layout: Layout,
    next: String,
    /// Where "Cancel" leads: `next`, a local path checked in Rust.
    cancel: String,
    username: String,
    /// Ask for a code: the user has a second factor, so the password alone does not do.
    wants_code: bool,
    /// The code may be the app's (else only a recovery code).
    has_app: bool,
    has_passkeys: bool,
}

#[derive(Deserialize)]
pub struct ReauthQuery {
    next: Option<String>,
}

async fn page(
    state: &State,
    user: CurrentUser,
    csrf: &CsrfToken,
    status: StatusCode,
    next: String,
    error: Option<String>,
) -> Result<HttpResponse, AppError> {
    let id = user.user_id.clone();
    let factors = if state.config.mfa.enabled() {
        db::run(&state.pool, move |conn| Ok(factors::factors_of(conn, &id)?)).await?
    } else {
        factors::Factors::default()
    };
    let username = user.username.clone();
    let mut layout = Layout::new(Some(user), csrf);
    layout.error = error;
    render(
        status,
        &ReauthPage {
            layout,
            cancel: next.clone(),
            next,
            username,
            wants_code: factors.any(),
            has_app: factors.totp,
            has_passkeys: factors.passkeys > 0,
        },
    )
}

pub async fn form(
    user: CurrentUser,
    csrf: CsrfToken,
    query: web::Query<ReauthQuery>,
    state: State,
) -> Result<HttpResponse, AppError> {
    page(&state, user, &csrf, StatusCode::OK, local_next(query.into_inner().next), None).await
}

#[derive(Deserialize)]
pub struct ReauthForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
    next: Option<String>,
}

pub async fn submit(
    ip: ClientIp,
    user: CurrentUser,
    csrf: CsrfToken,
    form: web::Form<ReauthForm>,
    state: State,
) -> Result<HttpResponse, AppError> {
    let ReauthForm { password, code, next } = form.into_inner();
    let next = local_next(next);
    let ip = ip.0;
    let counters = [Counter::user(&state, &user.username)];
    state.hasher.check_room(&ip).map_err(anyhow::Error::new)?;
    let id = user.user_id.clone();
    let stored = match attempts::reserve_then(&state, &counters, move |conn| users::find_by_id(conn, &id)).await? {
        Ok(stored) => stored.ok_or(AppError::Unauthenticated)?,
        Err(until) => {
            tracing::warn!(username = %user.username, session = %user.session_id, "re-authentication refused: locked out");
            return super::login::locked(until, state.now_ms());
        }
    };
    let password_ok = password.chars().count() <= PASSWORD_MAX_LENGTH && {
        match state.hasher.verify(SecretString::from(password), Some(stored.password_hash.clone()), &ip).await {
            Ok(ok) => ok,
            Err(e) => {
                attempts::release(&state, &counters).await?; // not checked: does not count
                return Err(e.into());
            }
        }
    };
    // A user with a second factor proves it too: an app code or a recovery code (or a passkey,
    // through its own ceremony), spent only after a right password. The password alone never
    // re-authenticates such a user.
    let wants_code = state.config.mfa.enabled() && (stored.totp_secret.is_some() || user.has_passkey);
    let mut refusal = (!password_ok).then_some("wrong password");
    let mut recorded = false;
    if password_ok && wants_code {
        // Spent, and the window restarted, in one transaction.
        if let Some(proof) = codes::check(&state.totp_seal, &stored, &code, state.now_ms()) {
            state.reauth_hold.pass().await;
            recorded = reauth::record_with_code(&state, &user, proof, &ip).await?;
        }
        if !recorded {
            refusal = Some(if code.trim().is_empty() { "no code" } else { "wrong or used code" });
        }
    }
    if let Some(why) = refusal {
        let event = NewEvent::new("reauth_failed").user(&user.username).session(&user.session_id).ip(&ip).detail(why);
        let locked = attempts::fail(&state, &counters, event).await?;
        tracing::warn!(username = %user.username, session = %user.session_id, why, locked = locked.is_some(), "re-authentication failed");
        let message = if wants_code { "The password or the code is not right." } else { "The password is not right." };
        return page(&state, user, &csrf, StatusCode::UNAUTHORIZED, next, Some(message.into())).await;
    }
    attempts::release(&state, &counters).await?;
    if !recorded {
        reauth::record_reauthentication(&state, &user, AuthMethod::Password).await?;
    }
    Ok(see_other(&next))
}
