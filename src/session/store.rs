//! `DbSessionStore`: actix-session's `SessionStore` on the diesel `sessions` table.
//!
//! - The cookie carries a 64-character random token (≈381 bits); the row holds only its SHA-256.
//! - Expiry is enforced here, from the row, on every load: the idle expiry slides with activity and
//!   never passes the absolute one. Cookie lifetimes play no part (the cookie is a browser session
//!   cookie).
//! - Sliding is coalesced: a load writes only when the stored expiry has fallen behind
//!   `now + idle` by more than `refresh_slack` (a twentieth of the idle timeout, at most 60 s).
//! - `update` is an UPDATE, never an upsert, so a request racing a logout cannot resurrect it.

use std::collections::HashMap;
use std::time::Duration;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};

use super::lookup::SessionLookup;
use super::*;
use crate::config::DatabaseUrl;
use crate::db::events::{self, NewEvent};
use crate::db::{self, sessions, Pool};
use crate::util::{duration_ms, now_ms, random_alphanumeric, random_b64, sha256_hex};

/// Session lifetimes, in force for every session.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub idle: Duration,
    pub absolute: Option<Duration>,
}

impl Timeouts {
    /// How far the stored idle expiry may lag before a request writes a fresher one.
    pub fn refresh_slack(&self) -> Duration {
        (self.idle / 20).min(Duration::from_secs(60))
    }
}

#[derive(Clone)]
pub struct DbSessionStore {
    pool: Pool,
    lookup: SessionLookup,
    timeouts: Timeouts,
}

impl DbSessionStore {
    /// A store on `pool`, with its own lookup thread on `database` (the pool's database).
    pub fn new(pool: Pool, database: &DatabaseUrl, timeouts: Timeouts) -> std::io::Result<Self> {
        Ok(Self { pool, lookup: SessionLookup::start(database)?, timeouts })
    }
}

fn json<T: serde::Serialize>(v: T) -> String {
    serde_json::to_string(&v).unwrap_or_default()
}

/// Session values are JSON (actix-session serialises each); read one as a string.
fn take_string(state: &mut HashMap<String, String>, key: &str) -> Option<String> {
    state.remove(key).and_then(|v| serde_json::from_str::<String>(&v).ok())
}

/// What is written to the `data` column: the state without the per-load and column-backed keys.
fn persistent_data(mut state: HashMap<String, String>) -> String {
    state.retain(|k, _| {
        !k.starts_with(LIVE_PREFIX)
            && ![CLIENT_IP_KEY, USER_AGENT_KEY, NEW_SESSION_ID_KEY, CLOUD_TOKEN_KEY, CLOUD_ROLE_KEY, CLOUD_EXPIRES_KEY]
                .contains(&k.as_str())
    });
    json(state)
}

impl SessionStore for DbSessionStore {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<HashMap<String, String>>, LoadError> {
        let token_hash = sha256_hex(session_key.as_ref());
        let timeouts = self.timeouts;
        // The read goes to the lookup thread; the rare writes (expired row, due refresh) to the pool.
        let Some(row) = self.lookup.find(token_hash).await.map_err(LoadError::Other)? else {
            return Ok(None);
        };
        let now = now_ms();
        if row.idle_expires_at <= now || row.user_disabled() {
            // The expired (or orphaned) row met on access is deleted now, not at the next prune.
            db::run(&self.pool, move |conn| {
                if sessions::delete_by_id(conn, &row.id)? == 1 && !row.user_disabled() {
                    let event = NewEvent::new("session_expired").user(&row.username).session(&row.id).ip(&row.ip);
                    events::record(conn, &event)?;
                }
                Ok(())
            })
            .await
            .map_err(LoadError::Other)?;
            return Ok(None);
        }
        let mut expires_at = row.idle_expires_at;
        let wanted = now.saturating_add(duration_ms(timeouts.idle));
        let wanted = row.absolute_expires_at.map_or(wanted, |abs| wanted.min(abs));
        if wanted - row.idle_expires_at > duration_ms(timeouts.refresh_slack()) {
            let id = row.id.clone();
            let refreshed = db::run(&self.pool, move |conn| Ok(sessions::refresh(conn, &id, now, wanted)?))
                .await
                .map_err(LoadError::Other)?;
            if refreshed == 0 {
                return Ok(None); // ended while we were looking at it
            }
            expires_at = wanted;
        }
        let mut state: HashMap<String, String> = serde_json::from_str(&row.data).unwrap_or_default();
        state.insert(IDENTITY_KEY.into(), json(&row.user_id));
        let live =
            LiveSession::encode(&row.id, row.created_at, expires_at, row.absolute_expires_at, &row.role, &row.username);
        state.insert(LIVE_KEY.into(), json(&live));
        Ok(Some(state))
    }

    async fn save(
        &self,
        mut session_state: HashMap<String, String>,
        _ttl: &actix_web::cookie::time::Duration,
    ) -> Result<SessionKey, SaveError> {
        // Only signed-in sessions are stored: anonymous visitors never get a row.
        let user_id = take_string(&mut session_state, IDENTITY_KEY)
            .ok_or_else(|| SaveError::Other(anyhow::anyhow!("refusing to store a session without a user")))?;
        let ip = take_string(&mut session_state, CLIENT_IP_KEY).unwrap_or_default();
        let user_agent = take_string(&mut session_state, USER_AGENT_KEY).unwrap_or_default();
        let public_id = take_string(&mut session_state, NEW_SESSION_ID_KEY)
            .filter(|id| id.len() == 22 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
            .unwrap_or_else(|| random_b64(16));
        let cloud_token = take_string(&mut session_state, CLOUD_TOKEN_KEY);
        let cloud_role = take_string(&mut session_state, CLOUD_ROLE_KEY);
        let cloud_expires_at =
            session_state.remove(CLOUD_EXPIRES_KEY).and_then(|v| serde_json::from_str::<i64>(&v).ok());
        session_state.insert(IDENTITY_KEY.into(), json(&user_id));
        let data = persistent_data(session_state);

        let token = random_alphanumeric(64);
        let token_hash = sha256_hex(&token);
        let timeouts = self.timeouts;
        db::run(&self.pool, move |conn| {
            let now = now_ms();
            let absolute = timeouts.absolute.map(|d| now.saturating_add(duration_ms(d)));
            let idle = now.saturating_add(duration_ms(timeouts.idle));
            let idle = absolute.map_or(idle, |abs| idle.min(abs));
            // Signing in is when a user's own expired sessions are cleared away.
            sessions::delete_expired_for_user(conn, &user_id, now)?;
            sessions::insert(
                conn,
                &sessions::NewSession {
                    id: &public_id,
                    token_hash: &token_hash,
                    user_id: &user_id,
                    data: &data,
                    created_at: now,
                    last_seen_at: now,
                    idle_expires_at: idle,
                    absolute_expires_at: absolute,
                    ip: &truncate(&ip, 64),
                    user_agent: &truncate(&user_agent, 512),
                    cloud_token: cloud_token.as_deref(),
                    cloud_role: cloud_role.as_deref(),
                    cloud_expires_at,
                },
            )?;
            Ok(())
        })
        .await
        .map_err(SaveError::Other)?;
        SessionKey::try_from(token).map_err(|e| SaveError::Other(e.into()))
    }

    async fn update(
        &self,
        session_key: SessionKey,
        session_state: HashMap<String, String>,
        _ttl: &actix_web::cookie::time::Duration,
    ) -> Result<SessionKey, UpdateError> {
        let token_hash = sha256_hex(session_key.as_ref());
        let data = persistent_data(session_state);
        // 0 rows means the session was ended while this request ran: it stays ended, and the cookie
        // we hand back names nothing.
        db::run(&self.pool, move |conn| Ok(sessions::update_data(conn, &token_hash, &data)?))
            .await
            .map_err(UpdateError::Other)?;
        Ok(session_key)
    }

    async fn update_ttl(
        &self,
        _session_key: &SessionKey,
        _ttl: &actix_web::cookie::time::Duration,
    ) -> anyhow::Result<()> {
        // Sliding happens in `load`, coalesced; the middleware is configured not to call this.
        Ok(())
    }

    async fn delete(&self, session_key: &SessionKey) -> anyhow::Result<()> {
        let token_hash = sha256_hex(session_key.as_ref());
        db::run(&self.pool, move |conn| Ok(sessions::delete_by_token_hash(conn, &token_hash)?)).await?;
        Ok(())
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary (user agents are attacker-sized).
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_is_a_twentieth_capped_at_a_minute() {
        let t = |idle| Timeouts { idle: Duration::from_secs(idle), absolute: None }.refresh_slack();
        assert_eq!(t(7200), Duration::from_secs(60));
        assert_eq!(t(20), Duration::from_secs(1));
    }

    #[test]
    fn persistent_data_drops_live_and_column_keys() {
        let mut state = HashMap::new();
        state.insert(LIVE_KEY.to_owned(), "\"admin\"".to_owned());
        state.insert(CLIENT_IP_KEY.to_owned(), "\"1.2.3.4\"".to_owned());
        state.insert("keep".to_owned(), "1".to_owned());
        assert_eq!(persistent_data(state), r#"{"keep":"1"}"#);
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("ééé", 3), "é");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
