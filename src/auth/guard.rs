//! The guard: every route of the session scope needs a live session, except the public ones.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse};

use crate::auth::dbsc;
use crate::routing::{self, Access};
use crate::session::context::{self, Loaded};
use crate::session::CurrentUser;

/// In a request whose cookie named a session that expired or was ended (the sign-in page says so).
#[derive(Clone, Copy, Debug)]
pub struct EndedSession;

/// Puts the signed-in user into the request, or answers `303` to `/login?next=…` without running
/// the handler. Runs inside the session and identity middleware (the store's `load` has run and left
/// the live session in the request's context), outside CSRF.
pub async fn require_session(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let public = routing::of(&req).is_public();
    let signed_in = match context::take_loaded() {
        // A device-bound session is the request's only with its current bound cookie: a copy of
        // the session cookie alone, or with a bound cookie that expired, is not signed in (and the
        // session goes on for the browser that holds the key, which renews the bound cookie).
        Loaded::Live(live) if !bound_cookie_admits(&req, &live) => {
            tracing::info!(username = %live.username, session = %live.session_id, path = %req.path(), "a device-bound session without its current bound cookie");
            false
        }
        Loaded::Live(live) => {
            req.extensions_mut().insert(live);
            true
        }
        Loaded::Ended => {
            req.extensions_mut().insert(EndedSession);
            false
        }
        Loaded::Unavailable if !public => {
            // The session could not be read: neither signed in nor signed out, so a 503, not a
            // redirect.
            return Ok(req.into_response(crate::error::unavailable_page()).map_into_right_body());
        }
        Loaded::Unavailable | Loaded::Nothing => false,
    };
    if !signed_in && !public {
        let target = match req.query_string() {
            "" => req.path().to_owned(),
            q => format!("{}?{q}", req.path()),
        };
        let location =
            format!("/login?next={}", url::form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>());
        let res = HttpResponse::SeeOther()
            .insert_header((header::LOCATION, location))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish();
        return Ok(req.into_response(res).map_into_right_body());
    }
    let mut res = next.call(req).await?;
    // A sign-in on this request offers the browser to bind the new session to a key of its own.
    let registration = res.request().extensions().get::<dbsc::Registration>().map(dbsc::Registration::header);
    if let Some(value) = registration.and_then(|v| HeaderValue::from_str(&v).ok()) {
        res.headers_mut().insert(header::HeaderName::from_static("secure-session-registration"), value);
    }
    // Pages of this scope are personal (or carry a CSRF token): never cached.
    if signed_in || !res.headers().contains_key(header::CACHE_CONTROL) {
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(res.map_into_left_body())
}

fn bound_cookie_admits(req: &ServiceRequest, live: &CurrentUser) -> bool {
    if live.bound.is_none() {
        return true;
    }
    let now = req.app_data::<crate::state::State>().map_or(0, |s| s.now_ms());
    let cookie = req.cookie(dbsc::COOKIE);
    dbsc::admits(live, cookie.as_ref().map(|c| c.value()), now)
}

/// For the admin routes: a signed-in user who is not an admin gets a `403` page (their session stays
/// valid). The role comes from the database on every request, so a demotion applies at once.
pub async fn require_admin(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let admin_route = routing::of(&req).has(|r| r.access == Access::Admin);
    let is_admin = || req.extensions().get::<CurrentUser>().is_some_and(|u| u.role == crate::db::users::Role::Admin);
    if admin_route && !is_admin() {
        let page =
            crate::error::error_page(actix_web::http::StatusCode::FORBIDDEN, Some("This page is for administrators."));
        return Ok(req.into_response(page).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// The second-factor policy (`DASHBOARD_MFA`), inside the guard: with `off`, the factors' pages
/// answer `404`; a signed-in user whom the policy requires to have a second factor but who has none
/// is sent to `/account/security` from every page but those that add one (and `/logout`,
/// `/reauth`, the public ones), until they have one.
pub async fn second_factor_policy(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(state) = req.app_data::<actix_web::web::Data<crate::state::AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let policy = state.config.mfa;
    let resolved = routing::of(&req);
    if !policy.enabled() && resolved.has(|r| r.factor) {
        let page = crate::error::error_page(actix_web::http::StatusCode::NOT_FOUND, None);
        return Ok(req.into_response(page).map_into_right_body());
    }
    // Whether this user must still add a second factor (read from the loaded session: no query).
    let must_add = req.extensions_mut().get_mut::<CurrentUser>().is_some_and(|live| {
        live.second_factors_on = policy.enabled();
        policy.requires(live.role) && !live.has_totp && !live.has_passkey
    });
    let reachable = resolved.is_public() || resolved.has(|r| r.factor || r.without_factor);
    if must_add && !reachable {
        let res = HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/account/security"))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish();
        return Ok(req.into_response(res).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}
