//! The authenticator app (TOTP, RFC 6238) with `totp-rs`: SHA-1, 6 digits, 30-second steps — what
//! every app supports — and one step of clock drift either way. Which step a code matched is
//! returned, so the caller can accept each code once (`users.totp_last_step` only moves forward).

use qrcode::render::svg;
use qrcode::QrCode;
use rand::RngCore;
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Secret, TOTP};

pub const DIGITS: usize = 6;
pub const STEP_SECONDS: u64 = 30;
/// Steps of drift accepted either way.
pub const SKEW: i64 = 1;
/// What the app shows as the account's issuer.
pub const ISSUER: &str = "Dashboard";

/// A new secret: 20 random bytes (160 bits, RFC 4226's recommendation for SHA-1).
pub fn new_secret() -> Vec<u8> {
    let mut bytes = vec![0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// The secret as people type it into an app (base32, no padding).
pub fn base32(secret: &[u8]) -> String {
    Secret::Raw(secret.to_vec()).to_encoded().to_string()
}

/// A base32 secret as typed (spaces and case ignored) back to bytes.
pub fn decode_base32(text: &str) -> Option<Vec<u8>> {
    let cleaned: String = text.chars().filter(|c| !c.is_whitespace()).map(|c| c.to_ascii_uppercase()).collect();
    Secret::Encoded(cleaned).to_bytes().ok()
}

fn totp(secret: &[u8], account: &str) -> Option<TOTP> {
    TOTP::new(Algorithm::SHA1, DIGITS, 0, STEP_SECONDS, secret.to_vec(), Some(ISSUER.to_owned()), account.to_owned())
        .ok()
}

/// The time step of `now_ms`.
pub fn step_at(now_ms: i64) -> i64 {
    now_ms.div_euclid(1000) / STEP_SECONDS as i64
}

/// The code for `step` (tests compute codes with this, as an app does).
pub fn code_at_step(secret: &[u8], step: i64) -> Option<String> {
    let time = u64::try_from(step).ok()?.checked_mul(STEP_SECONDS)?;
    Some(totp(secret, "x")?.generate(time))
}

/// A submitted code in the app's shape (six digits; spaces ignored), else `None`.
pub fn normalize(code: &str) -> Option<String> {
    let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    (digits.len() == DIGITS && digits.chars().all(|c| c.is_ascii_digit())).then_some(digits)
}

/// The step whose code is `code`, among the current step and [`SKEW`] either side (compared in
/// constant time); `None` when it matches none.
pub fn matching_step(secret: &[u8], code: &str, now_ms: i64) -> Option<i64> {
    let code = normalize(code)?;
    let now = step_at(now_ms);
    let mut found = None;
    for step in now - SKEW..=now + SKEW {
        let expected = code_at_step(secret, step)?;
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// The `otpauth://` URL the QR code carries.
pub fn otpauth_url(secret: &[u8], username: &str) -> Option<String> {
    Some(totp(secret, username)?.get_url())
}

/// The QR code of `url` as an inline SVG element (drawn here: no external service, no script).
pub fn qr_svg(url: &str) -> Option<String> {
    let code = QrCode::new(url.as_bytes()).ok()?;
    let image = code
        .render::<svg::Color>()
        .min_dimensions(220, 220)
        .dark_color(svg::Color("#000"))
        .light_color(svg::Color("#fff"))
        .build();
    // Inline in the page: without the XML prologue, and with a name for screen readers.
    let start = image.find("<svg")?;
    Some(image[start..].replacen("<svg ", "<svg role=\"img\" aria-label=\"QR code for the authenticator app\" ", 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_of_the_rfc_6238_test_vector_match_with_one_step_of_drift() {
        // RFC 6238 appendix B, SHA-1 secret "12345678901234567890", T = 59 s → 94287082 (8 digits);
        // its last 6 digits are the 6-digit code.
        let secret = b"12345678901234567890";
        assert_eq!(code_at_step(secret, 1).unwrap(), "287082");
        let now = 59_000;
        assert_eq!(matching_step(secret, "287082", now), Some(1));
        assert_eq!(matching_step(secret, "287 082", now + 30_000), Some(1), "one step late");
        assert_eq!(matching_step(secret, "287082", now + 60_000), None, "two steps late");
        assert_eq!(matching_step(secret, "28708", now), None);
        assert_eq!(matching_step(secret, "abcdef", now), None);
    }

    #[test]
    fn the_qr_code_is_an_inline_svg_of_the_otpauth_url() {
        let secret = new_secret();
        let url = otpauth_url(&secret, "alice").unwrap();
        assert!(url.starts_with("otpauth://totp/Dashboard:alice?"), "{url}");
        assert!(url.contains(&format!("secret={}", base32(&secret))), "{url}");
        let svg = qr_svg(&url).unwrap();
        assert!(svg.starts_with("<svg role=\"img\"") && svg.ends_with("</svg>"));
        assert!(!svg.contains("<script") && !svg.contains("style="));
    }
}
