//! One `Settings` struct read from the environment (and `.env`), validated before anything starts.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use base64::Engine;
use ipnet::IpNet;
use secrecy::SecretBox;

/// Which database a `DATABASE_URL` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A parsed `DATABASE_URL`.
#[derive(Clone, Debug)]
pub struct DatabaseUrl {
    pub backend: Backend,
    /// What the driver is given: a file path for SQLite, the URL for PostgreSQL.
    pub url: String,
}

impl DatabaseUrl {
    /// `postgres://…` / `postgresql://…` is PostgreSQL; `sqlite://path` or a bare path is SQLite.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("it is empty".into());
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            url::Url::parse(raw).map_err(|e| format!("not a valid PostgreSQL URL ({e})"))?;
            return Ok(Self { backend: Backend::Postgres, url: raw.to_owned() });
        }
        if let Some(path) = raw.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("sqlite:// needs a file path".into());
            }
            return Ok(Self { backend: Backend::Sqlite, url: path.to_owned() });
        }
        if let Some(path) = raw.strip_prefix("sqlite:") {
            return Ok(Self { backend: Backend::Sqlite, url: path.to_owned() });
        }
        if let Some((scheme, _)) = raw.split_once("://") {
            return Err(format!(
                "unknown scheme `{scheme}` (use postgres://, postgresql://, sqlite:// or a file path)"
            ));
        }
        Ok(Self { backend: Backend::Sqlite, url: raw.to_owned() })
    }
}

/// Output format of the logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Who must have a second factor (`DASHBOARD_MFA`, contract §7).
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

/// Everything the program is configured with. Built once, validated, then passed down.
pub struct Settings {
    pub database: DatabaseUrl,
    pub listen: SocketAddr,
    /// The URL users see; `None` means `http://` + the bound address.
    pub public_url: Option<url::Url>,
    pub idle_timeout: Duration,
    /// `None` when `off`.
    pub absolute_timeout: Option<Duration>,
    /// `None` when `off`.
    pub prune_interval: Option<Duration>,
    pub login_max_failures: u32,
    pub login_lockout: Duration,
    pub password_min_length: usize,
    pub trusted_proxies: Vec<IpNet>,
    /// At least 64 bytes; `None` means generated once and kept in the database.
    pub secret_key: Option<SecretBox<Vec<u8>>>,
    pub cloud_secret_id: Option<String>,
    pub cloud_token_url: Option<url::Url>,
    pub cloud_api_url: Option<url::Url>,
    pub cloud_required: bool,
    pub log_format: LogFormat,
    /// How many threads hash passwords; defaults to one per core (they run at nice 10).
    pub hash_concurrency: usize,
    /// How long audit events are kept (`DASHBOARD_EVENT_RETENTION`, default 90 days); `None` keeps them.
    pub event_retention: Option<Duration>,
    /// `DASHBOARD_MAX_SESSIONS_PER_USER` (default 100): a sign-in beyond it ends the user's least
    /// recently used session.
    pub max_sessions_per_user: usize,
    /// `DASHBOARD_MFA`.
    pub mfa: MfaPolicy,
    /// `DASHBOARD_REAUTH_MAX_AGE`: how long after its last authentication a session may perform
    /// sensitive actions.
    pub reauth_max_age: Duration,
    /// `DASHBOARD_METRICS_LISTEN`: where the Prometheus listener binds; `None` (the default) serves no metrics.
    pub metrics_listen: Option<SocketAddr>,
    /// The passkeys' relying-party id (`DASHBOARD_WEBAUTHN_RP_ID`); `None` means the public URL's host
    /// (see [`crate::auth::passkeys`] for what happens when that is an IP address).
    pub webauthn_rp_id: Option<String>,
    /// `DASHBOARD_SMTP_URL`; `None` (the default) sends no mail.
    pub smtp: Option<crate::mail::SmtpSettings>,
    /// `DASHBOARD_MAIL_FROM`, required with SMTP.
    pub mail_from: Option<lettre::message::Mailbox>,
    /// How often the mail sender looks for due mail (tests shorten it).
    pub mail_poll_interval: Duration,
}

/// The longest password accepted anywhere (checked before any hashing).
pub const PASSWORD_MAX_LENGTH: usize = 1024;

impl Settings {
    /// Reads `.env` (the real environment wins), then the environment.
    pub fn from_env() -> Result<Self, String> {
        // A missing .env is normal; a malformed one is an error worth stopping for.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(format!("cannot read .env: {e}")),
        }
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds settings from any variable lookup; every error names the variable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let var = |name: &str| get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let bad = |name: &str, why: String| format!("invalid {name}: {why}");

        let database = DatabaseUrl::parse(&var("DATABASE_URL").unwrap_or_else(|| "dashboard.db".into()))
            .map_err(|e| bad("DATABASE_URL", e))?;

        let listen_raw = var("DASHBOARD_LISTEN").unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen = listen_raw
            .to_socket_addrs()
            .map_err(|e| bad("DASHBOARD_LISTEN", format!("`{listen_raw}` is not HOST:PORT ({e})")))?
            .next()
            .ok_or_else(|| bad("DASHBOARD_LISTEN", format!("`{listen_raw}` resolves to no address")))?;

        let public_url = match var("DASHBOARD_PUBLIC_URL") {
            None => None,
            Some(raw) => Some(parse_http_url(&raw).map_err(|e| bad("DASHBOARD_PUBLIC_URL", e))?),
        };

        let duration = |name: &str, default: &str, allow_off: bool| -> Result<Option<Duration>, String> {
            let raw = var(name).unwrap_or_else(|| default.to_owned());
            if raw.eq_ignore_ascii_case("off") {
                return if allow_off { Ok(None) } else { Err(bad(name, "`off` is not allowed here".into())) };
            }
            let d = humantime::parse_duration(&raw).map_err(|e| bad(name, duration_error(&raw, &e)))?;
            if d.is_zero() {
                return Err(bad(name, "must be longer than zero".into()));
            }
            Ok(Some(d))
        };
        let idle_timeout = duration("DASHBOARD_SESSION_IDLE_TIMEOUT", "2h", false)?.unwrap_or_default();
        let absolute_timeout = duration("DASHBOARD_SESSION_ABSOLUTE_TIMEOUT", "12h", true)?;
        if let Some(absolute) = absolute_timeout.filter(|a| *a < idle_timeout) {
            // A session could never be idle as long as configured: almost certainly a slip.
            return Err(format!(
                "invalid DASHBOARD_SESSION_ABSOLUTE_TIMEOUT: {} is shorter than DASHBOARD_SESSION_IDLE_TIMEOUT ({}); \
                 the absolute timeout must be at least the idle timeout (or `off`)",
                humantime::format_duration(absolute),
                humantime::format_duration(idle_timeout)
            ));
        }
        let prune_interval = duration("DASHBOARD_PRUNE_INTERVAL", "10m", true)?;
        let login_lockout = duration("DASHBOARD_LOGIN_LOCKOUT", "15m", false)?.unwrap_or_default();
        let event_retention = duration("DASHBOARD_EVENT_RETENTION", "90days", true)?;
        let reauth_max_age = duration("DASHBOARD_REAUTH_MAX_AGE", "15m", false)?.unwrap_or_default();
        let mfa = match var("DASHBOARD_MFA") {
            None => MfaPolicy::Optional,
            Some(raw) => MfaPolicy::parse(&raw).ok_or_else(|| {
                bad("DASHBOARD_MFA", format!("`{raw}` is not optional, required-for-admins, required or off"))
            })?,
        };

        let number = |name: &str, default: usize, min: usize, max: usize| -> Result<usize, String> {
            let raw = var(name).unwrap_or_else(|| default.to_string());
            let n: usize = raw.parse().map_err(|_| bad(name, format!("`{raw}` is not a whole number")))?;
            if n < min || n > max {
                return Err(bad(name, format!("{n} is outside {min}..={max}")));
            }
            Ok(n)
        };
        let login_max_failures = u32::try_from(number("DASHBOARD_LOGIN_MAX_FAILURES", 5, 1, 100)?).unwrap_or(5);
        let password_min_length = number("DASHBOARD_PASSWORD_MIN_LENGTH", 15, 1, PASSWORD_MAX_LENGTH)?;
        let max_sessions_per_user = number("DASHBOARD_MAX_SESSIONS_PER_USER", 100, 1, 10_000)?;

        let trusted_proxies = match var("DASHBOARD_TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(raw) => raw
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<IpNet>()
                        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                        .map_err(|_| bad("DASHBOARD_TRUSTED_PROXIES", format!("`{s}` is not an IP address or CIDR")))
                })
                .collect::<Result<_, _>>()?,
        };

        let secret_key = match var("DASHBOARD_SECRET_KEY") {
            None => None,
            Some(raw) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(raw.as_bytes())
                    .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw.as_bytes()))
                    .map_err(|_| bad("DASHBOARD_SECRET_KEY", "not base64".into()))?;
                if bytes.len() < 64 {
                    return Err(bad(
                        "DASHBOARD_SECRET_KEY",
                        format!("{} bytes; at least 64 random bytes are needed", bytes.len()),
                    ));
                }
                Some(SecretBox::new(Box::new(bytes)))
            }
        };

        let cloud_secret_id = var("DASHBOARD_CLOUD_SECRET_ID");
        let cloud_token_url = match var("DASHBOARD_CLOUD_TOKEN_URL") {
            None => None,
            Some(raw) => Some(parse_http_url(&raw).map_err(|e| bad("DASHBOARD_CLOUD_TOKEN_URL", e))?),
        };
        let cloud_api_url = match var("DASHBOARD_CLOUD_API_URL") {
            None => None,
            Some(raw) => Some(parse_http_url(&raw).map_err(|e| bad("DASHBOARD_CLOUD_API_URL", e))?),
        };
        if cloud_secret_id.is_some() && (cloud_token_url.is_none() || cloud_api_url.is_none()) {
            return Err(bad(
                "DASHBOARD_CLOUD_SECRET_ID",
                "cloud access also needs DASHBOARD_CLOUD_TOKEN_URL and DASHBOARD_CLOUD_API_URL".into(),
            ));
        }
        let cloud_required = match var("DASHBOARD_CLOUD_REQUIRED").as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("false") | Some("0") | Some("no") => false,
            Some("true") | Some("1") | Some("yes") => true,
            Some(other) => return Err(bad("DASHBOARD_CLOUD_REQUIRED", format!("`{other}` is not true or false"))),
        };

        let log_format = match var("DASHBOARD_LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(bad("DASHBOARD_LOG_FORMAT", format!("`{other}` is not text or json"))),
        };

        let metrics_listen = match var("DASHBOARD_METRICS_LISTEN") {
            None => None,
            Some(raw) if raw.eq_ignore_ascii_case("off") => None,
            Some(raw) => Some(
                raw.to_socket_addrs()
                    .map_err(|e| bad("DASHBOARD_METRICS_LISTEN", format!("`{raw}` is not HOST:PORT ({e})")))?
                    .next()
                    .ok_or_else(|| bad("DASHBOARD_METRICS_LISTEN", format!("`{raw}` resolves to no address")))?,
            ),
        };
        let webauthn_rp_id = match var("DASHBOARD_WEBAUTHN_RP_ID") {
            None => None,
            Some(raw) => Some(check_rp_id(&raw, public_url.as_ref()).map_err(|e| bad("DASHBOARD_WEBAUTHN_RP_ID", e))?),
        };

        let smtp = match var("DASHBOARD_SMTP_URL") {
            None => None,
            Some(raw) if raw.eq_ignore_ascii_case("off") => None,
            Some(raw) => Some(crate::mail::SmtpSettings::parse(&raw).map_err(|e| bad("DASHBOARD_SMTP_URL", e))?),
        };
        let mail_from = match var("DASHBOARD_MAIL_FROM") {
            None if smtp.is_some() => {
                return Err(bad("DASHBOARD_MAIL_FROM", "it is required with DASHBOARD_SMTP_URL".into()))
            }
            None => None,
            Some(raw) => Some(crate::mail::parse_from(&raw).map_err(|e| bad("DASHBOARD_MAIL_FROM", e))?),
        };

        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Ok(Self {
            database,
            listen,
            public_url,
            idle_timeout,
            absolute_timeout,
            prune_interval,
            login_max_failures,
            login_lockout,
            password_min_length,
            trusted_proxies,
            secret_key,
            cloud_secret_id,
            cloud_token_url,
            cloud_api_url,
            cloud_required,
            log_format,
            // Every core: the hashing threads run at nice 10, so page serving still wins the CPU.
            hash_concurrency: cores.max(1),
            event_retention,
            max_sessions_per_user,
            mfa,
            reauth_max_age,
            metrics_listen,
            webauthn_rp_id,
            smtp,
            mail_from,
            mail_poll_interval: Duration::from_secs(1),
        })
    }

    /// Settings for a database URL and everything else at its default (used by tests and commands).
    pub fn with_database(database_url: &str) -> Result<Self, String> {
        let url = database_url.to_owned();
        Self::from_lookup(move |name| (name == "DATABASE_URL").then(|| url.clone()))
    }
}

/// What was wrong with a duration, in words (humantime's own messages name parser positions).
fn duration_error(raw: &str, e: &humantime::DurationError) -> String {
    let why = match e {
        humantime::DurationError::UnknownUnit { unit, .. } if unit.is_empty() => "the unit is missing".to_owned(),
        humantime::DurationError::UnknownUnit { unit, .. } => format!("`{unit}` is not a unit"),
        humantime::DurationError::NumberOverflow => "it is too long".to_owned(),
        humantime::DurationError::NumberExpected(_) | humantime::DurationError::InvalidCharacter(_) => {
            "it is not a number followed by a unit".to_owned()
        }
        humantime::DurationError::Empty => "it is empty".to_owned(),
    };
    format!("`{raw}` is not a duration ({why}); write a number and a unit, like 90s, 15m, 2h or 7days")
}

/// A relying-party id for passkeys: a domain name (browsers refuse IP addresses), lowercase, which
/// the public URL's host is or ends in (a browser only lets a page use passkeys of its own domain or
/// a parent of it).
fn check_rp_id(raw: &str, public_url: Option<&url::Url>) -> Result<String, String> {
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

fn parse_http_url(raw: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("`{raw}` is not a URL ({e})"))?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        "http" | "https" => Err(format!("`{raw}` has no host")),
        other => Err(format!("scheme `{other}` is not http or https")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<Settings, String> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = parse(&[]).unwrap();
        assert_eq!(s.database.backend, Backend::Sqlite);
        assert_eq!(s.database.url, "dashboard.db");
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.idle_timeout, Duration::from_secs(7200));
        assert_eq!(s.absolute_timeout, Some(Duration::from_secs(12 * 3600)));
        assert_eq!(s.prune_interval, Some(Duration::from_secs(600)));
        assert_eq!(s.login_max_failures, 5);
        assert_eq!(s.password_min_length, 15);
        assert!(!s.cloud_required);
        assert_eq!(s.metrics_listen, None, "metrics are off unless asked for");
        let on = parse(&[("DASHBOARD_METRICS_LISTEN", "127.0.0.1:9181")]).unwrap();
        assert_eq!(on.metrics_listen.map(|a| a.to_string()).as_deref(), Some("127.0.0.1:9181"));
        assert_eq!(s.max_sessions_per_user, 100);
        assert_eq!(s.mfa, MfaPolicy::Optional);
        assert_eq!(s.reauth_max_age, Duration::from_secs(15 * 60));
    }

    #[test]
    fn the_mfa_policy_reads_its_four_values() {
        for (raw, policy) in [
            ("optional", MfaPolicy::Optional),
            ("required-for-admins", MfaPolicy::RequiredForAdmins),
            ("Required", MfaPolicy::Required),
            ("off", MfaPolicy::Off),
        ] {
            assert_eq!(parse(&[("DASHBOARD_MFA", raw)]).unwrap().mfa, policy, "{raw}");
        }
        let s = parse(&[("DASHBOARD_REAUTH_MAX_AGE", "5m")]).unwrap();
        assert_eq!(s.reauth_max_age, Duration::from_secs(300));
    }

    #[test]
    fn database_urls_choose_the_backend() {
        assert_eq!(DatabaseUrl::parse("postgres://u@h/db").unwrap().backend, Backend::Postgres);
        assert_eq!(DatabaseUrl::parse("postgresql://u@h/db").unwrap().backend, Backend::Postgres);
        let s = DatabaseUrl::parse("sqlite://data/x.db").unwrap();
        assert_eq!((s.backend, s.url.as_str()), (Backend::Sqlite, "data/x.db"));
        assert!(DatabaseUrl::parse("mysql://h/db").unwrap_err().contains("mysql"));
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value) in [
            ("DASHBOARD_SESSION_IDLE_TIMEOUT", "soon"),
            ("DASHBOARD_SESSION_IDLE_TIMEOUT", "off"),
            ("DASHBOARD_PRUNE_INTERVAL", "0s"),
            ("DASHBOARD_LISTEN", "nowhere"),
            ("DASHBOARD_METRICS_LISTEN", "9181"),
            ("DASHBOARD_PUBLIC_URL", "ftp://x"),
            ("DASHBOARD_LOGIN_MAX_FAILURES", "-1"),
            ("DASHBOARD_MAX_SESSIONS_PER_USER", "0"),
            ("DASHBOARD_MAX_SESSIONS_PER_USER", "lots"),
            ("DASHBOARD_SECRET_KEY", "c2hvcnQ="),
            ("DASHBOARD_TRUSTED_PROXIES", "10.0.0.0/33"),
            ("DASHBOARD_LOG_FORMAT", "xml"),
            ("DASHBOARD_CLOUD_REQUIRED", "maybe"),
            ("DASHBOARD_MFA", "sometimes"),
            ("DASHBOARD_REAUTH_MAX_AGE", "soon"),
            ("DASHBOARD_REAUTH_MAX_AGE", "off"),
            ("DATABASE_URL", "mysql://h/db"),
            ("DASHBOARD_WEBAUTHN_RP_ID", "example.com"),
            ("DASHBOARD_SMTP_URL", "http://mail.example.com"),
            ("DASHBOARD_SMTP_URL", "smtp://mail.example.com"),
            ("DASHBOARD_MAIL_FROM", "not an address"),
        ] {
            let err = parse(&[(name, value)]).err().unwrap_or_else(|| panic!("{name}={value} accepted"));
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn a_bad_duration_says_what_is_expected_without_parser_jargon() {
        for value in ["soon", "two hours", "15 parsecs", "5", "m5"] {
            let err = parse(&[("DASHBOARD_LOGIN_LOCKOUT", value)]).err().unwrap();
            assert!(err.contains("DASHBOARD_LOGIN_LOCKOUT") && err.contains("like 90s, 15m, 2h"), "{err}");
            assert!(!err.contains(" at ") && !err.contains("expected"), "{err}");
        }
        assert!(parse(&[("DASHBOARD_LOGIN_LOCKOUT", "15 parsecs")]).err().unwrap().contains("`parsecs` is not a unit"));
    }

    #[test]
    fn an_absolute_timeout_shorter_than_the_idle_timeout_is_refused_naming_both() {
        let err = parse(&[("DASHBOARD_SESSION_IDLE_TIMEOUT", "2h"), ("DASHBOARD_SESSION_ABSOLUTE_TIMEOUT", "1h")])
            .err()
            .unwrap();
        assert!(err.contains("DASHBOARD_SESSION_ABSOLUTE_TIMEOUT") && err.contains("DASHBOARD_SESSION_IDLE_TIMEOUT"));
        assert!(err.contains("1h") && err.contains("2h"), "{err}");
        let err = parse(&[("DASHBOARD_SESSION_IDLE_TIMEOUT", "13h")]).err().unwrap();
        assert!(err.contains("12h"), "the default absolute timeout counts too: {err}");
        for ok in [
            &[("DASHBOARD_SESSION_IDLE_TIMEOUT", "2h"), ("DASHBOARD_SESSION_ABSOLUTE_TIMEOUT", "2h")][..],
            &[("DASHBOARD_SESSION_IDLE_TIMEOUT", "13h"), ("DASHBOARD_SESSION_ABSOLUTE_TIMEOUT", "off")],
        ] {
            assert!(parse(ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn a_relying_party_id_must_be_a_domain_of_the_public_url() {
        let with = |url: &str, id: &str| parse(&[("DASHBOARD_PUBLIC_URL", url), ("DASHBOARD_WEBAUTHN_RP_ID", id)]);
        assert_eq!(
            with("https://dash.example.com", "example.com").unwrap().webauthn_rp_id.as_deref(),
            Some("example.com")
        );
        assert_eq!(
            with("https://Dash.Example.com", "DASH.example.com").unwrap().webauthn_rp_id.unwrap(),
            "dash.example.com"
        );
        assert_eq!(with("http://localhost:8080", "localhost").unwrap().webauthn_rp_id.unwrap(), "localhost");
        assert_eq!(parse(&[]).unwrap().webauthn_rp_id, None, "unset: the public URL's host, decided at start");
        for (url, id, why) in [
            ("https://dash.example.com", "other.com", "not `other.com` nor a subdomain"),
            ("https://dash.example.com", "ample.com", "not `ample.com`"),
            ("https://dash.example.com", "https://example.com", "not a domain name"),
            ("https://dash.example.com", "example.com:443", "not a domain name"),
            ("https://dash.example.com", "127.0.0.1", "IP address"),
            ("https://dash.example.com", "[::1]", "IP address"),
            ("http://127.0.0.1:8080", "localhost", "host is an IP address"),
            ("https://dash.example.com", "-bad.example.com", "not a domain name"),
        ] {
            let err = with(url, id).err().unwrap_or_else(|| panic!("{id} for {url} accepted"));
            assert!(err.contains("DASHBOARD_WEBAUTHN_RP_ID") && err.contains(why), "{err}");
        }
    }

    #[test]
    fn off_disables_the_absolute_timeout_and_the_pruner() {
        let s = parse(&[("DASHBOARD_SESSION_ABSOLUTE_TIMEOUT", "off"), ("DASHBOARD_PRUNE_INTERVAL", "off")]).unwrap();
        assert_eq!(s.absolute_timeout, None);
        assert_eq!(s.prune_interval, None);
    }
}
