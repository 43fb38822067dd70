//! `POST /logout`: ends the session (row deleted), removes the cookie.

use actix_identity::Identity;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::auth::{client_ip, CurrentUser};
use crate::db::events::{self, NewEvent};
use crate::db::Pool;
use crate::startup::AppConfig;

pub async fn submit(
    req: HttpRequest,
    identity: Identity,
    user: CurrentUser,
    pool: web::Data<Pool>,
    config: web::Data<AppConfig>,
) -> HttpResponse {
    // PurgeSession: the middleware deletes the row and sends a removal cookie.
    identity.logout();
    let ip = client_ip(&req, &config.trusted_proxies);
    events::log(&pool, NewEvent::new("sign_out").user(&user.username).ip(ip).session(&user.session_id)).await;
    tracing::info!(username = %user.username, session = %user.session_id, "signed out");
    HttpResponse::SeeOther()
        .insert_header(("Location", "/login"))
        .insert_header(("Clear-Site-Data", "\"cache\""))
        .finish()
}
