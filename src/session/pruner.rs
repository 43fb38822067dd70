//! Deletes expired sessions: in the background every `DASHBOARD_PRUNE_INTERVAL`, and once from
//! `dashboard sessions prune`.

use std::time::Duration;

use diesel::connection::SimpleConnection;

use crate::db::{self, events, sessions, throttle, DbConn, Pool};
use crate::util::{duration_ms, now_ms};

/// Rows deleted per statement. Each expired row sits at a random place in the token and id indexes,
/// so a batch rewrites about one index page per row per index; a larger batch rewrites pages it
/// shares with more of its rows. 5,000 rows hold SQLite's write lock for about 0.1 s (readers never
/// wait for it in WAL mode; a sign-in may), and pruned 1,000,000 rows in about 24 s where 1,000 took 35 s.
pub const PRUNE_BATCH: i64 = 5000;
/// SQLite page cache while pruning (KiB): the deletes revisit index pages. Given back afterwards.
const PRUNE_CACHE_KIB: i64 = 16 * 1024;
/// The background pruner's pause between batches, so page requests keep the CPU and the write lock
/// (1,000,000 expired rows: 200 batches, about 2 s of pauses).
const PAUSE_BETWEEN_BATCHES: Duration = Duration::from_millis(10);

/// Deletes every session expired by now, in batches; returns how many were deleted.
/// `pause` runs between batches (the background pruner yields there so page requests get the lock).
pub fn prune_expired(conn: &mut DbConn, mut pause: impl FnMut()) -> anyhow::Result<usize> {
    let now = now_ms();
    with_prune_cache(conn, |conn| {
        let mut total = 0;
        loop {
            let n = sessions::prune_batch(conn, now, PRUNE_BATCH)?;
            total += n;
            if (n as i64) < PRUNE_BATCH {
                return Ok(total);
            }
            pause();
        }
    })
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

/// Deletes old audit events (in batches) and spent sign-in counters; returns how many rows.
pub fn prune_housekeeping(conn: &mut DbConn, retention: Retention, mut pause: impl FnMut()) -> anyhow::Result<usize> {
    let now = now_ms();
    let mut total = throttle::prune(conn, now, duration_ms(retention.throttle_window))?;
    if let Some(keep) = retention.events {
        let before = now - duration_ms(keep);
        loop {
            let n = events::prune_batch(conn, before, PRUNE_BATCH)?;
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
