//! Deletes expired sessions: in the background every `DASHBOARD_PRUNE_INTERVAL`, and once from
//! `dashboard sessions prune`.

use std::time::Duration;

use diesel::connection::SimpleConnection;

use crate::db::{self, ceremonies, devices, events, sessions, throttle, DbConn, Pool};
use crate::util::{duration_ms, now_ms};

/// Rows deleted per statement. Each expired row sits at a random place in the token index, so a
/// batch rewrites about one index page per row; a larger batch rewrites pages it shares with more of
/// its rows, and on SQLite each commit is followed by a checkpoint (copying those pages into the
/// database file and syncing it), so fewer, larger batches write and sync far less. Measured on a
/// 2-core VM, 1,000,000 expired rows under the full dashboard load: batches of 5,000 took 80 s and
/// pushed the page p99 to 147 ms (the checkpoints' syncs); batches of 20,000 took 40 s with a p99 of
/// 12.5 ms. A batch holds SQLite's write lock for about half a second there: readers never wait for it
/// in WAL mode; a sign-in may, well within the 10 s busy timeout.
pub const PRUNE_BATCH: i64 = 20_000;
/// SQLite page cache while pruning (KiB): a batch revisits index pages, and with a smaller cache
/// they spill to the WAL mid-batch (32 MiB: 49 s for the run above; 64 MiB: 40 s). Given back
/// afterwards.
const PRUNE_CACHE_KIB: i64 = 64 * 1024;
/// The background pruner's pause between batches, so page requests keep the CPU and the write lock
/// (1,000,000 expired rows: 50 batches, half a second of pauses).
const PAUSE_BETWEEN_BATCHES: Duration = Duration::from_millis(10);

/// Deletes every session expired by now, in batches; returns how many were deleted.
/// `pause` runs between batches (the background pruner yields there so page requests get the lock).
pub fn prune_expired(conn: &mut DbConn, pause: impl FnMut()) -> anyhow::Result<usize> {
    prune_expired_in_batches_of(conn, PRUNE_BATCH, pause)
}

/// [`prune_expired`] with another batch size (tests use small ones to run many batches).
pub fn prune_expired_in_batches_of(conn: &mut DbConn, batch: i64, pause: impl FnMut()) -> anyhow::Result<usize> {
    prune_expired_reporting(conn, batch, pause, |_| {})
}

/// [`prune_expired_in_batches_of`], telling `progress` how many rows each batch deleted (the
/// command's progress bar).
pub fn prune_expired_reporting(
    conn: &mut DbConn,
    batch: i64,
    mut pause: impl FnMut(),
    mut progress: impl FnMut(usize),
) -> anyhow::Result<usize> {
    let now = now_ms();
    let pruned = with_prune_cache(conn, |conn| {
        let mut total = 0;
        loop {
            let n = sessions::prune_batch(conn, now, batch)?;
            total += n;
            crate::metrics::pruned("sessions", n);
            progress(n);
            if (n as i64) < batch {
                return Ok(total);
            }
            pause();
        }
    })?;
    Ok(pruned)
}

/// How many sessions a prune run now would delete (for the command's progress bar).
pub fn count_expired(conn: &mut DbConn) -> anyhow::Result<i64> {
    Ok(sessions::count_expired(conn, now_ms())?)
}

/// Runs `f` with a larger SQLite page cache on this connection, then shrinks it back to SQLite's
/// default and frees the pages, so a pooled connection does not keep the memory.
fn with_prune_cache<T>(conn: &mut DbConn, f: impl FnOnce(&mut DbConn) -> anyhow::Result<T>) -> anyhow::Result<T> {
    if !matches!(conn, DbConn::Sqlite(_)) {
        return f(conn);
    }
    conn.batch_execute(&format!("PRAGMA cache_size = -{PRUNE_CACHE_KIB};"))?;
    let result = f(conn);
    conn.batch_execute("PRAGMA cache_size = -2000; PRAGMA shrink_memory;")?;
    result
}

/// What else is cleaned with the sessions.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    /// Audit events older than this are deleted; `None` keeps them.
    pub events: Option<Duration>,
    /// Sign-in failure counters older than this (the lockout window) no longer count.
    pub throttle_window: Duration,
}

/// Deletes old audit events and old sent or failed mail (in batches), spent sign-in counters,
/// devices not seen in 90 days, expired pending sign-ins, passkey ceremonies, account links and
/// trusted browsers;
/// returns how many rows.
pub fn prune_housekeeping(conn: &mut DbConn, retention: Retention, mut pause: impl FnMut()) -> anyhow::Result<usize> {
    let now = now_ms();
    let mut total = throttle::prune(conn, now, duration_ms(retention.throttle_window))?;
    crate::metrics::pruned("login_throttle", total);
    let devices = devices::prune(conn, now - crate::accounts::KNOWN_FOR_MS)?;
    crate::metrics::pruned("known_devices", devices);
    let pending = crate::db::pending::prune(conn, now)?;
    crate::metrics::pruned("pending_sign_ins", pending);
    let ceremonies = ceremonies::prune(conn, now)?;
    crate::metrics::pruned("webauthn_ceremonies", ceremonies);
    let tokens = crate::db::tokens::prune(conn, now)?;
    crate::metrics::pruned("account_tokens", tokens);
    let trusted = crate::db::trusted::prune(conn, now)?;
    crate::metrics::pruned("trusted_browsers", trusted);
    total += devices + pending + ceremonies + tokens + trusted;
    if let Some(keep) = retention.events {
        let before = now - duration_ms(keep);
        // Sent and failed mail is kept as long as audit events; waiting mail is never pruned.
        loop {
            let n = crate::db::outbox::prune_batch(conn, before, PRUNE_BATCH)?;
            crate::metrics::pruned("mail_outbox", n);
            total += n;
            if (n as i64) < PRUNE_BATCH {
                break;
            }
            pause();
        }
        loop {
            let n = events::prune_batch(conn, before, PRUNE_BATCH)?;
            crate::metrics::pruned("auth_events", n);
            total += n;
            if (n as i64) < PRUNE_BATCH {
                break;
            }
            pause();
        }
    }
    Ok(total)
}

/// Runs forever: every `interval`, prune. Errors are logged and the next round tries again.
pub async fn run(pool: Pool, interval: Duration, retention: Retention) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // the first tick is immediate; the first prune waits one interval
    loop {
        ticker.tick().await;
        let started = std::time::Instant::now();
        let result = db::run(&pool, move |conn| {
            let pause = || std::thread::sleep(PAUSE_BETWEEN_BATCHES);
            let pruned = prune_expired(conn, pause)?;
            prune_housekeeping(conn, retention, pause)?;
            Ok(pruned)
        })
        .await;
        match result {
            Ok(0) => tracing::debug!("pruner: no expired sessions"),
            Ok(n) => tracing::info!(
                pruned = n,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "pruner: deleted expired sessions"
            ),
            Err(e) => tracing::warn!(error = %e, "pruner: failed; will try again next interval"),
        }
    }
}
