//! argon2id with OWASP's parameters (m=19456 KiB, t=2, p=1) as PHC strings, on the calling thread,
//! in memory the thread keeps from one hash to the next.
//!
//! A fresh 19 MiB block for every hash cost about a quarter of a sign-in's time (faulting the pages
//! in and zeroing them; `perf` showed it in the kernel). Every block of argon2's memory is written
//! before it is read, so a thread's earlier memory can be handed to the next hash as it is
//! (`hash_password_into_with_memory`). The hashing threads give it back when they go idle
//! (`release_memory`, called from the pool).
//!
//! argon2 0.5 picks its AVX2 block function at run time (`cpufeatures`): there is no feature to turn on.

use std::cell::{Cell, RefCell};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use super::policy::normalize;

fn argon2() -> Argon2<'static> {
    // Params::DEFAULT is OWASP's second row: m=19456 KiB, t=2, p=1.
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::DEFAULT)
}

thread_local! {
    /// This thread's argon2 memory, kept between hashes (at most today's parameters' size) on the
    /// pool's hashing threads, given back after each hash on any other thread (commands, start-up).
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
    static KEEPS_MEMORY: Cell<bool> = const { Cell::new(false) };
}

/// For the pool's hashing threads: this thread keeps its argon2 memory from one hash to the next
/// (until [`release_memory`]).
pub(super) fn keep_memory_on_this_thread() {
    KEEPS_MEMORY.with(|keeps| keeps.set(true));
}

/// Gives this thread's argon2 memory back to the system (the next hash allocates it again).
pub(super) fn release_memory() {
    MEMORY.with(|m| *m.borrow_mut() = Vec::new());
}

/// `argon`'s hash of `password` and `salt` into `out`, in this thread's kept memory. A stored hash
/// with a larger memory cost than today's (never written by this server) gets memory of its own for
/// that one hash, so what a thread keeps stays bounded.
fn hash_into(argon: &Argon2<'_>, password: &[u8], salt: &[u8], out: &mut [u8]) -> argon2::Result<()> {
    let blocks = argon.params().block_count();
    if blocks > Params::DEFAULT.block_count() {
        return argon.hash_password_into(password, salt, out);
    }
    let hashed = MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        argon.hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
    });
    if !KEEPS_MEMORY.with(Cell::get) {
        release_memory();
    }
    hashed
}

/// Hashes on the current thread. For the command line and start-up; the server uses the pool's
/// `Hasher`.
pub fn hash_blocking(password: &str) -> anyhow::Result<String> {
    let fail = |e: &dyn std::fmt::Display| anyhow::anyhow!("cannot hash the password: {e}");
    let salt = SaltString::generate(&mut OsRng);
    let argon = argon2();
    let mut salt_bytes = [0u8; 64];
    let raw_salt = salt.as_salt().decode_b64(&mut salt_bytes).map_err(|e| fail(&e))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    hash_into(&argon, normalize(password).as_bytes(), raw_salt, &mut out).map_err(|e| fail(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon.params()).map_err(|e| fail(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| fail(&e))?),
    };
    Ok(phc.to_string())
}

/// Verifies on the current thread. A malformed stored hash verifies as false.
pub fn verify_blocking(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => verify_parsed(normalize(password).as_bytes(), &parsed).unwrap_or(false),
        Err(_) => false,
    }
}

/// What `PasswordVerifier::verify_password` does, in this thread's kept memory: the stored hash's
/// algorithm, version and costs, and a constant-time comparison (`Output`'s `==`).
fn verify_parsed(password: &[u8], phc: &PasswordHash<'_>) -> Result<bool, argon2::password_hash::Error> {
    let (Some(salt), Some(expected)) = (phc.salt, &phc.hash) else { return Ok(false) };
    let algorithm = Algorithm::try_from(phc.algorithm)?;
    let version = phc.version.map(Version::try_from).transpose()?.unwrap_or_default();
    let argon = Argon2::new(algorithm, version, Params::try_from(phc)?);
    let mut salt_bytes = [0u8; 64];
    let raw_salt = salt.decode_b64(&mut salt_bytes)?;
    let mut out = [0u8; Output::MAX_LENGTH];
    let out = out.get_mut(..expected.len()).ok_or(argon2::password_hash::Error::OutputSize {
        provided: std::cmp::Ordering::Greater,
        expected: Output::MAX_LENGTH,
    })?;
    hash_into(&argon, password, raw_salt, out)?;
    Ok(Output::new(out)? == *expected)
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

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};

    #[test]
    fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let h = hash_blocking("correct horse battery staple").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_blocking("correct horse battery staple", &h));
        assert!(!verify_blocking("correct horse battery stapl", &h));
        assert!(!verify_blocking("x", "not a hash"));
    }

    #[test]
    fn passwords_are_compared_after_nfkc() {
        let composed = "caf\u{e9} au lait, bien chaud";
        let decomposed = "cafe\u{301} au lait, bien chaud";
        let h = hash_blocking(composed).unwrap();
        assert!(verify_blocking(decomposed, &h));
    }

    /// The kept memory changes nothing: hashes made by the crate's own allocating path verify here
    /// (whatever this thread hashed before, and with other costs), and ours verify there.
    #[test]
    fn kept_memory_agrees_with_the_crate_s_own_hashing() {
        keep_memory_on_this_thread(); // as a hashing thread does (each test has its own thread)
        let salt = || SaltString::generate(&mut OsRng);
        let small = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(8192, 1, 1, None).unwrap());
        for (argon, password) in [(argon2(), "first one"), (small, "second"), (argon2(), "third, after a smaller one")]
        {
            let theirs = argon.hash_password(password.as_bytes(), &salt()).unwrap().to_string();
            assert!(verify_blocking(password, &theirs), "{theirs}");
            assert!(!verify_blocking("not it", &theirs));
        }
        let ours = hash_blocking("correct horse battery staple").unwrap();
        argon2().verify_password(b"correct horse battery staple", &PasswordHash::new(&ours).unwrap()).unwrap();
        release_memory();
        assert!(verify_blocking("correct horse battery staple", &ours), "after the memory was given back");
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x10, Params::new(8192, 2, 1, Some(16)).unwrap())
            .hash_password(b"old", &salt())
            .unwrap()
            .to_string();
        assert!(verify_blocking("old", &argon2i), "other algorithms, versions and lengths: {argon2i}");
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
