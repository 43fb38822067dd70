//! Database-backed sessions: the actix-session store, what it tells the rest of the app, the pruner.

pub mod lookup;
pub mod pruner;
pub mod store;

pub use store::{DbSessionStore, Timeouts};

use actix_identity::Identity;
use actix_session::Session;
use actix_web::{http::header, HttpMessage, HttpRequest};

use crate::error::AppError;

/// The key actix-identity keeps the user id under.
pub const IDENTITY_KEY: &str = "actix_identity.user_id";
/// Set at sign-in; moved into the row's `ip` column by the store.
pub const CLIENT_IP_KEY: &str = "dashboard.client_ip";
/// Set at sign-in; moved into the row's `user_agent` column by the store.
pub const USER_AGENT_KEY: &str = "dashboard.user_agent";
/// Set at sign-in: the public id the new row gets (chosen up front so the audit log can name it).
pub const NEW_SESSION_ID_KEY: &str = "dashboard.new_session_id";
/// Set at sign-in when cloud access gave a token: the sealed token, its role and expiry, moved into
/// the row's `cloud_*` columns by the store (never kept in `data`, never in the cookie).
pub const CLOUD_TOKEN_KEY: &str = "dashboard.cloud_token";
pub const CLOUD_ROLE_KEY: &str = "dashboard.cloud_role";
pub const CLOUD_EXPIRES_KEY: &str = "dashboard.cloud_expires_at";
/// Keys under this prefix are filled in by the store on every load from the row and its user
/// (so the guard needs no second query) and are never written back.
pub const LIVE_PREFIX: &str = "dashboard.live.";
pub const LIVE_SESSION_ID: &str = "dashboard.live.session_id";
pub const LIVE_USERNAME: &str = "dashboard.live.username";
pub const LIVE_ROLE: &str = "dashboard.live.role";
pub const LIVE_CREATED_AT: &str = "dashboard.live.created_at";
pub const LIVE_EXPIRES_AT: &str = "dashboard.live.expires_at";
pub const LIVE_ABSOLUTE_EXPIRES_AT: &str = "dashboard.live.absolute_expires_at";

/// What the store loaded for a signed-in request.
#[derive(Clone, Debug)]
pub struct LiveSession {
    pub user_id: String,
    pub username: String,
    pub role: crate::db::users::Role,
    pub session_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub absolute_expires_at: Option<i64>,
}

impl LiveSession {
    /// Reads the live keys of a loaded session; `None` for an anonymous visitor.
    pub fn from_session(session: &Session) -> Option<LiveSession> {
        let get = |k: &str| session.get::<String>(k).ok().flatten();
        let get_i64 = |k: &str| session.get::<i64>(k).ok().flatten();
        Some(LiveSession {
            user_id: get(IDENTITY_KEY)?,
            username: get(LIVE_USERNAME)?,
            role: crate::db::users::Role::parse(&get(LIVE_ROLE)?)?,
            session_id: get(LIVE_SESSION_ID)?,
            created_at: get_i64(LIVE_CREATED_AT)?,
            expires_at: get_i64(LIVE_EXPIRES_AT)?,
            absolute_expires_at: get_i64(LIVE_ABSOLUTE_EXPIRES_AT),
        })
    }
}

/// Signs `user_id` in: a new session with a new token (the middleware deletes the old one first, so
/// a planted or earlier cookie dies here), recording the client's address and user agent on the row.
/// Returns the new session's public id.
pub fn begin(req: &HttpRequest, session: &Session, user_id: &str, client_ip: &str) -> Result<String, AppError> {
    let internal = |e: &dyn std::fmt::Display| AppError::Internal(anyhow::anyhow!("cannot start the session: {e}"));
    Identity::login(&req.extensions(), user_id.to_owned()).map_err(|e| internal(&e))?;
    let user_agent = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    session.insert(CLIENT_IP_KEY, client_ip).map_err(|e| internal(&e))?;
    session.insert(USER_AGENT_KEY, user_agent).map_err(|e| internal(&e))?;
    let id = crate::util::random_b64(16);
    session.insert(NEW_SESSION_ID_KEY, &id).map_err(|e| internal(&e))?;
    Ok(id)
}
