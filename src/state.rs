//! `AppState`: everything the handlers and middleware share, built once by `startup` and given to
//! every worker as one piece of app data. Handlers take it (as [`State`]) plus their own inputs.

use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use ipnet::IpNet;

use crate::auth::password::Hasher;
use crate::clock::Clock;
use crate::cloud::CloudAccess;
use crate::db::Pool;
use crate::error::AppError;
use crate::session::{SessionCookie, Timeouts};

/// The configuration the handlers need (the rest of `Settings` is used at start-up only).
pub struct Config {
    pub trusted_proxies: Vec<IpNet>,
    pub password_min_length: usize,
    /// The idle timeout as the dashboard shows it (`2h`), formatted once.
    pub idle_timeout_text: String,
    pub login_max_failures: u32,
    pub login_lockout: Duration,
    pub timeouts: Timeouts,
    /// `DASHBOARD_MFA`.
    pub mfa: crate::config::MfaPolicy,
    /// `DASHBOARD_REAUTH_MAX_AGE`.
    pub reauth_max_age: Duration,
    /// How long a trusted browser skips the second factor (`0`: never trusted).
    pub trust_browser_days: u32,
    /// How long a bound cookie works, when sessions are device-bound here (`DASHBOARD_DBSC` on and
    /// an `https://` public URL); `None` otherwise.
    pub dbsc_cookie_ttl: Option<Duration>,
}

impl Config {
    /// Failed sign-ins from one client IP (any usernames) before that IP is locked: spraying one
    /// password across many names is stopped too.
    pub fn ip_max_failures(&self) -> u32 {
        self.login_max_failures.saturating_mul(10)
    }
}

pub struct AppState {
    pub pool: Pool,
    pub hasher: Hasher,
    pub config: Config,
    pub cookie: SessionCookie,
    /// `None` when cloud access is not configured.
    pub cloud: Option<CloudAccess>,
    pub clock: Clock,
    /// Seals authenticator-app secrets at rest (bound to their user).
    pub totp_seal: crate::seal::Sealer,
    /// Seals the not-yet-confirmed secret of an app being set up, in the set-up form (bound to the
    /// user, with an expiry inside).
    pub totp_setup_seal: crate::seal::Sealer,
    /// Passkeys (WebAuthn): the relying party, or why there is none here.
    pub passkeys: crate::auth::passkeys::PasskeySupport,
    /// Test hook: where the second step of a sign-in, its code checked, is about to spend it.
    pub second_step_hold: crate::hold::HoldPoint,
    /// Test hook: where a sign-in on a trusted browser, its password checked, is about to use the
    /// trust.
    pub trusted_sign_in_hold: crate::hold::HoldPoint,
    /// In `/reauth`, after a code was checked and before it is spent (tests end the session there).
    pub reauth_hold: crate::hold::HoldPoint,
    /// Mail: whether SMTP is on, and the sealing of links in the outbox.
    pub mail: crate::mail::Mail,
    /// The URL users see (links in mail and printed links start with it).
    pub public_url: String,
}

/// What handlers take.
pub type State = web::Data<AppState>;

impl AppState {
    /// The client's address (see [`crate::auth::client_ip`]).
    pub fn client_ip(&self, req: &HttpRequest) -> String {
        crate::auth::client_ip(req, &self.config.trusted_proxies)
    }

    /// Whether passkeys are offered: this server can have them (a domain name, a secure context) and
    /// second factors are not turned off (`DASHBOARD_MFA=off`).
    pub fn passkeys_offered(&self) -> bool {
        self.passkeys.is_on() && self.config.mfa.enabled()
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}

/// The client's address as a handler argument (see [`client_ip`]).
#[derive(Clone, Debug)]
pub struct ClientIp(pub String);

impl FromRequest for ClientIp {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<State>();
        std::future::ready(
            state
                .map(|state| ClientIp(state.client_ip(req)))
                .ok_or_else(|| AppError::Internal(anyhow::anyhow!("app state missing"))),
        )
    }
}

impl std::fmt::Display for ClientIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
