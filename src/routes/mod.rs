//! The route table and what every page shares.

pub mod account;
pub mod admin;
pub mod cloud;
pub mod dashboard;
pub mod filters;
pub mod health;
pub mod login;
pub mod logout;
pub mod setup;
pub mod static_files;
pub mod views;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use askama::Template;

use crate::auth::csrf::CsrfToken;
use crate::auth::CurrentUser;
use crate::error::AppError;

/// Routes behind the session middleware and the guard. A route added here is protected unless
/// its path is in [`crate::auth::guard::PUBLIC_PATHS`].
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").route(web::get().to(dashboard::show)))
        .service(web::resource("/login").route(web::get().to(login::form)).route(web::post().to(login::submit)))
        .service(web::resource("/logout").route(web::post().to(logout::submit)))
        .service(web::resource("/setup").route(web::get().to(setup::form)).route(web::post().to(setup::submit)))
        .service(web::resource("/account/sessions").route(web::get().to(account::sessions)))
        .service(web::resource("/account/sessions/revoke-others").route(web::post().to(account::revoke_others)))
        .service(web::resource("/account/sessions/{id}/revoke").route(web::post().to(account::revoke)))
        .service(
            web::resource("/account/password")
                .route(web::get().to(account::password_form))
                .route(web::post().to(account::change_password)),
        )
        .service(web::resource("/cloud/{path:.*}").route(web::route().to(cloud::proxy)))
        .service(
            web::scope("/admin")
                .wrap(actix_web::middleware::from_fn(crate::auth::guard::require_admin))
                .service(web::resource("/sessions").route(web::get().to(admin::sessions)))
                .service(web::resource("/sessions/{id}/revoke").route(web::post().to(admin::revoke_session)))
                .service(
                    web::resource("/users")
                        .route(web::get().to(admin::users))
                        .route(web::post().to(admin::create_user)),
                )
                .service(web::resource("/events").route(web::get().to(admin::events)))
                .service(web::resource("/users/{name}/role").route(web::post().to(admin::set_role)))
                .service(web::resource("/users/{name}/disable").route(web::post().to(admin::disable)))
                .service(web::resource("/users/{name}/enable").route(web::post().to(admin::enable)))
                .service(
                    web::resource("/users/{name}/revoke-sessions").route(web::post().to(admin::revoke_user_sessions)),
                )
                .default_service(web::to(not_found)),
        );
}

/// Routes outside the session scope: no cookie is read, no session row is touched.
pub fn configure_public(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").route(web::get().to(health::healthz)))
        .service(web::resource("/readyz").route(web::get().to(health::readyz)))
        .service(web::resource("/static/{file}").route(web::get().to(static_files::serve)));
}

/// For paths no route matches (inside the guard, so only signed-in users get this 404).
pub async fn not_found() -> Result<HttpResponse, AppError> {
    Err(AppError::NotFound)
}

/// What the base layout needs: the signed-in user (for the header), the CSRF token, messages.
pub struct Layout {
    pub user: Option<CurrentUser>,
    pub csrf: String,
    pub notice: Option<String>,
    pub success: Option<String>,
    pub error: Option<String>,
}

impl Layout {
    pub fn new(user: Option<CurrentUser>, csrf: &CsrfToken) -> Self {
        Self { user, csrf: csrf.0.clone(), notice: None, success: None, error: None }
    }
}

/// Renders a page with a status.
pub fn render(status: StatusCode, page: &impl Template) -> Result<HttpResponse, AppError> {
    let body = page.render().map_err(|e| AppError::Internal(e.into()))?;
    Ok(HttpResponse::build(status).insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8")).body(body))
}

/// `303 See Other` to `location`.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, location)).finish()
}

/// `?done=…&n=…` after a redirect: which success message to show. Only known codes are shown, so
/// the query string cannot put words on a page.
#[derive(serde::Deserialize)]
pub struct Done {
    done: Option<String>,
    n: Option<u32>,
}

impl Done {
    pub fn message(&self) -> Option<String> {
        let n = self.n.unwrap_or(0);
        let plural = if n == 1 { "" } else { "s" };
        Some(match self.done.as_deref()? {
            "session-ended" => "The session was ended.".to_owned(),
            "others-ended" => format!("Ended {n} other session{plural}."),
            "user-sessions-ended" => format!("Ended {n} session{plural}."),
            "password-changed" => "Your password was changed. Your other sessions were ended.".to_owned(),
            "user-created" => "The user was created.".to_owned(),
            "role-changed" => "The role was changed. It applies from the user's next request.".to_owned(),
            "user-disabled" => format!("The user was disabled and {n} session{plural} ended."),
            "user-enabled" => "The user was enabled.".to_owned(),
            _ => return None,
        })
    }
}
