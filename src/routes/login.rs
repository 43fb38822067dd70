//! `GET /login` and `POST /login`.

use actix_session::Session;
use actix_web::cookie::{Cookie, CookieJar, SameSite};
use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use askama::Template;
use secrecy::SecretString;
use serde::Deserialize;

use super::{render, see_other, Layout};
use crate::auth::csrf::CsrfToken;
use crate::auth::password::Hasher;
use crate::auth::{client_ip, is_local_path, CurrentUser};
use crate::config::PASSWORD_MAX_LENGTH;
use crate::db::{self, users, Pool};
use crate::error::AppError;
use crate::startup::AppConfig;

/// The one message for every failed sign-in, whatever the reason.
pub const INVALID_CREDENTIALS: &str = "Invalid username or password.";
pub const SESSION_EXPIRED: &str = "Your session has expired. Please sign in again.";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    next: Option<String>,
    username: String,
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

/// True when the request carries a session cookie that this server issued (it decrypts with our
/// key) but that names no live session: it expired or was ended. A forged cookie does not decrypt.
fn carries_ended_session(req: &HttpRequest, config: &AppConfig) -> bool {
    if req.extensions().get::<CurrentUser>().is_some() {
        return false;
    }
    let Some(cookie) = req.cookie(&config.session_cookie_name) else {
        return false;
    };
    let mut jar = CookieJar::new();
    jar.add_original(cookie);
    jar.private(&config.cookie_key).get(&config.session_cookie_name).is_some()
}

pub async fn form(
    req: HttpRequest,
    query: web::Query<LoginQuery>,
    csrf: CsrfToken,
    config: web::Data<AppConfig>,
) -> Result<HttpResponse, AppError> {
    let user = req.extensions().get::<CurrentUser>().cloned();
    let expired = carries_ended_session(&req, &config);
    let mut layout = Layout::new(user, &csrf);
    if expired {
        layout.notice = Some(SESSION_EXPIRED.into());
    }
    let next = query.into_inner().next.filter(|n| is_local_path(n));
    let mut res = render(StatusCode::OK, &LoginPage { layout, next, username: String::new() })?;
    if expired {
        // Say it once: drop the dead cookie so a later visit to this page does not repeat it.
        let mut removal = Cookie::build(config.session_cookie_name.clone(), "")
            .path("/")
            .http_only(true)
            .secure(config.secure)
            .same_site(SameSite::Lax)
            .finish();
        removal.make_removal();
        res.add_cookie(&removal).map_err(|e| AppError::Internal(e.into()))?;
    }
    Ok(res)
}

#[allow(clippy::too_many_arguments)]
pub async fn submit(
    req: HttpRequest,
    form: web::Form<LoginForm>,
    session: Session,
    csrf: CsrfToken,
    pool: web::Data<Pool>,
    hasher: web::Data<Hasher>,
    config: web::Data<AppConfig>,
) -> Result<HttpResponse, AppError> {
    let LoginForm { username, password, next } = form.into_inner();
    let ip = client_ip(&req, &config.trusted_proxies);
    let next = next.filter(|n| is_local_path(n));
    let shown_username: String = username.trim().chars().take(64).collect();

    let name = users::normalize_username(&username).ok();
    let user = match &name {
        Some(name) => {
            let name = name.clone();
            db::run(&pool, move |conn| Ok(users::find_by_username(conn, &name)?)).await?
        }
        None => None,
    };
    // Over-long passwords are refused before any hashing; unknown users still cost one verification
    // (against a dummy hash) so that timing does not tell them apart from known ones.
    let verified = if password.chars().count() > PASSWORD_MAX_LENGTH {
        false
    } else {
        hasher.verify(SecretString::from(password), user.as_ref().map(|u| u.password_hash.clone())).await?
    };
    let user = match user {
        Some(user) if verified && !user.is_disabled() => user,
        _ => {
            tracing::warn!(username = %shown_username, client_ip = %ip, "sign-in failed");
            let mut layout = Layout::new(None, &csrf);
            layout.error = Some(INVALID_CREDENTIALS.into());
            return render(StatusCode::UNAUTHORIZED, &LoginPage { layout, next, username: shown_username });
        }
    };

    crate::session::begin(&req, &session, &user.id, &ip)?;
    let user_id = user.id.clone();
    db::run(&pool, move |conn| Ok(users::touch_last_login(conn, &user_id, crate::util::now_ms())?)).await?;
    tracing::info!(username = %user.username, client_ip = %ip, "sign-in succeeded");
    Ok(see_other(next.as_deref().unwrap_or("/")))
}
