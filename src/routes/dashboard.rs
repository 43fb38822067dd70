//! `GET /`: who is signed in, their role, when the session expires, cloud access.

use actix_web::{http::StatusCode, web, HttpResponse};
use askama::Template;

use super::{render, Layout};
use crate::auth::csrf::CsrfToken;
use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::startup::AppConfig;
use crate::util::format_ms;

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    layout: Layout,
    user: CurrentUser,
    signed_in_at: String,
    expires_at: String,
    expires_at_iso: String,
    absolute_expires_at: String,
    idle_timeout: String,
    cloud_status: &'static str,
}

pub async fn show(user: CurrentUser, csrf: CsrfToken, config: web::Data<AppConfig>) -> Result<HttpResponse, AppError> {
    let page = DashboardPage {
        signed_in_at: format_ms(user.created_at),
        expires_at: format_ms(user.expires_at),
        expires_at_iso: format_ms(user.expires_at).replace(" UTC", "Z").replacen(' ', "T", 1),
        absolute_expires_at: user.absolute_expires_at.map_or_else(|| "never (no absolute limit)".into(), format_ms),
        idle_timeout: humantime::format_duration(config.idle_timeout).to_string(),
        cloud_status: if config.cloud_configured { "Configured" } else { "Not configured" },
        layout: Layout::new(Some(user.clone()), &csrf),
        user,
    };
    render(StatusCode::OK, &page)
}
