//! A test hook: a point in a request where a test can stop the next request that reaches it, do
//! something meanwhile, and let it go — so a race is ordered by the test, not by timing. Unarmed
//! (always, outside tests), passing it costs one uncontended lock.

use std::sync::Mutex;

use tokio::sync::oneshot;

#[derive(Default)]
pub struct HoldPoint {
    armed: Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
}

/// The request held at a [`HoldPoint`]. Dropping it lets the request go too.
pub struct Held {
    reached: Option<oneshot::Receiver<()>>,
    release: oneshot::Sender<()>,
}

impl HoldPoint {
    /// Arms the point: the next request to reach it waits there until released.
    pub fn hold_next(&self) -> Held {
        let (reached_tx, reached_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        if let Ok(mut armed) = self.armed.lock() {
            *armed = Some((reached_tx, release_rx));
        }
        Held { reached: Some(reached_rx), release: release_tx }
    }

    /// Where a request passes: it waits here only when the point is armed.
    pub async fn pass(&self) {
        let armed = self.armed.lock().ok().and_then(|mut a| a.take());
        if let Some((reached, release)) = armed {
            let _ = reached.send(());
            let _ = release.await;
        }
    }
}

impl Held {
    /// Waits until a request is held.
    pub async fn reached(&mut self) {
        if let Some(reached) = self.reached.take() {
            let _ = reached.await;
        }
    }

    /// Lets the held request go on.
    pub fn release(self) {
        let _ = self.release.send(());
    }
}
