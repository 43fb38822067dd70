//! `/account/…`: the user's own sessions and password.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use secrecy::SecretString;
use serde::Deserialize;

use super::filters;
use super::views::SessionView;
use super::{refuse, render, see_other, Done, Layout};
use crate::accounts::{self, AccountError, Dismiss, Ending, OwnPasswordChange};
use crate::auth::attempts::{self, Counter};
use crate::auth::csrf::CsrfToken;
use crate::auth::CurrentUser;
use crate::db::events::NewEvent;
use crate::db::{self, sessions, users};
use crate::error::AppError;
use crate::state::State;

#[derive(Template)]
#[template(path = "account_sessions.html")]
struct SessionsPage {
    layout: Layout,
    sessions: Vec<SessionView>,
}

pub async fn sessions(
    user: CurrentUser,
    csrf: CsrfToken,
    done: web::Query<Done>,
    state: State,
) -> Result<HttpResponse, AppError> {
    let (user_id, now) = (user.user_id.clone(), state.now_ms());
    let rows = db::run(&state.pool, move |conn| Ok(sessions::list_live(conn, now, Some(&user_id))?)).await?;
    let sessions = rows.iter().map(|(row, name)| SessionView::new(row, name, &user.session_id, now)).collect();
    let mut layout = Layout::new(Some(user), &csrf);
    layout.success = done.message();
    render(StatusCode::OK, &SessionsPage { layout, sessions })
}

/// Ends one of the user's own sessions; another user's id (or an unknown one) is a `404`.
pub async fn revoke(user: CurrentUser, id: web::Path<String>, state: State) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    if id == user.session_id {
        // The current session ends through "Sign out", which also removes the cookie.
        return Err(AppError::BadRequest("Use “Sign out” to end the session you are using.".into()));
    }
    let (target, owner) = (id.clone(), user.user_id.clone());
    db::run(&state.pool, move |conn| Ok(accounts::end_session(conn, &target, Ending::Own { user_id: &owner })))
        .await??;
    tracing::info!(username = %user.username, session = %user.session_id, ended = %id, "user ended one of their sessions");
    if user.notices.iter().any(|n| n.session == id) {
        // Ended from its new-device notice: that notice has done its job.
        let (owner, current) = (user.user_id.clone(), user.session_id.clone());
        db::run(&state.pool, move |conn| Ok(accounts::dismiss_notices(conn, &owner, &current, Dismiss::About(&id))))
            .await??;
    }
    Ok(see_other("/account/sessions?done=session-ended"))
}

#[derive(Deserialize)]
pub struct DismissForm {
    /// The time of the newest notice the page showed: newer ones stay.
    seen: i64,
}

/// Dismisses this session's new-device notices (those the page showed), then back to that page.
pub async fn dismiss_notices(
    req: HttpRequest,
    user: CurrentUser,
    form: web::Form<DismissForm>,
    state: State,
) -> Result<HttpResponse, AppError> {
    let (owner, current, seen) = (user.user_id.clone(), user.session_id.clone(), form.seen);
    db::run(&state.pool, move |conn| Ok(accounts::dismiss_notices(conn, &owner, &current, Dismiss::UpTo(seen))))
        .await??;
    Ok(see_other(&same_site_page(&req).unwrap_or_else(|| "/".to_owned())))
}

/// The path (and query) of the page a form was sent from, when the browser said (`Referer`, which
/// `Referrer-Policy: same-origin` sends only to us) and it is a local path.
fn same_site_page(req: &HttpRequest) -> Option<String> {
    let referer = url::Url::parse(req.headers().get(actix_web::http::header::REFERER)?.to_str().ok()?).ok()?;
    let page = match referer.query() {
        Some(q) => format!("{}?{q}", referer.path()),
        None => referer.path().to_owned(),
    };
    Some(page).filter(|p| crate::auth::is_local_path(p) && !p.starts_with("/account/notices"))
}

pub async fn revoke_others(user: CurrentUser, state: State) -> Result<HttpResponse, AppError> {
    let (owner, keep) = (user.user_id.clone(), user.session_id.clone());
    let ended = db::run(&state.pool, move |conn| Ok(accounts::end_other_sessions(conn, &owner, &keep))).await??;
    if !user.notices.is_empty() {
        // Every notice was about a session that has just ended.
        let (owner, current) = (user.user_id.clone(), user.session_id.clone());
        db::run(&state.pool, move |conn| {
            Ok(accounts::dismiss_notices(conn, &owner, &current, Dismiss::UpTo(i64::MAX)))
        })
        .await??;
    }
    tracing::info!(username = %user.username, session = %user.session_id, ended, "user ended their other sessions");
    Ok(see_other(&format!("/account/sessions?done=others-ended&n={ended}")))
}

#[derive(Template)]
#[template(path = "account_password.html")]
struct PasswordPage {
    layout: Layout,
    username: String,
    min_length: usize,
}

pub async fn password_form(
    user: CurrentUser,
    csrf: CsrfToken,
    done: web::Query<Done>,
    state: State,
) -> Result<HttpResponse, AppError> {
    let username = user.username.clone();
    let mut layout = Layout::new(Some(user), &csrf);
    layout.success = done.message();
    render(StatusCode::OK, &PasswordPage { layout, username, min_length: state.config.password_min_length })
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

/// Changes the password: the current one is required; success ends every other session of the
/// user and renews the current session's token. If the account changed or this session ended while
/// the passwords were being hashed, nothing is written and the request is signed out.
pub async fn change_password(
    req: HttpRequest,
    user: CurrentUser,
    session: Session,
    csrf: CsrfToken,
    form: web::Form<PasswordForm>,
    state: State,
) -> Result<HttpResponse, AppError> {
    let PasswordForm { current_password, new_password, confirm_password } = form.into_inner();
    let min_length = state.config.password_min_length;
    let again = |message: String| {
        let username = user.username.clone();
        refuse(StatusCode::BAD_REQUEST, Layout::new(Some(user.clone()), &csrf), message, |layout| PasswordPage {
            layout,
            username,
            min_length,
        })
    };
    // The current password is a password check like a sign-in: it counts against the same lock of
    // the username, reserved before hashing (so a stolen session cannot guess it for ever).
    let counter = [Counter::user(&state, &user.username)];
    let (id, ip) = (user.user_id.clone(), state.client_ip(&req));
    state.hasher.check_room(&ip).map_err(anyhow::Error::new)?;
    let stored = match attempts::reserve_then(&state, &counter, move |conn| users::find_by_id(conn, &id)).await? {
        Ok(stored) => stored.ok_or(AppError::Unauthenticated)?,
        Err(until) => {
            tracing::warn!(username = %user.username, session = %user.session_id, "password change refused: locked out");
            return super::login::locked(until, state.now_ms());
        }
    };
    let current_ok = current_password.chars().count() <= crate::config::PASSWORD_MAX_LENGTH && {
        let checked =
            state.hasher.verify(SecretString::from(current_password), Some(stored.password_hash.clone()), &ip).await;
        match checked {
            Ok(ok) => ok,
            Err(e) => {
                attempts::release(&state, &counter).await?; // not checked: does not count
                return Err(e.into());
            }
        }
    };
    if !current_ok {
        let event = NewEvent::new("sign_in_failed")
            .user(&user.username)
            .session(&user.session_id)
            .ip(&ip)
            .detail("wrong current password");
        let locked = attempts::fail(&state, &counter, event).await?.is_some();
        tracing::warn!(username = %user.username, session = %user.session_id, locked, "password change refused: wrong current password");
        return again("The current password is not right.".into());
    }
    attempts::release(&state, &counter).await?;
    if let Err(refusal) =
        accounts::check_new_password(&new_password, Some(&confirm_password), &user.username, min_length)
    {
        return again(match refusal {
            AccountError::Mismatch => "The two new passwords do not match.".into(),
            other => other.to_string(),
        });
    }
    let new_hash = state.hasher.hash(SecretString::from(new_password), &ip).await?;
    // A new token for the current session too: whoever else held it is out.
    let token = crate::session::NewToken::new(String::new()); // the row keeps its data
    let change = OwnPasswordChange {
        user_id: user.user_id.clone(),
        session_id: user.session_id.clone(),
        verified_hash: stored.password_hash,
        new_hash,
        renewed_token_hash: token.row.token_hash.clone(),
        ip,
        now: state.now_ms(),
    };
    match db::run(&state.pool, move |conn| Ok(accounts::change_own_password(conn, &change))).await? {
        Ok(ended) => {
            crate::session::renewed(&req, &user.user_id, token)?;
            tracing::info!(username = %user.username, session = %user.session_id, ended, "password changed");
            Ok(see_other("/account/password?done=password-changed"))
        }
        Err(AccountError::Changed | AccountError::SessionEnded) => {
            crate::session::abandon(&session);
            tracing::warn!(username = %user.username, session = %user.session_id, "password change refused: the account or session changed meanwhile; signed out");
            Ok(see_other("/login"))
        }
        Err(e) => Err(e.into()),
    }
}
