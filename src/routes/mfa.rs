//! `GET /login/mfa` and `POST /login/mfa`: the second step of a sign-in (an app code or a recovery
//! code; the passkey button for users with passkeys). Only the browser that passed the password
//! step has a pending sign-in ([`crate::signin::pending`]); anyone else is sent to `/login`. A wrong
//! code counts towards the username's lock like a wrong password (the same reserved counter).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{render, Layout};
use crate::db::{self, factors};
use crate::error::AppError;
use crate::signin::{self, pending, PendingSignIn, Visit};

#[derive(Template)]
#[template(path = "login_mfa.html")]
struct MfaPage {
    layout: Layout,
    has_totp: bool,
    has_passkeys: bool,
    /// How long *Trust this browser* lasts (`0`: not offered).
    trust_days: u32,
}

async fn page(
    visit: &Visit,
    pending: &PendingSignIn,
    status: StatusCode,
    error: Option<&str>,
) -> Result<HttpResponse, AppError> {
    let id = pending.user_id.clone();
    let f = db::run(&visit.state.pool, move |conn| Ok(factors::factors_of(conn, &id)?)).await?;
    let mut layout = Layout::new(None, &visit.csrf);
    layout.error = error.map(str::to_owned);
    render(
        status,
        &MfaPage {
            layout,
            has_totp: f.totp,
            has_passkeys: f.passkeys > 0,
            trust_days: visit.state.config.trust_browser_days,
        },
    )
}

pub async fn form(visit: Visit) -> Result<HttpResponse, AppError> {
    match pending::current(&visit).await? {
        Some(p) => page(&visit, &p, StatusCode::OK, None).await,
        None => super::login::start_again(&visit.state),
    }
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
    /// The *Trust this browser* box (`on` when ticked).
    #[serde(default)]
    trust_browser: Option<String>,
}

pub const WRONG_CODE: &str = "That code is not right. Enter the code your app shows now, or a recovery code.";

pub async fn submit(visit: Visit, form: web::Form<CodeForm>) -> Result<HttpResponse, AppError> {
    let Some(pending) = pending::current(&visit).await? else {
        return super::login::start_again(&visit.state);
    };
    let outcome = signin::with_code(&visit, &pending, &form.code, form.trust_browser.is_some()).await?;
    match super::login::answer(&visit.state, outcome)? {
        Ok(res) => Ok(res),
        Err(_) => page(&visit, &pending, StatusCode::UNAUTHORIZED, Some(WRONG_CODE)).await,
    }
}
