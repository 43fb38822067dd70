//! The server's hashing threads: one per core at a low priority, fed from a bounded queue shared
//! fairly between client addresses, each thread reusing its argon2 memory from one hash to the next.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use secrecy::{ExposeSecret, SecretString};

use super::hash::{hash_blocking, keep_memory_on_this_thread, release_memory, verify_blocking};
use super::queue::{fairness_key, Job, Queue};
pub use super::queue::{Busy, HashLimits};

/// How long an idle hashing thread keeps its argon2 memory (19 MiB) for the next hash. Back-to-back
/// sign-ins (a storm, a busy morning) reuse it instead of faulting in and zeroing a fresh block each
/// time; an idle server holds none of it.
const KEEP_MEMORY_FOR: std::time::Duration = std::time::Duration::from_secs(2);

/// argon2's 19 MiB of memory per hashing thread: glibc's malloc raises its mmap threshold after the
/// first such block is freed and from then on serves them from per-thread arenas that never shrink,
/// so a thread that once hashed would keep ~19 MiB resident even after giving its memory back. A
/// fixed threshold keeps large blocks mmapped: they go back to the system when a thread releases
/// them (see [`KEEP_MEMORY_FOR`]).
fn keep_large_allocations_unpooled() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; it is called before any hashing starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}

/// What the hashing threads share with the `Hasher`s.
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    hold: Mutex<Option<HoldPoint>>,
    limits: HashLimits,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        // Jobs run outside the lock, so a poisoned lock only means a panic between two field
        // updates of our own; the queue is still consistent enough to go on.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Owned by every clone of a `Hasher`; the last one dropped stops the threads.
struct Handle(Arc<Shared>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.queue().closed = true;
        self.0.ready.notify_all();
    }
}

/// The server's hasher: one dedicated thread per core at a low scheduling priority (so while pages
/// are being served, a burst of sign-ins takes only the CPU they leave over; on an idle machine it
/// hashes at the machine's full rate), off the async workers, and a dummy hash so an unknown user
/// costs the same verification as a known one. Waiting jobs are bounded and shared fairly between
/// client addresses (see [`HashLimits`] and `Queue`).
#[derive(Clone)]
pub struct Hasher {
    handle: Arc<Handle>,
    dummy_hash: Arc<str>,
    verifications: Arc<AtomicU64>,
}

/// Where [`Hasher::hold_next`] stops the next job: it says it got there, then waits to be let go.
struct HoldPoint {
    reached: tokio::sync::oneshot::Sender<()>,
    release: std::sync::mpsc::Receiver<()>,
}

/// The next hashing job, held before it hashes (see [`Hasher::hold_next`]). Dropping it lets the
/// job go too.
pub struct HeldHash {
    reached: Option<tokio::sync::oneshot::Receiver<()>>,
    release: std::sync::mpsc::Sender<()>,
}

impl HeldHash {
    /// Waits until the held job has started (the request is now inside its hash).
    pub async fn reached(&mut self) {
        if let Some(reached) = self.reached.take() {
            let _ = reached.await;
        }
    }

    /// Lets the held job hash and finish.
    pub fn release(self) {
        let _ = self.release.send(());
    }
}

/// Lowers the calling thread's priority to nice 10: under contention it gets about a tenth of the
/// CPU share of a normal thread (Linux gives each thread its own nice value).
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority only read and change this thread's scheduling attributes.
    unsafe {
        let tid = libc::gettid();
        if libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10) != 0 {
            tracing::debug!("could not lower the hashing thread's priority");
        }
    }
}

fn work(shared: &Shared) {
    lower_this_threads_priority();
    keep_memory_on_this_thread();
    // Whether this thread holds argon2 memory from an earlier hash.
    let mut holding = false;
    loop {
        let job = {
            let mut queue = shared.queue();
            loop {
                if let Some(job) = queue.next() {
                    crate::metrics::hash_queue_depth(queue.waiting);
                    break job;
                }
                if queue.closed {
                    return; // every Hasher was dropped and nothing is left
                }
                if holding {
                    let (q, waited) =
                        shared.ready.wait_timeout(queue, KEEP_MEMORY_FOR).unwrap_or_else(PoisonError::into_inner);
                    queue = q;
                    if waited.timed_out() && queue.waiting == 0 {
                        release_memory();
                        holding = false;
                    }
                } else {
                    queue = shared.ready.wait(queue).unwrap_or_else(PoisonError::into_inner);
                }
            }
        };
        holding = true;
        // A test's hold point, if one is set, stops the first job that starts.
        let held = shared.hold.lock().ok().and_then(|mut h| h.take());
        if let Some(point) = held {
            let _ = point.reached.send(());
            let _ = point.release.recv();
        }
        // A panicking hash fails that one sign-in (its reply is dropped), not the thread.
        drop(std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)));
    }
}

impl Hasher {
    /// A hasher with `threads` threads and the default limits for them.
    pub fn new(threads: usize) -> anyhow::Result<Self> {
        Self::with_limits(HashLimits::for_threads(threads))
    }

    pub fn with_limits(limits: HashLimits) -> anyhow::Result<Self> {
        keep_large_allocations_unpooled();
        let dummy = hash_blocking(&crate::util::random_alphanumeric(32))?;
        let limits = HashLimits { threads: limits.threads.max(1), ..limits };
        let shared =
            Arc::new(Shared { queue: Mutex::default(), ready: Condvar::new(), hold: Mutex::default(), limits });
        for n in 0..limits.threads {
            let shared = shared.clone();
            std::thread::Builder::new().name(format!("argon2-{n}")).spawn(move || work(&shared))?;
        }
        Ok(Self {
            handle: Arc::new(Handle(shared)),
            dummy_hash: dummy.into(),
            verifications: Arc::new(AtomicU64::new(0)),
        })
    }

    fn shared(&self) -> &Shared {
        &self.handle.0
    }

    pub fn limits(&self) -> HashLimits {
        self.shared().limits
    }

    /// Jobs waiting for a thread (not counting those running).
    pub fn waiting(&self) -> usize {
        self.shared().queue().waiting
    }

    /// Fails with [`Busy`] when a job for `client` would be refused right now (the queue is full, in
    /// all or for that address). Callers check it before their database work, so a flood of attempts
    /// the queue would refuse anyway is refused without a round trip, and cannot crowd other people's
    /// sign-ins out of the database pool. (Advisory: the queue may fill in between; `verify` and
    /// `hash` still refuse then.)
    pub fn check_room(&self, client: &str) -> Result<(), Busy> {
        let shared = self.shared();
        let queue = shared.queue();
        let for_client = queue.by_client.get(&fairness_key(client)).map_or(0, VecDeque::len);
        if queue.waiting >= shared.limits.queue || for_client >= shared.limits.per_client {
            return Err(Busy);
        }
        Ok(())
    }

    /// For tests of races: the next job to start is held before it hashes until the returned handle
    /// is released, so a test can act while a request sits inside its hash. Costs a mutex check per
    /// job when unused (nothing next to a 19 MiB argon2 hash). Calling it again once the held job has
    /// been `reached` holds the next one too (on another thread).
    pub fn hold_next(&self) -> HeldHash {
        let (reached_tx, reached_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel();
        if let Ok(mut hold) = self.shared().hold.lock() {
            *hold = Some(HoldPoint { reached: reached_tx, release: release_rx });
        }
        HeldHash { reached: Some(reached_rx), release: release_tx }
    }

    /// Queues `f` for `client` now (so jobs queue in the order they are submitted) and returns
    /// where its result will arrive; [`Busy`] when the queue is full.
    fn submit<T: Send + 'static>(
        &self,
        client: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<tokio::sync::oneshot::Receiver<T>, Busy> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let queued = std::time::Instant::now();
        let job: Job = Box::new(move || {
            crate::metrics::hash_wait(queued.elapsed());
            // A request abandoned while its job was queued (the browser went away) costs no hash.
            if !tx.is_closed() {
                let _ = tx.send(f());
            }
        });
        let shared = self.shared();
        let waiting = {
            let mut queue = shared.queue();
            queue.push(fairness_key(client), job, &shared.limits)?;
            queue.waiting
        };
        crate::metrics::hash_queue_depth(waiting);
        shared.ready.notify_one();
        Ok(rx)
    }

    /// Runs `f` on a hashing thread for `client` and waits for its result. Queued at the call, not
    /// at the first poll.
    fn run<T: Send + 'static>(
        &self,
        client: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> impl Future<Output = anyhow::Result<T>> + Send + 'static {
        let submitted = self.submit(client, f);
        async move {
            let rx = submitted?;
            rx.await.map_err(|_| anyhow::anyhow!("a hashing thread stopped during a hash"))
        }
    }

    /// How many verifications this hasher has accepted (tests use it to check that unknown users cost
    /// one, and locked-out or refused attempts none).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Verifies `password` against `phc`, or against the dummy hash when there is no user (always
    /// false then, after the same work). `client` is the client address (`auth::client_ip`): the
    /// hashing capacity is shared fairly between addresses. Fails with [`Busy`] when the queue is
    /// full, before any hashing.
    pub fn verify(
        &self,
        password: SecretString,
        phc: Option<String>,
        client: &str,
    ) -> impl Future<Output = anyhow::Result<bool>> + Send + 'static {
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.dummy_hash.to_string());
        let submitted = self.submit(client, move || verify_blocking(password.expose_secret(), &phc));
        if submitted.is_ok() {
            self.verifications.fetch_add(1, Ordering::Relaxed);
        }
        async move {
            let rx = submitted?;
            let ok = rx.await.map_err(|_| anyhow::anyhow!("a hashing thread stopped during a hash"))?;
            Ok(ok && known)
        }
    }

    /// Hashes a new password; `client` as for [`Self::verify`].
    pub fn hash(&self, password: SecretString, client: &str) -> impl Future<Output = anyhow::Result<String>> + Send {
        let run = self.run(client, move || hash_blocking(password.expose_secret()));
        async move { run.await? }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Holds every thread of `hasher` inside a job (so nothing else starts until they are released).
    async fn occupy_every_thread(hasher: &Hasher) -> Vec<HeldHash> {
        let mut held = Vec::new();
        for n in 0..hasher.limits().threads {
            let mut hold = hasher.hold_next();
            drop(hasher.run(&format!("holder-{n}"), || ()));
            // The job was dropped unpolled: tx is closed, so once released it costs nothing.
            hold.reached().await;
            held.push(hold);
        }
        held
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_hashes_nothing() {
        let hasher = Hasher::with_limits(HashLimits { threads: 2, queue: 5, per_client: 3 }).unwrap();
        let held = occupy_every_thread(&hasher).await;
        let password = || SecretString::from("correct horse battery staple");
        // One address fills its share: the next one from it is refused, before any hashing.
        let queued: Vec<_> = (0..3).map(|_| hasher.verify(password(), None, "198.51.100.7")).collect();
        assert_eq!(hasher.waiting(), 3);
        let refused = hasher.verify(password(), None, "198.51.100.7").await.unwrap_err();
        assert!(refused.is::<Busy>(), "{refused}");
        // Another address still gets in, until the whole queue is full.
        let others: Vec<_> = (0..2).map(|_| hasher.verify(password(), None, "203.0.113.9")).collect();
        let refused = hasher.verify(password(), None, "192.0.2.1").await.unwrap_err();
        assert!(refused.is::<Busy>());
        assert_eq!(hasher.waiting(), 5);
        assert_eq!(hasher.verifications(), 5, "the refused ones are not counted");
        let refused = hasher.hash(password(), "192.0.2.1").await.unwrap_err();
        assert!(refused.is::<Busy>(), "hashing new passwords shares the same queue");
        drop(held);
        for v in queued.into_iter().chain(others) {
            assert!(!v.await.unwrap(), "unknown users never verify");
        }
        assert_eq!(hasher.waiting(), 0);
        // With room again, the flooding address is served.
        assert!(hasher.verify(password(), None, "198.51.100.7").await.is_ok());
    }

    #[tokio::test]
    async fn waiting_addresses_take_turns_and_one_alone_gets_every_thread() {
        let hasher = Hasher::with_limits(HashLimits { threads: 1, queue: 100, per_client: 100 }).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let job = |label: &'static str| {
            let order = order.clone();
            move || order.lock().unwrap().push(label)
        };
        let held = occupy_every_thread(&hasher).await;
        // A flood from one address, queued first; then two sign-ins from others.
        let mut waits = Vec::new();
        for label in ["a1", "a2", "a3", "a4", "a5"] {
            waits.push(hasher.run("10.0.0.1", job(label)));
        }
        waits.push(hasher.run("10.0.0.2", job("b1")));
        waits.push(hasher.run("10.0.0.2", job("b2")));
        waits.push(hasher.run("10.0.0.3", job("c1")));
        drop(held);
        for w in waits {
            w.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["a1", "b1", "c1", "a2", "b2", "a3", "a4", "a5"]);

        // One address alone runs on every thread at once: two jobs that each wait for the other
        // to have started can only finish if both run concurrently.
        let hasher = Hasher::with_limits(HashLimits { threads: 2, queue: 100, per_client: 100 }).unwrap();
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let (b1, b2) = (barrier.clone(), barrier);
        let first = hasher.run("10.0.0.1", move || {
            b1.wait();
        });
        let second = hasher.run("10.0.0.1", move || {
            b2.wait();
        });
        first.await.unwrap();
        second.await.unwrap();
    }

    #[tokio::test]
    async fn the_hold_point_holds_the_next_job_until_released() {
        let hasher = Hasher::new(1).unwrap();
        let mut held = hasher.hold_next();
        let verify = tokio::spawn(hasher.verify(SecretString::from("x"), None, "127.0.0.1"));
        held.reached().await;
        assert!(!verify.is_finished());
        held.release();
        assert!(!verify.await.unwrap().unwrap());
    }
}
