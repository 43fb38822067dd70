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
    hex_lower(&Sha256::digest(input.as_bytes()))
}

/// Lowercase hex of `bytes`, through a table into one allocation (every signed-in request hashes its
/// token: `hex::encode` went through `FromIterator<char>`, a push per character).
pub fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 0x0f)]);
    }
    // Only ASCII digits and letters were written.
    String::from_utf8(out).unwrap_or_default()
}

/// A 32-byte key for one `purpose`, derived from the master key (HMAC-SHA256), so each use of the
/// master key (CSRF tokens, the CSRF cookie, sealed cloud tokens) has a key of its own.
pub fn derive_key(master: &[u8], purpose: &[u8]) -> [u8; 32] {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(master).expect("HMAC takes keys of any length");
    mac.update(purpose);
    mac.finalize().into_bytes().into()
}

/// A count with its noun, singular for one: `1 session`, `0 sessions`, `2 sessions` (nouns whose
/// plural adds an `s`).
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Formats epoch milliseconds as `2026-11-27 17:02:21 UTC` (`-` before year 0 or after 9999).
pub fn format_ms(ms: i64) -> String {
    // Every signed-in page shows a few of these: digits are written directly (the days-to-date step
    // is Howard Hinnant's `civil_from_days`), several times cheaper than `format!` on a date type.
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(0..=9999).contains(&year) {
        return "-".to_owned();
    }
    let mut out = [0u8; 23];
    let mut put = |at: usize, value: i64, width: usize| {
        let mut v = value;
        for i in (at..at + width).rev() {
            out[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year, 4);
    put(5, month, 2);
    put(8, day, 2);
    put(11, rem / 3600, 2);
    put(14, rem / 60 % 60, 2);
    put(17, rem % 60, 2);
    for (i, b) in [(4, b'-'), (7, b'-'), (10, b' '), (13, b':'), (16, b':'), (19, b' ')] {
        out[i] = b;
    }
    out[20..].copy_from_slice(b"UTC");
    String::from_utf8_lossy(&out).into_owned()
}

/// Cuts `s` to at most `max` bytes on a character boundary (user agents are attacker-sized).
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// The Levenshtein distance between two strings (insertions, deletions, substitutions), by characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb)).min(above + 1).min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_are_singular_only_for_one() {
        assert_eq!(super::count(0, "session"), "0 sessions");
        assert_eq!(super::count(1, "session"), "1 session");
        assert_eq!(super::count(2, "migration"), "2 migrations");
    }

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
    fn hex_is_lowercase_and_agrees_with_the_hex_crate() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(hex_lower(&all), hex::encode(&all));
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(hex_lower(&[]), "");
    }

    #[test]
    fn format_ms_renders_utc() {
        assert_eq!(format_ms(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_ms(1_796_223_741_999), "2026-12-02 15:02:21 UTC");
        assert_eq!(format_ms(-1), "1969-12-31 23:59:59 UTC");
        assert_eq!(format_ms(i64::MAX), "-");
        assert_eq!(format_ms(i64::MIN), "-");
    }

    proptest::proptest! {
        /// The hand-written conversion agrees with the `time` crate over years 0 to 9999.
        #[test]
        fn format_ms_agrees_with_the_time_crate(ms in -62_167_219_200_000i64..253_402_300_800_000) {
            let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
            let expected = format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
                t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second()
            );
            proptest::prop_assert_eq!(format_ms(ms), expected);
        }
    }

    #[test]
    fn edit_distance_counts_single_character_edits() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("DASHBOARD_SESION_IDLE_TIMEOUT", "DASHBOARD_SESSION_IDLE_TIMEOUT"), 1);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
