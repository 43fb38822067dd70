//! Small helpers shared across modules: clock, random tokens, hashing, formatting.

use base64::Engine;
use rand::{distributions::Alphanumeric, rngs::OsRng, Rng, RngCore};
use sha2::{Digest, Sha256};

/// Milliseconds since the Unix epoch (UTC). Every time stored in the database uses this unit, so
/// SQLite and PostgreSQL compare plain integers and every instance agrees on what "expired" means.
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Converts a duration to whole milliseconds, saturating.
pub fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A random alphanumeric string from the operating system's CSPRNG
/// (each character carries log2(62) ≈ 5.95 bits).
pub fn random_alphanumeric(len: usize) -> String {
    OsRng.sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

/// `n` random bytes from the operating system's CSPRNG, base64url without padding.
pub fn random_b64(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Lowercase hex SHA-256 of `input`.
pub fn sha256_hex(input: &str) -> String {
    hex::encode(Sha256::digest(input.as_bytes()))
}

/// Formats epoch milliseconds as `2026-11-27 17:02:21 UTC`.
pub fn format_ms(ms: i64) -> String {
    // Plain integer formatting: every signed-in page shows a few times, and `time`'s format
    // descriptions cost several times more.
    match time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_strings_have_the_asked_length_and_differ() {
        let a = random_alphanumeric(64);
        let b = random_alphanumeric(64);
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn format_ms_renders_utc() {
        assert_eq!(format_ms(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_ms(1_796_223_741_999), "2026-12-02 15:02:21 UTC");
    }
}
