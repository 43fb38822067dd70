//! Re-authentication ("confirm it's you") before sensitive actions, in one place: the route table
//! marks them ([`crate::routing::Sensitive`]), and [`require_recent`] lets one through only when the
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
use crate::auth::codes::{self, CodeProof};
use crate::db::events::{self, NewEvent};
use crate::db::{self, sessions};
use crate::error::AppError;
use crate::routing::{self, Access, Sensitive};
use crate::session::CurrentUser;
use crate::state::AppState;
use crate::util::duration_ms;

/// Whether `user` authenticated within the window at `now`, in a way that counts for them: for a
/// user with a second factor (while second factors are on) only an authentication that used it —
/// a password alone, however recent, never opens the window for such a user.
pub fn is_recent(state: &AppState, user: &CurrentUser, now: i64) -> bool {
    let within = now.saturating_sub(user.authenticated_at) < duration_ms(state.config.reauth_max_age);
    within && (!needs_second_factor(state, user) || user.authenticated_with.used_second_factor())
}

/// Whether only an authentication with a second factor proves who `user` is.
pub fn needs_second_factor(state: &AppState, user: &CurrentUser) -> bool {
    state.config.mfa.enabled() && user.has_second_factor()
}

/// The page of the form a sensitive action needs a recent authentication for, if it needs one. An
/// action whose own form asks for the password needs none from a user without a second factor.
fn needs_reauth(state: &AppState, sensitive: Sensitive, user: &CurrentUser) -> Option<&'static str> {
    match sensitive {
        Sensitive::No => None,
        Sensitive::Reauth(page) => Some(page),
        Sensitive::ProvesItself(page) => needs_second_factor(state, user).then_some(page),
    }
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
    // frequent requests, skip the rest.
    if matches!(*req.method(), actix_web::http::Method::GET | actix_web::http::Method::HEAD) {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let route = routing::of(&req).route();
    let user = req.extensions().get::<CurrentUser>().cloned();
    let (Some(user), Some(state), Some(route)) = (user, req.app_data::<web::Data<AppState>>().cloned(), route) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    // A non-admin on an admin route gets the admin check's 403, not an offer to authenticate.
    if route.sensitive == Sensitive::No || (route.access == Access::Admin && user.role != crate::db::users::Role::Admin)
    {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    if let Some(page) = needs_reauth(&state, route.sensitive, &user) {
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
    match record_with(state, user, method, |_| Ok(true)).await? {
        true => Ok(()),
        false => Err(AppError::Unauthenticated),
    }
}

/// Records a re-authentication that used the app's or a recovery code: the code is spent (with
/// its `recovery_code_used` event) and the window restarts in one transaction, so a code is never
/// spent for a session that ended meanwhile, nor a window opened by a code spent elsewhere
/// meanwhile. False when the code was not accepted (nothing changed).
pub async fn record_with_code(
    state: &AppState,
    user: &CurrentUser,
    proof: CodeProof,
    ip: &str,
) -> Result<bool, AppError> {
    let (uid, now) = (user.user_id.clone(), state.now_ms());
    let event = NewEvent::new("recovery_code_used").user(&user.username).session(&user.session_id).ip(ip);
    let method = proof.method();
    record_with(state, user, method, move |conn| {
        let Some(spent) = codes::spend(conn, &uid, &proof, now)? else { return Ok(false) };
        if let Some(left) = spent.recovery_codes_left {
            events::record(conn, &event.detail(codes::left_words(left)))?;
        }
        Ok(true)
    })
    .await
}

/// Why a re-authentication's transaction records nothing.
#[derive(Debug)]
enum NotRecorded {
    /// The code was not accepted.
    Refused,
    /// The session ended meanwhile (a logout, a revocation).
    SessionEnded,
    Db(diesel::result::Error),
}

impl From<diesel::result::Error> for NotRecorded {
    fn from(e: diesel::result::Error) -> Self {
        NotRecorded::Db(e)
    }
}

/// `proof` (which may spend a code; false refuses) and the restarted window with its event, in one
/// transaction. Err(Unauthenticated) when the session ended meanwhile.
async fn record_with(
    state: &AppState,
    user: &CurrentUser,
    method: AuthMethod,
    proof: impl FnOnce(&mut db::DbConn) -> diesel::QueryResult<bool> + Send + 'static,
) -> Result<bool, AppError> {
    let (id, now) = (user.session_id.clone(), state.now_ms());
    let event = NewEvent::new("reauthenticated")
        .user(&user.username)
        .session(&user.session_id)
        .detail(format!("with {}", method.describe()));
    let outcome = db::run(&state.pool, move |conn| {
        use diesel::Connection as _;
        Ok(conn.transaction::<_, NotRecorded, _>(|conn| {
            if !proof(conn)? {
                return Err(NotRecorded::Refused);
            }
            if sessions::set_authenticated(conn, &id, now, method.as_str())? != 1 {
                return Err(NotRecorded::SessionEnded);
            }
            events::record(conn, &event)?;
            Ok(())
        }))
    })
    .await?;
    match outcome {
        Ok(()) => {
            tracing::info!(username = %user.username, session = %user.session_id, method = method.as_str(), "re-authenticated");
            Ok(true)
        }
        Err(NotRecorded::Refused) => Ok(false),
        Err(NotRecorded::SessionEnded) => Err(AppError::Unauthenticated),
        Err(NotRecorded::Db(e)) => Err(AppError::Internal(e.into())),
    }
}
