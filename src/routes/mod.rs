//! The route table and what every page shares.

pub mod dashboard;
pub mod health;
pub mod login;
pub mod logout;
pub mod setup;
pub mod static_files;

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
        .service(web::resource("/setup").route(web::get().to(setup::form)).route(web::post().to(setup::submit)));
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
    pub error: Option<String>,
}

impl Layout {
    pub fn new(user: Option<CurrentUser>, csrf: &CsrfToken) -> Self {
        Self { user, csrf: csrf.0.clone(), notice: None, error: None }
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
