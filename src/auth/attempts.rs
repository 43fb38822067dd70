//! Failed-attempt limits that parallel requests cannot outrun. Every check of a password (sign-in,
//! the current password of a password change) first **reserves** an attempt on each of its counters
//! (the submitted username's, and at sign-in the client address's) in one statement, before any
//! hashing: at the limit the reservation is refused and nothing is hashed. So with a limit of N, at
//! most N wrong attempts for a username are ever checked before the lock, however many arrive at
//! once. A failed check keeps its reservation (and may set the lock); a successful one gives it back.

use crate::db::events::{self, NewEvent};
use crate::db::{self, throttle};
use crate::error::AppError;
use crate::state::AppState;
use crate::util::duration_ms;

/// A counter to reserve an attempt on, with its limit.
#[derive(Clone, Debug)]
pub struct Counter {
    pub key: String,
    pub limit: i64,
    /// What a lock on it locks, as the audit log says (`username`, `client address`).
    pub what: &'static str,
    /// Whether each further lock lasts twice the one before (a username's do, until a success; an
    /// address's do not: many people may share one).
    pub grows: bool,
}

/// A lock a failure set: what it locks and until when (epoch ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Locked {
    pub what: &'static str,
    pub until: i64,
}

/// What the audit log says of a lock: what it locks, and for how long (`username, for 30
/// minutes`).
pub fn lock_detail(what: &str, length_ms: i64) -> String {
    let minutes = (length_ms + 59_999) / 60_000;
    match minutes {
        m if m % 60 == 0 => format!("{what}, for {}", crate::util::count((m / 60) as usize, "hour")),
        m => format!("{what}, for {}", crate::util::count(m as usize, "minute")),
    }
}

impl Counter {
    /// The submitted username's counter (existing or not).
    pub fn user(state: &AppState, submitted: &str) -> Self {
        Counter {
            key: throttle::user_key(submitted),
            limit: i64::from(state.config.login_max_failures),
            what: "username",
            grows: true,
        }
    }

    /// The client address's counter (ten times the username's limit: spraying one password over many
    /// names is stopped too).
    pub fn ip(state: &AppState, ip: &str) -> Self {
        Counter {
            key: throttle::ip_key(ip),
            limit: i64::from(state.config.ip_max_failures()),
            what: "client address",
            grows: false,
        }
    }
}

/// Reserves one attempt on every counter, or on none, then (when reserved) runs `then` on the same
/// connection — one database call for both. `Err(retry_at)` (epoch ms) when a counter is locked or
/// at its limit.
pub async fn reserve_then<T: Send + 'static>(
    state: &AppState,
    counters: &[Counter],
    then: impl FnOnce(&mut crate::db::DbConn) -> diesel::QueryResult<T> + Send + 'static,
) -> Result<Result<T, i64>, AppError> {
    let (counters, now, window) = (counters.to_vec(), state.now_ms(), duration_ms(state.config.login_lockout));
    let reserved = db::run(&state.pool, move |conn| {
        let wanted: Vec<(&str, i64)> = counters.iter().map(|c| (c.key.as_str(), c.limit)).collect();
        let reserved = throttle::reserve(conn, &wanted, now, window)?;
        if reserved.len() == counters.len() {
            return Ok(Ok(then(conn)?));
        }
        // Refused on some counter: give back what was reserved on the others, so this attempt is not
        // checked and counts nowhere. (Meanwhile it briefly counted there; that can only refuse
        // another attempt, never let one more through.)
        for key in &reserved {
            throttle::release(conn, key)?;
        }
        let keys: Vec<&str> = counters.iter().map(|c| c.key.as_str()).collect();
        // Locked: until the lock ends. At the limit with attempts still being checked: the next
        // moment one of them may give its reservation back.
        let until = throttle::locked_until(conn, &keys, now)?.unwrap_or(now + 1_000);
        Ok(Err(until))
    })
    .await?;
    Ok(reserved)
}

/// The checked attempt failed: the reservations stay counted, and `event` (a `sign_in_failed`) is
/// recorded in the same database call, followed by a `locked_out` event naming what is locked and
/// for how long when this failure locked a counter. Returns the lock it set (the first counter's,
/// when it set several).
pub async fn fail(state: &AppState, counters: &[Counter], event: NewEvent) -> Result<Option<Locked>, AppError> {
    let (counters, now, window) = (counters.to_vec(), state.now_ms(), duration_ms(state.config.login_lockout));
    db::run(&state.pool, move |conn| {
        events::record(conn, &event)?;
        let mut first = None;
        for c in &counters {
            let Some(lock) = throttle::fail(conn, &c.key, now, window, c.limit, c.grows)? else { continue };
            crate::metrics::lockout(c.what);
            first = first.or(Some(Locked { what: c.what, until: lock.until }));
            let mut recorded = NewEvent::new("locked_out").detail(lock_detail(c.what, lock.length));
            (recorded.username, recorded.client_ip, recorded.session_id) =
                (event.username.clone(), event.client_ip.clone(), event.session_id.clone());
            events::record(conn, &recorded)?;
        }
        Ok(first)
    })
    .await
    .map_err(AppError::from)
}

/// The checked attempt was not a failure: its reservations are given back.
pub async fn release(state: &AppState, counters: &[Counter]) -> Result<(), AppError> {
    let counters = counters.to_vec();
    db::run(&state.pool, move |conn| {
        for c in &counters {
            throttle::release(conn, &c.key)?;
        }
        Ok(())
    })
    .await
    .map_err(AppError::from)
}
