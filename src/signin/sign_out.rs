//! Signing out.

use actix_identity::Identity;

use crate::db::events::{self, NewEvent};
use crate::session::CurrentUser;
use crate::state::AppState;

/// Ends the request's session: with actix-identity's `PurgeSession`, the session middleware deletes
/// its row and sends a removal cookie when the answer goes out. The sign-out is recorded (best
/// effort: the session ends whether or not the audit log can be written).
pub async fn sign_out(state: &AppState, identity: Identity, user: &CurrentUser, ip: &str) {
    identity.logout();
    events::log(&state.pool, NewEvent::new("sign_out").user(&user.username).ip(ip).session(&user.session_id)).await;
    tracing::info!(username = %user.username, session = %user.session_id, "signed out");
}
