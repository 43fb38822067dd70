//! `POST /logout`: ends the session (row deleted), removes the cookie.

use actix_identity::Identity;
use actix_web::{HttpRequest, HttpResponse};

use crate::auth::CurrentUser;
use crate::db::events::{self, NewEvent};
use crate::state::State;

pub async fn submit(req: HttpRequest, identity: Identity, user: CurrentUser, state: State) -> HttpResponse {
    // PurgeSession: the middleware deletes the row and sends a removal cookie.
    identity.logout();
    let ip = state.client_ip(&req);
    events::log(&state.pool, NewEvent::new("sign_out").user(&user.username).ip(ip).session(&user.session_id)).await;
    tracing::info!(username = %user.username, session = %user.session_id, "signed out");
    HttpResponse::SeeOther()
        .insert_header(("Location", "/login"))
        .insert_header(("Clear-Site-Data", "\"cache\""))
        .finish()
}
