//! `/password-reset` (ask for a link by mail) and `/password-reset/confirm` (use it). Both exist only
//! when SMTP is configured.
//!
//! Asking answers the same page, in the same time, whatever was typed: an unknown name, a disabled
//! account, one without an address and one that had its three mails this hour look exactly like one
//! that is mailed now (the mail itself goes later, from the outbox). Each request counts as an
//! attempt on the client address's sign-in counter, so one address cannot probe or flood for long.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use secrecy::SecretString;
use serde::Deserialize;

use super::links::{gone, Form, LinkPasswordForm, TokenQuery};
use super::{render, see_other, Layout};
use crate::accounts::{self, AccountError, AddressAttempt, LinkPassword, NewLink, ResetLookup, ResetRequested};
use crate::auth::attempts::{self, Counter};
use crate::auth::csrf::CsrfToken;
use crate::db;
use crate::db::tokens::Purpose;
use crate::error::AppError;
use crate::state::ClientIp;
use crate::state::State;
use crate::util::duration_ms;

/// Every answer to a request takes at least this long, so the time does not tell whether a mail was
/// written (that costs a few more statements).
pub const ANSWER_TIME: Duration = Duration::from_millis(250);

const FORM: Form = Form {
    heading: "Choose a new password",
    intro: "Your sessions end and you sign in again with it; your second factors stay.",
    button: "Set password",
    action: "/password-reset/confirm",
};

#[derive(Template)]
#[template(path = "password_reset.html")]
struct RequestPage {
    layout: Layout,
    sent: bool,
}

#[derive(Deserialize)]
pub struct RequestForm {
    #[serde(default)]
    username: String,
}

fn require_mail(state: &State) -> Result<(), AppError> {
    if state.mail.on {
        Ok(())
    } else {
        Err(AppError::NotFound)
    }
}

pub async fn form(csrf: CsrfToken, state: State) -> Result<HttpResponse, AppError> {
    require_mail(&state)?;
    render(StatusCode::OK, &RequestPage { layout: Layout::new(None, &csrf), sent: false })
}

pub async fn request(
    ip: ClientIp,
    form: web::Form<RequestForm>,
    csrf: CsrfToken,
    state: State,
) -> Result<HttpResponse, AppError> {
    require_mail(&state)?;
    let started = tokio::time::Instant::now();
    let typed = form.into_inner().username;
    let ip = ip.0;
    let counter = Counter::ip(&state, &ip);
    let lookup = ResetLookup::of(&typed);
    let link = state.mail.new_link();
    let new_link = NewLink::of(&link, true, state.now_ms());
    let address = AddressAttempt {
        ip: ip.clone(),
        key: counter.key.clone(),
        limit: counter.limit,
        window_ms: duration_ms(state.config.login_lockout),
    };
    let what = counter.what;
    // Reserved on the address's counter first (refused while it is locked); the service keeps the
    // attempt counted, in the same database call.
    let done = attempts::reserve_then(&state, std::slice::from_ref(&counter), move |conn| {
        match accounts::request_password_reset(conn, &lookup, &typed, &new_link, &address) {
            Ok((outcome, locked)) => {
                if locked {
                    crate::metrics::lockout(what);
                }
                Ok(outcome)
            }
            Err(AccountError::Database(e)) => Err(e),
            Err(_) => Ok(ResetRequested::NoSuchAccount),
        }
    })
    .await;
    tokio::time::sleep_until(started + ANSWER_TIME).await;
    match done? {
        Ok(outcome) => {
            tracing::info!(client_ip = %ip, outcome = outcome.describe(), "password reset asked for");
            render(StatusCode::OK, &RequestPage { layout: Layout::new(None, &csrf), sent: true })
        }
        Err(until) => {
            tracing::warn!(client_ip = %ip, "password reset refused: the address is locked");
            super::login::locked(until, state.now_ms())
        }
    }
}

pub async fn confirm_form(
    query: web::Query<TokenQuery>,
    csrf: CsrfToken,
    state: State,
) -> Result<HttpResponse, AppError> {
    require_mail(&state)?;
    let token = query.into_inner().token;
    let (t, now) = (token.clone(), state.now_ms());
    let user = db::run(&state.pool, move |conn| Ok(accounts::link_user(conn, &t, Purpose::PasswordReset, now)))
        .await?
        .map_err(gone)?;
    FORM.show(&csrf, token, user.username, state.config.password_min_length)
}

pub async fn confirm(
    ip: ClientIp,
    form: web::Form<LinkPasswordForm>,
    csrf: CsrfToken,
    state: State,
) -> Result<HttpResponse, AppError> {
    require_mail(&state)?;
    let LinkPasswordForm { token, new_password, confirm_password } = form.into_inner();
    let (t, now) = (token.clone(), state.now_ms());
    let user = db::run(&state.pool, move |conn| Ok(accounts::link_user(conn, &t, Purpose::PasswordReset, now)))
        .await?
        .map_err(gone)?;
    let min_length = state.config.password_min_length;
    if let Err(why) = accounts::check_new_password(&new_password, Some(&confirm_password), &user.username, min_length) {
        return FORM.again(&csrf, why, token, user.username, min_length);
    }
    let ip = ip.0;
    let new_hash = state.hasher.hash(SecretString::from(new_password), &ip).await?;
    state.mail.reset_hold.pass().await;
    let change = LinkPassword { token, user_id: user.id.clone(), new_hash, ip: ip.clone(), now: state.now_ms() };
    let ended = db::run(&state.pool, move |conn| Ok(accounts::reset_password(conn, &change))).await?.map_err(gone)?;
    tracing::info!(username = %user.username, client_ip = %ip, ended, "password reset through a mailed link");
    Ok(see_other("/login"))
}
