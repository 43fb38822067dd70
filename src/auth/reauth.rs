//! Re-authentication ("confirm it's you") before sensitive actions, in one place: the route table
//! marks them ([`crate::routes::Sensitive`]), and [`require_recent`] lets one through only when the
//! session authenticated within `DASHBOARD_REAUTH_MAX_AGE` (by the app's clock). Otherwise the
//! action is not run and the browser is sent to `/reauth?next=<the page that holds the form>`.
//! Each sensitive action done restarts the window (sliding, like GitHub's sudo mode): someone at
//! work in the settings is not asked again and again; a session left alone (or stolen) is.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpResponse};

use crate::accounts::AuthMethod;
use crate::db::events::{self, NewEvent};
use crate::db::{self, sessions};
use crate::error::AppError;
use crate::routes::{Access, Sensitive};
use crate::session::CurrentUser;
use crate::state::AppState;
use crate::util::duration_ms;

/// Whether `user` authenticated within the window at `now`.
pub fn is_recent(state: &AppState, user: &CurrentUser, now: i64) -> bool {
    now.saturating_sub(user.authenticated_at) < duration_ms(state.config.reauth_max_age)
}

/// `/reauth?next=PAGE`.
pub fn reauth_location(page: &str) -> String {
    format!("/reauth?next={}", url::form_urlencoded::byte_serialize(page.as_bytes()).collect::<String>())
}

/// The middleware (inside the guard and the CSRF check, so a forged request is refused first).
pub async fn require_recent(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    // Only actions are sensitive (a route-table test holds every GET to that): page views, the most
    // frequent requests, skip the route lookup.
    if matches!(*req.method(), actix_web::http::Method::GET | actix_web::http::Method::HEAD) {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let route = crate::routes::find(req.method().as_str(), req.path());
    let sensitive = route.map_or(Sensitive::No, |r| r.sensitive);
    let user = req.extensions().get::<CurrentUser>().cloned();
    let (Some(user), Some(state), Some(route)) = (user, req.app_data::<web::Data<AppState>>().cloned(), route) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    // A non-admin on an admin route gets the admin check's 403, not an offer to authenticate.
    if sensitive == Sensitive::No || (route.access == Access::Admin && user.role != crate::db::users::Role::Admin) {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    if let Sensitive::Reauth(page) = sensitive {
        if !is_recent(&state, &user, state.now_ms()) {
            tracing::info!(username = %user.username, session = %user.session_id, path = %req.path(), "sensitive action needs a recent authentication");
            let res = HttpResponse::SeeOther()
                .insert_header((header::LOCATION, reauth_location(page)))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish();
            return Ok(req.into_response(res).map_into_right_body());
        }
    }
    let res = next.call(req).await?;
    // Done (a page or a redirect, not a refusal): the window starts again.
    if res.status().is_success() || res.status().is_redirection() {
        let (id, now) = (user.session_id.clone(), state.now_ms());
        if let Err(e) = db::run(&state.pool, move |conn| Ok(sessions::set_authenticated_at(conn, &id, now)?)).await {
            tracing::warn!(session = %user.session_id, error = %e, "could not restart the re-authentication window");
        }
    }
    Ok(res.map_into_left_body())
}

/// Records a successful re-authentication of `user`'s session by `method` (the password, with
/// the app's code when the user has the app; or a passkey): the window starts again now, and a
/// `reauthenticated` event says how. The WebAuthn ceremony calls this after verifying a passkey
/// on `/reauth`; `/reauth`'s own form after the password (and code).
pub async fn record_reauthentication(state: &AppState, user: &CurrentUser, method: AuthMethod) -> Result<(), AppError> {
    let (id, now) = (user.session_id.clone(), state.now_ms());
    let event = NewEvent::new("reauthenticated")
        .user(&user.username)
        .session(&user.session_id)
        .detail(format!("with {}", method.describe()));
    let recorded = db::run(&state.pool, move |conn| {
        use diesel::Connection as _;
        Ok(conn.transaction(|conn| {
            // A session ended while it was confirming (a logout, a revocation) stays ended: no event.
            if sessions::set_authenticated_at(conn, &id, now)? != 1 {
                return Ok(false);
            }
            events::record(conn, &event).map(|_| true)
        })?)
    })
    .await?;
    if !recorded {
        return Err(AppError::Unauthenticated);
    }
    tracing::info!(username = %user.username, session = %user.session_id, method = method.as_str(), "re-authenticated");
    Ok(())
}
