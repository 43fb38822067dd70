//! The device-bound session endpoints the browser calls by itself (see [`crate::auth::dbsc`]):
//! `POST /login/dbsc/register` after a sign-in that offered it, `POST /login/dbsc/refresh` when
//! the bound cookie is missing or expired. No CSRF token comes with them: a signature over the
//! server's challenge is the proof.

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpMessage, HttpRequest, HttpResponse};

use crate::auth::dbsc::{self, Refreshed, Refusal};
use crate::auth::CurrentUser;
use crate::db::events::{self, NewEvent};
use crate::error::AppError;
use crate::state::{ClientIp, State};

fn header_of<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// The session configuration with the bound cookie.
fn configured(session_id: &str, cookie: &actix_web::cookie::Cookie<'static>) -> Result<HttpResponse, AppError> {
    let mut res =
        HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(dbsc::session_config(session_id));
    res.add_cookie(cookie).map_err(|e| AppError::Internal(e.into()))?;
    Ok(res)
}

/// A refused request: logged, and for a live session (a signed answer that did not hold) recorded
/// in the audit log too. Requests that name no live session, or bring no signature, are only logged,
/// so that nobody can fill the audit log from outside.
async fn refused(
    state: &State,
    ip: &str,
    session: Option<&str>,
    username: Option<&str>,
    why: &Refusal,
) -> HttpResponse {
    tracing::warn!(session = session.unwrap_or(""), client_ip = %ip, reason = %why, "a device-bound session request was refused");
    if matches!(why, Refusal::NoSession | Refusal::Unsigned) {
        return HttpResponse::BadRequest().insert_header((header::CACHE_CONTROL, "no-store")).finish();
    }
    let mut event = NewEvent::new("dbsc_refused").ip(ip).detail(why.to_string());
    event.session_id = session.map(str::to_owned);
    event.username = username.map(str::to_owned);
    events::log(&state.pool, event).await;
    HttpResponse::BadRequest().insert_header((header::CACHE_CONTROL, "no-store")).finish()
}

/// `POST /login/dbsc/register` with `Secure-Session-Response`: binds the signed-in session.
pub async fn register(req: HttpRequest, ip: ClientIp, state: State) -> Result<HttpResponse, AppError> {
    let Some(user) = req.extensions().get::<CurrentUser>().cloned() else {
        return Ok(refused(&state, &ip.0, None, None, &Refusal::NoSession).await);
    };
    match dbsc::register(&state, &user, header_of(&req, "secure-session-response")).await? {
        Ok(cookie) => {
            let event = NewEvent::new("session_bound").user(&user.username).session(&user.session_id).ip(&ip.0);
            events::log(&state.pool, event.detail("to a key of this browser")).await;
            tracing::info!(username = %user.username, session = %user.session_id, "session bound to the browser's key");
            configured(&user.session_id, &cookie)
        }
        Err(why) => Ok(refused(&state, &ip.0, Some(&user.session_id), Some(&user.username), &why).await),
    }
}

/// `POST /login/dbsc/refresh` with `Sec-Secure-Session-Id` (and, answering a challenge,
/// `Secure-Session-Response`): a new challenge (`403`), or a new bound cookie.
pub async fn refresh(req: HttpRequest, ip: ClientIp, state: State) -> Result<HttpResponse, AppError> {
    let Some(id) = header_of(&req, "sec-secure-session-id").map(str::to_owned) else {
        return Ok(refused(&state, &ip.0, None, None, &Refusal::NoSession).await);
    };
    match dbsc::refresh(&state, &id, header_of(&req, "secure-session-response")).await? {
        Refreshed::Challenge(challenge) => {
            let value = HeaderValue::from_str(&format!("\"{challenge}\";id=\"{id}\""))
                .map_err(|e| AppError::Internal(e.into()))?;
            let mut res = HttpResponse::Forbidden()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(serde_json::json!({ "error": "sign the challenge" }));
            res.headers_mut().insert(HeaderName::from_static("secure-session-challenge"), value);
            // The challenge is the answer: not to be made into an error page.
            res.extensions_mut().insert(crate::error::JsonAnswer);
            Ok(res)
        }
        Refreshed::Renewed(cookie) => configured(&id, &cookie),
        Refreshed::Refused(why) => Ok(refused(&state, &ip.0, Some(&id), None, &why).await),
    }
}
