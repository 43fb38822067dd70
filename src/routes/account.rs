//! `/account/…`: the user's own sessions and password.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use diesel::Connection as _;
use secrecy::SecretString;
use serde::Deserialize;

use super::filters;
use super::views::SessionView;
use super::{render, see_other, Done, Layout};
use crate::auth::csrf::CsrfToken;
use crate::auth::password::{check_policy, Hasher};
use crate::auth::{client_ip, CurrentUser};
use crate::db::events::{self, NewEvent};
use crate::db::{self, sessions, users, Pool};
use crate::error::AppError;
use crate::startup::AppConfig;
use crate::util::now_ms;

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
    pool: web::Data<Pool>,
) -> Result<HttpResponse, AppError> {
    let user_id = user.user_id.clone();
    let rows = db::run(&pool, move |conn| Ok(sessions::list_live(conn, now_ms(), Some(&user_id))?)).await?;
    let sessions = rows.iter().map(|(row, name)| SessionView::new(row, name, &user.session_id)).collect();
    let mut layout = Layout::new(Some(user), &csrf);
    layout.success = done.message();
    render(StatusCode::OK, &SessionsPage { layout, sessions })
}

/// Ends one of the user's own sessions; another user's id (or an unknown one) is a `404`.
pub async fn revoke(user: CurrentUser, id: web::Path<String>, pool: web::Data<Pool>) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    if id == user.session_id {
        // The current session ends through "Sign out", which also removes the cookie.
        return Err(AppError::BadRequest("Use “Sign out” to end the session you are using.".into()));
    }
    let (target, owner) = (id.clone(), user.user_id.clone());
    let event = NewEvent::new("session_ended").user(&user.username).session(&id).detail("by the user");
    let ended = db::run(&pool, move |conn| {
        let ended = sessions::delete_own(conn, &target, &owner)?;
        if ended == 1 {
            events::record(conn, &event)?;
        }
        Ok(ended)
    })
    .await?;
    if ended == 0 {
        return Err(AppError::NotFound);
    }
    tracing::info!(username = %user.username, session = %user.session_id, ended = %id, "user ended one of their sessions");
    Ok(see_other("/account/sessions?done=session-ended"))
}

pub async fn revoke_others(user: CurrentUser, pool: web::Data<Pool>) -> Result<HttpResponse, AppError> {
    let (owner, keep) = (user.user_id.clone(), user.session_id.clone());
    let name = user.username.clone();
    let ended = db::run(&pool, move |conn| {
        let ended = sessions::delete_for_user_except(conn, &owner, &keep)?;
        let detail = format!("{ended} other sessions, by the user");
        events::record(conn, &NewEvent::new("session_ended").user(name).session(keep).detail(detail))?;
        Ok(ended)
    })
    .await?;
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
    config: web::Data<AppConfig>,
) -> Result<HttpResponse, AppError> {
    let username = user.username.clone();
    let mut layout = Layout::new(Some(user), &csrf);
    layout.success = done.message();
    render(StatusCode::OK, &PasswordPage { layout, username, min_length: config.password_min_length })
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
/// user and renews the current session's token.
#[allow(clippy::too_many_arguments)]
pub async fn change_password(
    req: HttpRequest,
    user: CurrentUser,
    session: Session,
    csrf: CsrfToken,
    form: web::Form<PasswordForm>,
    pool: web::Data<Pool>,
    hasher: web::Data<Hasher>,
    config: web::Data<AppConfig>,
) -> Result<HttpResponse, AppError> {
    let PasswordForm { current_password, new_password, confirm_password } = form.into_inner();
    let refuse = |message: &str| {
        let mut layout = Layout::new(Some(user.clone()), &csrf);
        layout.error = Some(message.to_owned());
        let page = PasswordPage { layout, username: user.username.clone(), min_length: config.password_min_length };
        render(StatusCode::BAD_REQUEST, &page)
    };
    let name = user.username.clone();
    let stored = db::run(&pool, move |conn| Ok(users::find_by_username(conn, &name)?))
        .await?
        .ok_or(AppError::Unauthenticated)?;
    let current_ok = current_password.chars().count() <= crate::config::PASSWORD_MAX_LENGTH
        && hasher
            .verify(
                SecretString::from(current_password),
                Some(stored.password_hash.clone()),
                &client_ip(&req, &config.trusted_proxies),
            )
            .await?;
    if !current_ok {
        tracing::warn!(username = %user.username, session = %user.session_id, "password change refused: wrong current password");
        return refuse("The current password is not right.");
    }
    if let Err(why) = check_policy(&new_password, &user.username, config.password_min_length) {
        return refuse(&why);
    }
    if new_password != confirm_password {
        return refuse("The two new passwords do not match.");
    }
    let hash = hasher.hash(SecretString::from(new_password), &client_ip(&req, &config.trusted_proxies)).await?;
    let (user_id, keep) = (user.user_id.clone(), user.session_id.clone());
    let ip = client_ip(&req, &config.trusted_proxies);
    let event = NewEvent::new("password_changed").user(&user.username).session(&user.session_id).ip(&ip);
    let ended = db::run(&pool, move |conn| {
        Ok(conn.transaction(|conn| {
            users::set_password_hash(conn, &user_id, &hash)?;
            let ended = sessions::delete_for_user_except(conn, &user_id, &keep)?;
            events::record(conn, &event.detail(format!("ended {ended} other sessions")))?;
            Ok::<_, diesel::result::Error>(ended)
        })?)
    })
    .await?;
    // A new token for the current session too: whoever else held it is out.
    crate::session::begin(&req, &session, &user.user_id, &ip)?;
    tracing::info!(username = %user.username, session = %user.session_id, ended, "password changed");
    Ok(see_other("/account/password?done=password-changed"))
}
