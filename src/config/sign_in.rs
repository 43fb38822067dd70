//! How people sign in: the attempt limits, the password policy's length, second factors, the
//! re-authentication window and the passkeys' relying party.

use std::net::IpAddr;
use std::time::Duration;

use super::read::Vars;
use super::ConfigError;

/// The longest password accepted anywhere (checked before any hashing).
pub const PASSWORD_MAX_LENGTH: usize = 1024;

/// Sign-in settings.
#[derive(Clone, Debug)]
pub struct SignInSettings {
    /// `DASHBOARD_LOGIN_MAX_FAILURES`: consecutive failures for one username before it is locked.
    pub max_failures: u32,
    /// `DASHBOARD_LOGIN_LOCKOUT`: how long such a lock lasts.
    pub lockout: Duration,
    /// `DASHBOARD_PASSWORD_MIN_LENGTH`.
    pub password_min_length: usize,
    /// `DASHBOARD_MFA`.
    pub mfa: MfaPolicy,
    /// `DASHBOARD_REAUTH_MAX_AGE`: how long after its last authentication a session may perform
    /// sensitive actions.
    pub reauth_max_age: Duration,
    /// `DASHBOARD_TRUST_BROWSER_DAYS`: how long a browser the user trusts skips the second factor
    /// at sign-in (`0`: browsers are never trusted).
    pub trust_browser_days: u32,
    /// `DASHBOARD_DBSC` (`on`, the default, or `off`): device-bound sessions where the browser
    /// supports them and the public URL is `https://`.
    pub dbsc: bool,
    /// `DASHBOARD_DBSC_COOKIE_TTL`: how long a bound cookie works before the browser renews it.
    pub dbsc_cookie_ttl: Duration,
    /// The passkeys' relying-party id (`DASHBOARD_WEBAUTHN_RP_ID`); `None` means the public URL's host
    /// (see [`crate::auth::passkeys`] for what happens when that is an IP address).
    pub webauthn_rp_id: Option<String>,
}

impl SignInSettings {
    pub(super) fn read(vars: &Vars, public_url: Option<&url::Url>) -> Result<Self, ConfigError> {
        let max_failures = vars.number("DASHBOARD_LOGIN_MAX_FAILURES", 5, 1, 100)?;
        let mfa = match vars.get("DASHBOARD_MFA") {
            None => MfaPolicy::Optional,
            Some(raw) => MfaPolicy::parse(&raw).ok_or_else(|| {
                ConfigError::invalid(
                    "DASHBOARD_MFA",
                    format!("`{raw}` is not optional, required-for-admins, required or off"),
                )
            })?,
        };
        let webauthn_rp_id = match vars.get("DASHBOARD_WEBAUTHN_RP_ID") {
            None => None,
            Some(raw) => {
                Some(check_rp_id(&raw, public_url).map_err(|e| ConfigError::invalid("DASHBOARD_WEBAUTHN_RP_ID", e))?)
            }
        };
        let dbsc = match vars.get("DASHBOARD_DBSC").map(|v| v.to_ascii_lowercase()).as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => return Err(ConfigError::invalid("DASHBOARD_DBSC", format!("`{other}` is not on or off"))),
        };
        let dbsc_cookie_ttl = vars.duration("DASHBOARD_DBSC_COOKIE_TTL", "10m")?;
        if dbsc_cookie_ttl < Duration::from_secs(30) {
            return Err(ConfigError::invalid("DASHBOARD_DBSC_COOKIE_TTL", "it must be at least 30s".to_owned()));
        }
        Ok(Self {
            dbsc,
            dbsc_cookie_ttl,
            max_failures: u32::try_from(max_failures).unwrap_or(5),
            lockout: vars.duration("DASHBOARD_LOGIN_LOCKOUT", "15m")?,
            password_min_length: vars.number("DASHBOARD_PASSWORD_MIN_LENGTH", 15, 1, PASSWORD_MAX_LENGTH)?,
            mfa,
            reauth_max_age: vars.duration("DASHBOARD_REAUTH_MAX_AGE", "15m")?,
            trust_browser_days: u32::try_from(vars.number("DASHBOARD_TRUST_BROWSER_DAYS", 30, 0, 365)?).unwrap_or(30),
            webauthn_rp_id,
        })
    }
}

/// Who must have a second factor (`DASHBOARD_MFA`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MfaPolicy {
    /// Users may add second factors (the default).
    Optional,
    /// Admins must have one.
    RequiredForAdmins,
    /// Everyone must have one.
    Required,
    /// No second factors at all: their pages answer `404` and sign-in asks for the password only.
    Off,
}

impl MfaPolicy {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.to_ascii_lowercase().as_str() {
            "optional" => Some(Self::Optional),
            "required-for-admins" => Some(Self::RequiredForAdmins),
            "required" => Some(Self::Required),
            "off" => Some(Self::Off),
            _ => None,
        }
    }

    /// Whether a user of `role` must have a second factor.
    pub fn requires(self, role: crate::db::users::Role) -> bool {
        match self {
            Self::Required => true,
            Self::RequiredForAdmins => role == crate::db::users::Role::Admin,
            Self::Optional | Self::Off => false,
        }
    }

    pub fn enabled(self) -> bool {
        self != Self::Off
    }
}

/// A relying-party id for passkeys: a domain name (browsers refuse IP addresses), lowercase, which
/// the public URL's host is or ends in (a browser only lets a page use passkeys of its own domain or
/// a parent of it).
pub(super) fn check_rp_id(raw: &str, public_url: Option<&url::Url>) -> Result<String, String> {
    let id = raw.to_ascii_lowercase();
    let plain = id.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    if id.parse::<IpAddr>().is_ok() || id.trim_matches(|c| c == '[' || c == ']').parse::<IpAddr>().is_ok() {
        return Err(format!("`{raw}` is an IP address; browsers accept only a domain name here (such as localhost)"));
    }
    if !plain || id.len() > 253 {
        return Err(format!("`{raw}` is not a domain name (no scheme, port or path: just a name such as example.com)"));
    }
    let Some(public_url) = public_url else {
        return Err("it needs DASHBOARD_PUBLIC_URL, the address users open, with a domain name".into());
    };
    match public_url.host() {
        Some(url::Host::Domain(host)) if host == id || host.ends_with(&format!(".{id}")) => Ok(id),
        Some(url::Host::Domain(host)) => Err(format!(
            "DASHBOARD_PUBLIC_URL's host `{host}` is not `{id}` nor a subdomain of it; passkeys only work there"
        )),
        _ => Err("DASHBOARD_PUBLIC_URL's host is an IP address; passkeys need a domain name there".into()),
    }
}
