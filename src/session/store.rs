//! `DbSessionStore`: actix-session's `SessionStore` on the diesel `sessions` table.
//!
//! - The cookie carries a 64-character random token (≈381 bits); the row holds only its SHA-256.
//! - Expiry is enforced here, from the row, on every load: the idle expiry slides with activity and
//!   never passes the absolute one. Cookie lifetimes play no part (the cookie is a browser session
//!   cookie).
//! - Sliding is coalesced: a load writes only when the stored expiry has fallen behind
//!   `now + idle` by more than `refresh_slack` (a twentieth of the idle timeout, at most 60 s).
//! - `update` is an UPDATE, never an upsert, so a request racing a logout cannot resurrect it.
//! - `save` writes nothing: rows are created by the accounts service, in the transaction that checks
//!   the account (see [`super::context`]).

use std::collections::HashMap;
use std::time::Duration;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use secrecy::ExposeSecret;

use super::context::{self, Loaded};
use super::lookup::SessionLookup;
use super::CurrentUser;
use crate::clock::Clock;
use crate::config::DatabaseUrl;
use crate::db::events::{self, NewEvent};
use crate::db::users::Role;
use crate::db::{self, sessions, Pool};
use crate::util::{duration_ms, sha256_hex};

/// actix-identity's key in actix-session's state (its default; `startup` does not change it).
const IDENTITY_KEY: &str = "actix_identity.user_id";

/// Session lifetimes, and how many sessions one user may hold, in force for every session.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub idle: Duration,
    pub absolute: Option<Duration>,
    /// `DASHBOARD_MAX_SESSIONS_PER_USER`: a sign-in beyond it ends the user's least recently used
    /// session, in the sign-in's transaction (`accounts::insert_session`).
    pub max_per_user: usize,
}

impl Timeouts {
    /// How far the stored idle expiry may lag before a request writes a fresher one.
    pub fn refresh_slack(&self) -> Duration {
        (self.idle / 20).min(Duration::from_secs(60))
    }

    /// (idle expiry, absolute expiry) of a session that starts at `now`.
    pub fn expiries_from(&self, now: i64) -> (i64, Option<i64>) {
        let absolute = self.absolute.map(|d| now.saturating_add(duration_ms(d)));
        let idle = now.saturating_add(duration_ms(self.idle));
        (absolute.map_or(idle, |abs| idle.min(abs)), absolute)
    }
}

#[derive(Clone)]
pub struct DbSessionStore {
    pool: Pool,
    lookup: SessionLookup,
    timeouts: Timeouts,
    clock: Clock,
}

impl DbSessionStore {
    /// A store on `pool`, with its own lookup thread on `database` (the pool's database).
    pub fn new(pool: Pool, database: &DatabaseUrl, timeouts: Timeouts, clock: Clock) -> std::io::Result<Self> {
        let lookup = SessionLookup::start(database, db::health(&pool))?;
        Ok(Self { pool, lookup, timeouts, clock })
    }
}

/// The session could not be read or kept: the request goes on as anonymous, marked so that the guard
/// answers `503` (not a bare `500` from the session middleware, and not a redirect to sign in).
fn unavailable(pool: &Pool, cause: anyhow::Error) -> Option<HashMap<String, String>> {
    if !cause.is::<db::Unavailable>() {
        // A failed query on a live connection (a missing table, a corrupt file): still no session.
        db::health(pool).unavailable(format!("{cause:#}"));
    }
    context::set_loaded(Loaded::Unavailable);
    None
}

impl SessionStore for DbSessionStore {
    /// The session a cookie names, if it is live: its state for actix-session, and (through the
    /// request's context) the typed [`CurrentUser`] for the guard.
    async fn load(&self, session_key: &SessionKey) -> Result<Option<HashMap<String, String>>, LoadError> {
        let token_hash = sha256_hex(session_key.as_ref());
        let timeouts = self.timeouts;
        // The read goes to the lookup thread; the rare writes (expired row, due refresh) to the pool.
        let found = match self.lookup.find(token_hash).await {
            Ok(found) => found,
            Err(e) => return Ok(unavailable(&self.pool, e)),
        };
        let Some(row) = found else {
            context::set_loaded(Loaded::Ended);
            return Ok(None);
        };
        let now = self.clock.now_ms();
        let live_role = Role::parse(&row.role).filter(|_| row.idle_expires_at > now && !row.user_disabled());
        let Some(role) = live_role else {
            // The expired (or orphaned) row met on access is deleted now, not at the next prune.
            let deleted = db::run(&self.pool, move |conn| {
                if sessions::delete_by_id(conn, &row.id)? == 1 && !row.user_disabled() {
                    let event = NewEvent::new("session_expired").user(&row.username).session(&row.id).ip(&row.ip);
                    events::record(conn, &event)?;
                }
                Ok(())
            })
            .await;
            if let Err(e) = deleted {
                return Ok(unavailable(&self.pool, e));
            }
            context::set_loaded(Loaded::Ended);
            return Ok(None);
        };
        let mut expires_at = row.idle_expires_at;
        let wanted = now.saturating_add(duration_ms(timeouts.idle));
        let wanted = row.absolute_expires_at.map_or(wanted, |abs| wanted.min(abs));
        if wanted - row.idle_expires_at > duration_ms(timeouts.refresh_slack()) {
            let id = row.id.clone();
            let refreshed = match db::run(&self.pool, move |conn| Ok(sessions::refresh(conn, &id, now, wanted)?)).await
            {
                Ok(n) => n,
                Err(e) => return Ok(unavailable(&self.pool, e)),
            };
            if refreshed == 0 {
                context::set_loaded(Loaded::Ended); // ended while we were looking at it
                return Ok(None);
            }
            expires_at = wanted;
        }
        // actix-session's state holds only actix-identity's user id (nothing else is ever kept in a
        // session; `data` stores the same): rebuilt from the row rather than parsed from JSON.
        let mut state = HashMap::with_capacity(1);
        state.insert(IDENTITY_KEY.to_owned(), serde_json::to_string(&row.user_id).unwrap_or_default());
        context::set_loaded(Loaded::Live(CurrentUser {
            user_id: row.user_id,
            username: row.username,
            role,
            session_id: row.id,
            created_at: row.created_at,
            expires_at,
            absolute_expires_at: row.absolute_expires_at,
            notices: crate::accounts::parse_notices(row.new_device_notices.as_deref()),
            authenticated_at: row.authenticated_at,
            authenticated_with: crate::accounts::AuthMethod::parse(&row.authenticated_with)
                .unwrap_or(crate::accounts::AuthMethod::Password),
            has_totp: row.has_totp,
            has_passkey: row.has_passkey,
            second_factors_on: true,
            csrf: super::SessionCsrf(row.csrf_token),
            bound: row
                .dbsc_cookie_hash
                .zip(row.dbsc_cookie_expires_at)
                .map(|(cookie_hash, expires_at)| super::BoundCookie { cookie_hash, expires_at }),
            path: String::new(),
        }));
        Ok(Some(state))
    }

    /// Only the accounts service creates session rows, each in the transaction that checks the
    /// account; here the token it issued for this request goes to the cookie. Nothing is written
    /// here, so visitors never get a row.
    async fn save(
        &self,
        _session_state: HashMap<String, String>,
        _ttl: &actix_web::cookie::time::Duration,
    ) -> Result<SessionKey, SaveError> {
        let token = match context::take_issued() {
            Some(token) => token.expose_secret().to_owned(),
            None => {
                // A handler began a sign-in and then failed without abandoning it. No row exists for
                // this request; the cookie gets a key that names nothing (rather than a bare 500 from
                // the middleware).
                tracing::warn!("a sign-in was begun but not completed; no session stored");
                crate::util::random_alphanumeric(64)
            }
        };
        SessionKey::try_from(token).map_err(|e| SaveError::Other(e.into()))
    }

    async fn update(
        &self,
        session_key: SessionKey,
        session_state: HashMap<String, String>,
        _ttl: &actix_web::cookie::time::Duration,
    ) -> Result<SessionKey, UpdateError> {
        let token_hash = sha256_hex(session_key.as_ref());
        let data = serde_json::to_string(&session_state).map_err(|e| UpdateError::Other(e.into()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_is_a_twentieth_capped_at_a_minute() {
        let t = |idle| Timeouts { idle: Duration::from_secs(idle), absolute: None, max_per_user: 100 }.refresh_slack();
        assert_eq!(t(7200), Duration::from_secs(60));
        assert_eq!(t(20), Duration::from_secs(1));
    }

    #[test]
    fn the_idle_expiry_never_passes_the_absolute_one() {
        let t = Timeouts { idle: Duration::from_secs(10), absolute: Some(Duration::from_secs(4)), max_per_user: 100 };
        assert_eq!(t.expiries_from(1_000), (5_000, Some(5_000)));
        let t = Timeouts { idle: Duration::from_secs(10), absolute: None, max_per_user: 100 };
        assert_eq!(t.expiries_from(1_000), (11_000, None));
    }
}
