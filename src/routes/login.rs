//! `GET /login` and `POST /login`.

use actix_session::Session;
use actix_web::cookie::{Cookie, CookieJar, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use askama::Template;
use secrecy::SecretString;
use serde::Deserialize;

use super::{render, see_other, Layout};
use crate::auth::csrf::CsrfToken;
use crate::auth::password::{self, Hasher};
use crate::auth::{client_ip, is_local_path, CurrentUser};
use crate::cloud::CloudAccess;
use crate::config::PASSWORD_MAX_LENGTH;
use crate::db::events::{self, NewEvent};
use crate::db::{self, throttle, users, Pool};
use crate::error::AppError;
use crate::session::{CLOUD_EXPIRES_KEY, CLOUD_ROLE_KEY, CLOUD_TOKEN_KEY};
use crate::startup::AppConfig;
use crate::util::now_ms;

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

#[derive(Template)]
#[template(path = "error.html")]
struct LockedPage {
    status: u16,
    title: &'static str,
    message: String,
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
    cloud: web::Data<Option<CloudAccess>>,
) -> Result<HttpResponse, AppError> {
    let LoginForm { username, password, next } = form.into_inner();
    let ip = client_ip(&req, &config.trusted_proxies);
    let next = next.filter(|n| is_local_path(n));
    let shown_username: String = username.trim().chars().take(64).collect();
    let (user_key, ip_key) = (throttle::user_key(&username), throttle::ip_key(&ip));

    // One round trip: the account (if any) and whether this name or this address is locked.
    let name = users::normalize_username(&username).ok();
    let keys = (user_key.clone(), ip_key.clone());
    let (user, locked_until) = db::run(&pool, move |conn| {
        let user = match &name {
            Some(name) => users::find_by_username(conn, name)?,
            None => None,
        };
        Ok((user, throttle::locked_until(conn, &[&keys.0, &keys.1], now_ms())?))
    })
    .await?;
    if let Some(until) = locked_until {
        // Locked: no hashing at all, whatever the name, existing or not.
        tracing::warn!(username = %shown_username, client_ip = %ip, "sign-in refused: locked out");
        let minutes = ((until - now_ms()) as f64 / 60_000.0).ceil().max(1.0);
        let page = LockedPage {
            status: 429,
            title: "Too many failed sign-ins",
            message: format!(
                "Too many failed sign-ins for this account or from this address. Please wait {minutes} minute{} and try again.",
                if minutes == 1.0 { "" } else { "s" }
            ),
        };
        let mut res = render(StatusCode::TOO_MANY_REQUESTS, &page)?;
        let retry = ((until - now_ms()) / 1000).max(1).to_string();
        res.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from_str(&retry).map_err(|e| AppError::Internal(e.into()))?,
        );
        return Ok(res);
    }

    // Over-long passwords are refused before any hashing; unknown users still cost one verification
    // (against a dummy hash) so that timing does not tell them apart from known ones.
    let too_long = password.chars().count() > PASSWORD_MAX_LENGTH;
    let secret = SecretString::from(password);
    let verified =
        !too_long && hasher.verify(secret.clone(), user.as_ref().map(|u| u.password_hash.clone()), &ip).await?;
    let user = match user {
        Some(user) if verified && !user.is_disabled() => user,
        _ => {
            tracing::warn!(username = %shown_username, client_ip = %ip, "sign-in failed");
            let (window, user_limit, ip_limit) = (
                crate::util::duration_ms(config.login_lockout),
                i64::from(config.login_max_failures),
                i64::from(config.ip_max_failures()),
            );
            let (name, addr) = (shown_username.clone(), ip.clone());
            db::run(&pool, move |conn| {
                let now = now_ms();
                let user_locked = throttle::record_failure(conn, &user_key, now, window, user_limit)?;
                let ip_locked = throttle::record_failure(conn, &ip_key, now, window, ip_limit)?;
                events::record(conn, &NewEvent::new("sign_in_failed").user(&name).ip(&addr))?;
                if user_locked || ip_locked {
                    let what = if user_locked { "username" } else { "client address" };
                    tracing::warn!(username = %name, client_ip = %addr, locked = what, "sign-in locked out");
                    events::record(conn, &NewEvent::new("locked_out").user(&name).ip(&addr).detail(what))?;
                }
                Ok(())
            })
            .await?;
            let mut layout = Layout::new(None, &csrf);
            layout.error = Some(INVALID_CREDENTIALS.into());
            return render(StatusCode::UNAUTHORIZED, &LoginPage { layout, next, username: shown_username });
        }
    };

    // Cloud access: only now that the password is verified (no amplification by wrong guesses).
    let cloud_token = match cloud.as_ref().as_ref() {
        None => None,
        Some(cloud) => match cloud.obtain(user.role()).await {
            Ok(token) => Some((cloud, token)),
            Err(e) if cloud.required => {
                tracing::warn!(username = %user.username, client_ip = %ip, error = %e, "sign-in refused: cloud access unavailable");
                let (name, addr) = (user.username.clone(), ip.clone());
                let event = NewEvent::new("sign_in_failed").user(name).ip(addr).detail("cloud access unavailable");
                events::log(&pool, event).await;
                let mut layout = Layout::new(None, &csrf);
                layout.error = Some(INVALID_CREDENTIALS.into());
                return render(StatusCode::UNAUTHORIZED, &LoginPage { layout, next, username: shown_username });
            }
            Err(e) => {
                tracing::warn!(username = %user.username, error = %e, "cloud access unavailable at sign-in; will retry");
                None
            }
        },
    };
    let session_id = crate::session::begin(&req, &session, &user.id, &ip)?;
    if let Some((cloud, token)) = cloud_token {
        let internal = |e: actix_session::SessionInsertError| AppError::Internal(anyhow::anyhow!("{e}"));
        session.insert(CLOUD_TOKEN_KEY, cloud.seal(&session_id, &token.access_token)).map_err(internal)?;
        session.insert(CLOUD_ROLE_KEY, user.role().as_str()).map_err(internal)?;
        session.insert(CLOUD_EXPIRES_KEY, token.expires_at).map_err(internal)?;
    }
    // Hashes made with weaker parameters than today's are upgraded while we hold the password.
    let rehash = if password::needs_rehash(&user.password_hash) { Some(hasher.hash(secret, &ip).await?) } else { None };
    let (user_id, name, addr) = (user.id.clone(), user.username.clone(), ip.clone());
    db::run(&pool, move |conn| {
        users::touch_last_login(conn, &user_id, now_ms())?;
        throttle::reset(conn, &user_key)?;
        if let Some(hash) = rehash {
            users::set_password_hash(conn, &user_id, &hash)?;
        }
        events::record(conn, &NewEvent::new("sign_in").user(&name).ip(&addr).session(session_id))?;
        Ok(())
    })
    .await?;
    tracing::info!(username = %user.username, client_ip = %ip, "sign-in succeeded");
    Ok(see_other(next.as_deref().unwrap_or("/")))
}
