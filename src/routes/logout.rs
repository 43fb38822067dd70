//! `POST /logout`: ends the session (row deleted), removes the cookie.

use actix_identity::Identity;
use actix_web::HttpResponse;

use crate::auth::CurrentUser;
use crate::state::{ClientIp, State};

pub async fn submit(ip: ClientIp, identity: Identity, user: CurrentUser, state: State) -> HttpResponse {
    crate::signin::sign_out(&state, identity, &user, &ip.0).await;
    HttpResponse::SeeOther()
        .insert_header(("Location", "/login"))
        .insert_header(("Clear-Site-Data", "\"cache\""))
        .finish()
}
