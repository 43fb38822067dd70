//! `GET /`: who is signed in, their role, when the session expires, cloud access.

use actix_web::{http::StatusCode, HttpResponse};
use askama::Template;

use super::{render, Layout};
use crate::auth::csrf::CsrfToken;
use crate::auth::CurrentUser;
use crate::cloud::CloudStatus;
use crate::error::AppError;
use crate::state::State;
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
    cloud_status: String,
    cloud_state: &'static str,
}

pub async fn show(user: CurrentUser, csrf: CsrfToken, state: State) -> Result<HttpResponse, AppError> {
    let status = match &state.cloud {
        None => CloudStatus::NotConfigured,
        Some(cloud) => cloud.status(&state.pool, &user).await,
    };
    let (cloud_state, cloud_status) = match status {
        CloudStatus::NotConfigured => ("not-configured", "Not configured on this dashboard.".to_owned()),
        CloudStatus::Connected { role, until } => {
            ("connected", format!("Connected for role:{role}; the token is valid until {}.", format_ms(until)))
        }
        CloudStatus::Unavailable => {
            ("unavailable", "Unavailable right now; the dashboard will try again in a moment.".to_owned())
        }
    };
    let expires_at = format_ms(user.expires_at);
    // `2026-11-27 17:02:21 UTC` → `2026-11-27T17:02:21Z`
    let expires_at_iso = match (expires_at.get(..10), expires_at.get(11..19)) {
        (Some(date), Some(time)) => format!("{date}T{time}Z"),
        _ => String::new(),
    };
    let page = DashboardPage {
        signed_in_at: format_ms(user.created_at),
        expires_at,
        expires_at_iso,
        absolute_expires_at: user.absolute_expires_at.map_or_else(|| "never (no absolute limit)".into(), format_ms),
        idle_timeout: state.config.idle_timeout_text.clone(),
        cloud_status,
        cloud_state,
        layout: Layout::new(Some(user.clone()), &csrf),
        user,
    };
    render(StatusCode::OK, &page)
}
