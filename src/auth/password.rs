//! Passwords: argon2id with OWASP's parameters (m=19456 KiB, t=2, p=1) as PHC strings, computed on
//! the blocking pool behind a semaphore so that a burst of sign-ins cannot starve page serving.

use std::sync::Arc;

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::config::PASSWORD_MAX_LENGTH;

fn argon2() -> Argon2<'static> {
    // Params::DEFAULT is OWASP's second row: m=19456 KiB, t=2, p=1.
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::DEFAULT)
}

/// Hashes on the current thread. For the command line and start-up; the server uses [`Hasher`].
pub fn hash_blocking(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

/// Verifies on the current thread. A malformed stored hash verifies as false.
pub fn verify_blocking(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => argon2().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Why a new password is refused; the text is shown to the person setting it.
pub fn check_policy(password: &str, username: &str, min_length: usize) -> Result<(), String> {
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
    Ok(())
}

/// The server's hasher: bounded concurrency, off the async workers, and a dummy hash so an unknown
/// user costs the same verification as a known one.
#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    dummy_hash: Arc<str>,
}

impl Hasher {
    pub fn new(concurrency: usize) -> anyhow::Result<Self> {
        let dummy = hash_blocking(&crate::util::random_alphanumeric(32))?;
        Ok(Self { permits: Arc::new(Semaphore::new(concurrency.max(1))), dummy_hash: dummy.into() })
    }

    /// Verifies `password` against `phc`, or against the dummy hash when there is no user (always
    /// false then, after the same work).
    pub async fn verify(&self, password: SecretString, phc: Option<String>) -> anyhow::Result<bool> {
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.dummy_hash.to_string());
        let _permit = self.permits.acquire().await?;
        let ok = tokio::task::spawn_blocking(move || verify_blocking(password.expose_secret(), &phc)).await?;
        Ok(ok && known)
    }

    pub async fn hash(&self, password: SecretString) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await?;
        tokio::task::spawn_blocking(move || hash_blocking(password.expose_secret())).await?
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
    }
}
