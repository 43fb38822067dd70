//! Sealing small secrets kept at rest or handed to the browser: ChaCha20-Poly1305 under a key
//! derived from the server key for one purpose, with associated data that binds a sealed value to
//! what it belongs to (a session, a user), so it opens only there.

use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::ChaCha20Poly1305;

/// A key for one purpose.
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl Sealer {
    /// The sealer for `purpose` (each purpose has a key of its own, derived from `master`).
    pub fn new(master: &[u8], purpose: &[u8]) -> Self {
        let key = crate::util::derive_key(master, purpose);
        Self { cipher: ChaCha20Poly1305::new(&key.into()) }
    }

    /// `plain` sealed for `bound_to` (a fresh nonce each time), as base64url.
    pub fn seal(&self, bound_to: &str, plain: &[u8]) -> String {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let payload = Payload { msg: plain, aad: bound_to.as_bytes() };
        let sealed = self.cipher.encrypt(&nonce, payload).expect("encryption of a short message cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
    }

    /// What [`Sealer::seal`] sealed for `bound_to`; `None` when it was sealed for something else,
    /// under another key, or altered.
    pub fn open(&self, bound_to: &str, sealed: &str) -> Option<Vec<u8>> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if bytes.len() < 12 {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        self.cipher
            .decrypt(chacha20poly1305::Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: bound_to.as_bytes() })
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::Sealer;

    #[test]
    fn a_sealed_value_opens_only_for_what_it_was_bound_to_and_under_its_purpose() {
        let a = Sealer::new(&[7u8; 64], b"purpose a");
        let b = Sealer::new(&[7u8; 64], b"purpose b");
        let sealed = a.seal("user-1", b"secret");
        assert_eq!(a.open("user-1", &sealed).as_deref(), Some(&b"secret"[..]));
        assert!(a.open("user-2", &sealed).is_none());
        assert!(b.open("user-1", &sealed).is_none());
        assert!(a.open("user-1", "garbage").is_none());
        assert_ne!(sealed, a.seal("user-1", b"secret"));
    }
}
