//! `POST /logout`: ends the session (row deleted), removes the cookie.

use actix_identity::Identity;
use actix_web::HttpResponse;

use crate::auth::CurrentUser;

pub async fn submit(identity: Identity, user: CurrentUser) -> HttpResponse {
    // PurgeSession: the middleware deletes the row and sends a removal cookie.
    identity.logout();
    tracing::info!(username = %user.username, session = %user.session_id, "signed out");
    HttpResponse::SeeOther()
        .insert_header(("Location", "/login"))
        .insert_header(("Clear-Site-Data", "\"cache\""))
        .finish()
}
