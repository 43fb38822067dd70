//! The time the server goes by. Real in production; tests move it forward instead of sleeping, so
//! expiry, lockout and absolute-timeout tests run in milliseconds and cannot flake.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Epoch milliseconds: the system clock plus an offset that only tests change.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    pub fn now_ms(&self) -> i64 {
        crate::util::now_ms().saturating_add(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves this clock (and every copy of it) forward, as if `by` had passed.
    pub fn advance(&self, by: Duration) {
        self.offset_ms.fetch_add(crate::util::duration_ms(by), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_every_copy() {
        let clock = Clock::system();
        let copy = clock.clone();
        let before = copy.now_ms();
        clock.advance(Duration::from_secs(3600));
        assert!(copy.now_ms() >= before + 3_600_000);
    }
}
