//! Passwords: argon2id with OWASP's parameters (m=19456 KiB, t=2, p=1) as PHC strings, computed on
//! low-priority threads of their own (one per core) so that a burst of sign-ins cannot starve page
//! serving, from a bounded queue shared fairly between client addresses.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};

use crate::config::PASSWORD_MAX_LENGTH;

fn argon2() -> Argon2<'static> {
    // Params::DEFAULT is OWASP's second row: m=19456 KiB, t=2, p=1.
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::DEFAULT)
}

/// NFKC, as NIST SP 800-63B asks: the same password typed on two keyboards (composed or
/// decomposed accents, full-width forms) is the same password. Applied before every hash and check.
pub fn normalize(password: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    password.nfkc().collect()
}

/// Hashes on the current thread. For the command line and start-up; the server uses [`Hasher`].
pub fn hash_blocking(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(normalize(password).as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

/// Verifies on the current thread. A malformed stored hash verifies as false.
pub fn verify_blocking(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => argon2().verify_password(normalize(password).as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// True when a stored hash is weaker than what we hash with now (another algorithm or version, or
/// lower argon2 costs): it is re-hashed at the next successful sign-in.
pub fn needs_rehash(phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return true };
    if parsed.algorithm != Algorithm::Argon2id.ident() || parsed.version != Some(Version::V0x13.into()) {
        return true;
    }
    let Ok(params) = Params::try_from(&parsed) else { return true };
    let want = Params::DEFAULT;
    params.m_cost() < want.m_cost() || params.t_cost() < want.t_cost() || params.p_cost() < want.p_cost()
}

/// Why a new password is refused; the text is shown to the person setting it. The rules of NIST
/// SP 800-63B: a minimum length (code points, after NFKC), at most 1024, no composition rules, and no
/// password that is common or guessable (zxcvbn's estimate, with its lists of common passwords,
/// words and names) or that contains the username.
pub fn check_policy(password: &str, username: &str, min_length: usize) -> Result<(), String> {
    let password = normalize(password);
    let password = password.as_str();
    let length = password.chars().count();
    if length < min_length {
        return Err(format!("The password must be at least {min_length} characters long."));
    }
    if length > PASSWORD_MAX_LENGTH {
        return Err(format!("The password must be at most {PASSWORD_MAX_LENGTH} characters long."));
    }
    if !username.is_empty() && password.to_lowercase().contains(&username.to_lowercase()) {
        return Err("The password must not contain the username.".into());
    }
    if password.chars().all(|c| c == password.chars().next().unwrap_or(c)) {
        return Err("The password must not be one character repeated.".into());
    }
    // The estimator's cost grows with length; the first 256 characters decide whether a password is
    // a common one.
    let head: String = password.chars().take(256).collect();
    let estimate = zxcvbn::zxcvbn(&head, &[username, "dashboard"]);
    if estimate.score() < zxcvbn::Score::Three {
        return Err("The password is too common or too easy to guess. A few unrelated words make a good one.".into());
    }
    Ok(())
}

/// argon2 allocates its 19 MiB of memory per hash. glibc's malloc raises its mmap threshold after the
/// first such block is freed and from then on serves them from per-thread arenas that never shrink,
/// so every blocking thread that ever hashed would keep ~19 MiB resident. A fixed threshold keeps
/// large blocks mmapped: they go back to the system when each hash ends.
fn keep_large_allocations_unpooled() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; it is called before any hashing starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// How much hashing work may wait. Beyond either bound a request is refused at once ([`Busy`]: a
/// quick `503` with `Retry-After`) instead of waiting behind seconds of other people's hashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashLimits {
    /// Hashing threads: one per core (at nice 10, so page serving still wins).
    pub threads: usize,
    /// Jobs waiting (not yet started) over all clients.
    pub queue: usize,
    /// Jobs waiting for one client address: one address can never fill the whole queue.
    pub per_client: usize,
}

impl HashLimits {
    /// The defaults for `threads` threads: 16 waiting jobs per thread for one address (under a
    /// second of hashing at OWASP's parameters) and 64 per thread in all.
    pub fn for_threads(threads: usize) -> Self {
        let threads = threads.max(1);
        Self { threads, queue: 64 * threads, per_client: 16 * threads }
    }
}

/// The hashing queue is full (in all, or for this client address): the request is refused before
/// any hashing. A handler that `?`s it answers a `503` page with `Retry-After` (`AppError::Busy`).
#[derive(Debug, thiserror::Error)]
#[error("too many passwords are being checked right now")]
pub struct Busy;

/// The waiting jobs, one FIFO per client address, served round-robin: each address with work
/// waiting gets the next free thread in turn. So a flood from one address delays another address
/// by at most about one hash, and an address alone (an office behind one NAT) still gets every
/// thread when nobody else is waiting.
#[derive(Default)]
struct Queue {
    by_client: HashMap<String, VecDeque<Job>>,
    /// Addresses with waiting jobs, in the order they get a thread.
    turn: VecDeque<String>,
    waiting: usize,
    /// Set when the last `Hasher` is dropped: the threads finish what is queued, then stop.
    closed: bool,
}

impl Queue {
    fn push(&mut self, client: String, job: Job, limits: &HashLimits) -> Result<(), Busy> {
        if self.waiting >= limits.queue {
            return Err(Busy);
        }
        let jobs = self.by_client.entry(client.clone()).or_default();
        if jobs.len() >= limits.per_client {
            return Err(Busy);
        }
        jobs.push_back(job);
        if jobs.len() == 1 {
            // It had nothing waiting: it joins the end of the round.
            self.turn.push_back(client);
        }
        self.waiting += 1;
        Ok(())
    }

    /// The next job in round-robin order.
    fn next(&mut self) -> Option<Job> {
        let client = self.turn.pop_front()?;
        let jobs = self.by_client.get_mut(&client)?;
        let job = jobs.pop_front()?;
        if jobs.is_empty() {
            self.by_client.remove(&client);
        } else {
            self.turn.push_back(client);
        }
        self.waiting -= 1;
        Some(job)
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

/// The key hashing capacity is shared by: the client address, an IPv6 address by its /64 (one
/// subscriber's network: an attacker there has 2^64 addresses to spread a flood over).
fn fairness_key(client: &str) -> String {
    match client.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Ok(std::net::IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(|v4| v4.to_string()).unwrap_or_default(),
        _ => client.to_owned(),
    }
}

fn work(shared: &Shared) {
    lower_this_threads_priority();
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
                queue = shared.ready.wait(queue).unwrap_or_else(PoisonError::into_inner);
            }
        };
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

    #[test]
    fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let h = hash_blocking("correct horse battery staple").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_blocking("correct horse battery staple", &h));
        assert!(!verify_blocking("correct horse battery stapl", &h));
        assert!(!verify_blocking("x", "not a hash"));
    }

    #[test]
    fn policy_explains_each_refusal() {
        assert!(check_policy("short", "bob", 15).unwrap_err().contains("at least 15"));
        assert!(check_policy(&"a".repeat(1025), "bob", 15).unwrap_err().contains("at most 1024"));
        assert!(check_policy("my name is bob!! ok", "bob", 15).unwrap_err().contains("username"));
        assert!(check_policy("aaaaaaaaaaaaaaaa", "bob", 15).unwrap_err().contains("repeated"));
        assert!(check_policy("correct horse battery staple 🐴", "bob", 15).is_ok());
        for common in ["passwordpassword", "qwertyuiopasdfgh", "123456789012345", "iloveyouiloveyou"] {
            assert!(check_policy(common, "bob", 15).unwrap_err().contains("too common"), "{common}");
        }
    }

    #[test]
    fn passwords_are_compared_after_nfkc() {
        let composed = "caf\u{e9} au lait, bien chaud";
        let decomposed = "cafe\u{301} au lait, bien chaud";
        let h = hash_blocking(composed).unwrap();
        assert!(verify_blocking(decomposed, &h));
        // Each code point counts once: 15 accented letters meet a minimum of 15.
        assert!(check_policy(&"é".repeat(14), "x", 15).is_err());
    }

    #[test]
    fn weaker_hashes_need_a_rehash() {
        assert!(!needs_rehash(&hash_blocking("correct horse battery staple").unwrap()));
        let weak = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(8192, 1, 1, None).unwrap())
            .hash_password(b"x", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(needs_rehash(&weak));
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, Params::DEFAULT)
            .hash_password(b"x", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(needs_rehash(&argon2i));
        assert!(needs_rehash("garbage"));
    }

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

    #[test]
    fn ipv6_clients_share_by_their_64_and_mapped_ipv4_by_the_address() {
        assert_eq!(fairness_key("2001:db8:1:2:aaaa::1"), fairness_key("2001:db8:1:2:bbbb::2"));
        assert_ne!(fairness_key("2001:db8:1:2::1"), fairness_key("2001:db8:1:3::1"));
        assert_eq!(fairness_key("::ffff:192.0.2.1"), "192.0.2.1");
        assert_eq!(fairness_key("192.0.2.1"), "192.0.2.1");
        assert_eq!(fairness_key(""), "");
    }
}
