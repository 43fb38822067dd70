//! Deletes expired sessions: in the background every `DASHBOARD_PRUNE_INTERVAL`, and once from
//! `dashboard sessions prune`.

use std::time::Duration;

use crate::db::{self, sessions, DbConn, Pool};
use crate::util::now_ms;

/// Rows deleted per statement: small enough that no statement holds the write lock for long.
pub const PRUNE_BATCH: i64 = 1000;

/// Deletes every session expired by now, in batches; returns how many were deleted.
/// `pause` runs between batches (the background pruner yields there so page requests get the lock).
pub fn prune_expired(conn: &mut DbConn, mut pause: impl FnMut()) -> anyhow::Result<usize> {
    let now = now_ms();
    let mut total = 0;
    loop {
        let n = sessions::prune_batch(conn, now, PRUNE_BATCH)?;
        total += n;
        if (n as i64) < PRUNE_BATCH {
            return Ok(total);
        }
        pause();
    }
}

/// Runs forever: every `interval`, prune. Errors are logged and the next round tries again.
pub async fn run(pool: Pool, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // the first tick is immediate; the first prune waits one interval
    loop {
        ticker.tick().await;
        let result = db::run(&pool, |conn| prune_expired(conn, || std::thread::sleep(Duration::from_millis(5)))).await;
        match result {
            Ok(0) => tracing::debug!("pruner: no expired sessions"),
            Ok(n) => tracing::info!(pruned = n, "pruner: deleted expired sessions"),
            Err(e) => tracing::warn!(error = %e, "pruner: failed; will try again next interval"),
        }
    }
}
