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
/// The one live key: the row's public id, times, role and username in one compact string (see
/// [`LiveSession::encode`]), so a request reads one value instead of six.
pub const LIVE_KEY: &str = "dashboard.live.session";

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
    /// Reads the live key of a loaded session; `None` for an anonymous visitor.
    pub fn from_session(session: &Session) -> Option<LiveSession> {
        let user_id = session.get::<String>(IDENTITY_KEY).ok().flatten()?;
        let live = session.get::<String>(LIVE_KEY).ok().flatten()?;
        Self::decode(user_id, &live)
    }

    /// `id|created|expires|absolute|role|username` (absolute empty when there is no limit). The
    /// username goes last: it is the only field that could hold a `|`.
    pub fn encode(
        id: &str,
        created_at: i64,
        expires_at: i64,
        absolute: Option<i64>,
        role: &str,
        username: &str,
    ) -> String {
        let abs = absolute.map(|a| a.to_string()).unwrap_or_default();
        format!("{id}|{created_at}|{expires_at}|{abs}|{role}|{username}")
    }

    fn decode(user_id: String, live: &str) -> Option<LiveSession> {
        let mut parts = live.splitn(6, '|');
        let session_id = parts.next()?.to_owned();
        let created_at = parts.next()?.parse().ok()?;
        let expires_at = parts.next()?.parse().ok()?;
        let absolute_expires_at = match parts.next()? {
            "" => None,
            abs => Some(abs.parse().ok()?),
        };
        let role = crate::db::users::Role::parse(parts.next()?)?;
        let username = parts.next()?.to_owned();
        Some(LiveSession { user_id, username, role, session_id, created_at, expires_at, absolute_expires_at })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::users::Role;

    #[test]
    fn the_live_key_round_trips_any_username() {
        for (abs, name) in [(None, "alice"), (Some(9_000), "a|b|c"), (Some(1), "")] {
            let live = LiveSession::encode("sid-_x", 1_000, 2_000, abs, "admin", name);
            let s = LiveSession::decode("7".into(), &live).expect("decodes");
            assert_eq!(
                (s.user_id.as_str(), s.session_id.as_str(), s.created_at, s.expires_at, s.absolute_expires_at),
                ("7", "sid-_x", 1_000, 2_000, abs)
            );
            assert_eq!((s.role, s.username.as_str()), (Role::Admin, name));
        }
        assert!(LiveSession::decode("7".into(), "sid|x|2|3|admin|bob").is_none());
        assert!(LiveSession::decode("7".into(), "sid|1|2|3|root|bob").is_none());
        assert!(LiveSession::decode("7".into(), "sid|1|2").is_none());
    }
}
