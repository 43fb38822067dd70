//! Passwords: argon2id with OWASP's parameters (m=19456 KiB, t=2, p=1) as PHC strings, computed on
//! a few low-priority threads of their own so that a burst of sign-ins cannot starve page serving.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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

/// The server's hasher: `concurrency` dedicated threads at a low scheduling priority (so while pages
/// are being served, a burst of sign-ins takes only the CPU they leave over; on an idle machine a hash
/// runs at full speed), off the async workers, and a dummy hash so an unknown user costs the same
/// verification as a known one. Hashes beyond `concurrency` wait in a queue.
#[derive(Clone)]
pub struct Hasher {
    jobs: std::sync::mpsc::Sender<Job>,
    dummy_hash: Arc<str>,
    verifications: Arc<AtomicU64>,
    hold: Arc<std::sync::Mutex<Option<HoldPoint>>>,
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

impl Hasher {
    pub fn new(concurrency: usize) -> anyhow::Result<Self> {
        keep_large_allocations_unpooled();
        let dummy = hash_blocking(&crate::util::random_alphanumeric(32))?;
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        let hold: Arc<std::sync::Mutex<Option<HoldPoint>>> = Arc::default();
        for n in 0..concurrency.max(1) {
            let queue = queue.clone();
            let hold = hold.clone();
            std::thread::Builder::new().name(format!("argon2-{n}")).spawn(move || {
                lower_this_threads_priority();
                loop {
                    // The lock is held only to take the next job; the hash runs without it.
                    let job = match queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    // A test's hold point, if one is set, stops the first job that starts.
                    let held = hold.lock().ok().and_then(|mut h| h.take());
                    if let (Ok(_), Some(point)) = (&job, held) {
                        let _ = point.reached.send(());
                        let _ = point.release.recv();
                    }
                    match job {
                        // A panicking hash fails that one sign-in (its reply is dropped), not the thread.
                        Ok(job) => drop(std::panic::catch_unwind(std::panic::AssertUnwindSafe(job))),
                        Err(_) => return, // every Hasher was dropped
                    }
                }
            })?;
        }
        Ok(Self { jobs, dummy_hash: dummy.into(), verifications: Arc::new(AtomicU64::new(0)), hold })
    }

    /// For tests of races: the next job to start is held before it hashes until the returned handle
    /// is released, so a test can act while a request sits inside its hash. Costs a mutex check per
    /// job when unused (nothing next to a 19 MiB argon2 hash).
    pub fn hold_next(&self) -> HeldHash {
        let (reached_tx, reached_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel();
        if let Ok(mut hold) = self.hold.lock() {
            *hold = Some(HoldPoint { reached: reached_tx, release: release_rx });
        }
        HeldHash { reached: Some(reached_rx), release: release_tx }
    }

    /// Runs `f` on a hashing thread and waits for its result.
    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                // A request abandoned while its job was queued (the browser went away) costs no hash.
                if !tx.is_closed() {
                    let _ = tx.send(f());
                }
            }))
            .map_err(|_| anyhow::anyhow!("the hashing threads have stopped"))?;
        rx.await.map_err(|_| anyhow::anyhow!("a hashing thread stopped during a hash"))
    }

    /// How many verifications this hasher has run (tests use it to check that unknown users cost one
    /// and locked-out attempts none).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Verifies `password` against `phc`, or against the dummy hash when there is no user (always
    /// false then, after the same work).
    pub async fn verify(&self, password: SecretString, phc: Option<String>) -> anyhow::Result<bool> {
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.dummy_hash.to_string());
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let ok = self.run(move || verify_blocking(password.expose_secret(), &phc)).await?;
        Ok(ok && known)
    }

    pub async fn hash(&self, password: SecretString) -> anyhow::Result<String> {
        self.run(move || hash_blocking(password.expose_secret())).await?
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
}
