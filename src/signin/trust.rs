//! The trusted-browser cookie: a long-lived random value whose hash is kept with the user (see
//! [`crate::accounts::Trust`]). It never skips the password, only the second factor.

use actix_web::cookie::{Cookie, SameSite};

use super::Visit;
use crate::accounts::Trust;
use crate::state::AppState;

fn cookie_name(state: &AppState) -> &'static str {
    if state.cookie.secure() {
        "__Host-dashboard_trusted"
    } else {
        "dashboard_trusted"
    }
}

/// Whether browsers may be trusted on this server (`DASHBOARD_TRUST_BROWSER_DAYS` is not `0`).
pub fn offered(state: &AppState) -> bool {
    state.config.trust_browser_days > 0
}

/// The hash of the trusted-browser cookie this browser presents, if any (and trust is on).
pub fn presented(visit: &Visit) -> Option<String> {
    if !offered(&visit.state) {
        return None;
    }
    let cookie = visit.req.cookie(cookie_name(&visit.state))?;
    let value = cookie.value();
    (value.len() == 43 && value.bytes().all(|b| b.is_ascii_alphanumeric())).then(|| crate::util::sha256_hex(value))
}

/// A new trust for this browser: what the second step's transaction keeps, and the cookie it sends.
pub fn new_trust(state: &AppState) -> (Trust, Cookie<'static>) {
    let days = i64::from(state.config.trust_browser_days);
    let value = crate::util::random_alphanumeric(43);
    let trust = Trust {
        id: crate::util::random_b64(16),
        token_hash: crate::util::sha256_hex(&value),
        expires_at: state.now_ms() + days * 86_400_000,
    };
    let cookie = Cookie::build(cookie_name(state), value)
        .path("/")
        .http_only(true)
        .secure(state.cookie.secure())
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::days(days))
        .finish();
    (trust, cookie)
}
