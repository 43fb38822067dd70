//! One `Settings` struct read from the environment (and `.env`), validated before anything starts.
//! Each group of variables is a typed part of it, read by its own function; every refusal is a
//! [`ConfigError`] whose message names the variable.

mod database;
mod mail;
mod read;
mod sign_in;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use ipnet::IpNet;
use secrecy::SecretBox;

pub use database::{Backend, DatabaseUrl};
pub use mail::MailSettings;
use read::Vars;
pub use sign_in::{MfaPolicy, SignInSettings, PASSWORD_MAX_LENGTH};

/// Why the configuration was refused. The program stops at start with this message (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read .env: {0}")]
    DotEnv(String),
    /// One variable's value is wrong.
    #[error("invalid {var}: {why}")]
    Invalid { var: &'static str, why: String },
    /// A session could never be idle as long as configured: almost certainly a slip.
    #[error(
        "invalid DASHBOARD_SESSION_ABSOLUTE_TIMEOUT: {absolute} is shorter than DASHBOARD_SESSION_IDLE_TIMEOUT \
         ({idle}); the absolute timeout must be at least the idle timeout (or `off`)"
    )]
    AbsoluteShorterThanIdle { absolute: String, idle: String },
    #[error(
        "invalid DASHBOARD_CLOUD_SECRET_ID: cloud access also needs DASHBOARD_CLOUD_TOKEN_URL and DASHBOARD_CLOUD_API_URL"
    )]
    CloudIncomplete,
}

impl ConfigError {
    fn invalid(var: &'static str, why: impl Into<String>) -> Self {
        Self::Invalid { var, why: why.into() }
    }
}

/// Output format of the logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// How long sessions live, and how many one user may hold.
#[derive(Clone, Debug)]
pub struct SessionSettings {
    /// `DASHBOARD_SESSION_IDLE_TIMEOUT`: a session expires after this long without a request.
    pub idle_timeout: Duration,
    /// `DASHBOARD_SESSION_ABSOLUTE_TIMEOUT`; `None` when `off`.
    pub absolute_timeout: Option<Duration>,
    /// `DASHBOARD_PRUNE_INTERVAL`; `None` when `off`.
    pub prune_interval: Option<Duration>,
    /// `DASHBOARD_MAX_SESSIONS_PER_USER` (default 100): a sign-in beyond it ends the user's least
    /// recently used session.
    pub max_per_user: usize,
}

impl SessionSettings {
    fn read(vars: &Vars) -> Result<Self, ConfigError> {
        let idle_timeout = vars.duration("DASHBOARD_SESSION_IDLE_TIMEOUT", "2h")?;
        let absolute_timeout = vars.duration_or_off("DASHBOARD_SESSION_ABSOLUTE_TIMEOUT", "12h")?;
        if let Some(absolute) = absolute_timeout.filter(|a| *a < idle_timeout) {
            return Err(ConfigError::AbsoluteShorterThanIdle {
                absolute: humantime::format_duration(absolute).to_string(),
                idle: humantime::format_duration(idle_timeout).to_string(),
            });
        }
        Ok(Self {
            idle_timeout,
            absolute_timeout,
            prune_interval: vars.duration_or_off("DASHBOARD_PRUNE_INTERVAL", "10m")?,
            max_per_user: vars.number("DASHBOARD_MAX_SESSIONS_PER_USER", 100, 1, 10_000)?,
        })
    }
}

/// Cloud access: all of it configured, or none (`Settings::cloud` is `None`).
#[derive(Clone, Debug)]
pub struct CloudSettings {
    /// `DASHBOARD_CLOUD_SECRET_ID`: the Secrets Manager secret holding the gateway client credentials.
    pub secret_id: String,
    /// `DASHBOARD_CLOUD_TOKEN_URL`: the gateway's OAuth 2.0 token endpoint.
    pub token_url: url::Url,
    /// `DASHBOARD_CLOUD_API_URL`: the base URL `/cloud/…` forwards to.
    pub api_url: url::Url,
    /// `DASHBOARD_CLOUD_REQUIRED`: a sign-in fails when no token can be obtained.
    pub required: bool,
}

impl CloudSettings {
    fn read(vars: &Vars) -> Result<Option<Self>, ConfigError> {
        let token_url = vars.http_url("DASHBOARD_CLOUD_TOKEN_URL")?;
        let api_url = vars.http_url("DASHBOARD_CLOUD_API_URL")?;
        let required = vars.flag("DASHBOARD_CLOUD_REQUIRED")?;
        let Some(secret_id) = vars.get("DASHBOARD_CLOUD_SECRET_ID") else { return Ok(None) };
        match (token_url, api_url) {
            (Some(token_url), Some(api_url)) => Ok(Some(Self { secret_id, token_url, api_url, required })),
            _ => Err(ConfigError::CloudIncomplete),
        }
    }
}

/// Everything the program is configured with. Built once, validated, then passed down.
pub struct Settings {
    pub database: DatabaseUrl,
    pub listen: SocketAddr,
    /// The URL users see; `None` means the default the server derives from the bound address.
    pub public_url: Option<url::Url>,
    pub sessions: SessionSettings,
    pub sign_in: SignInSettings,
    pub trusted_proxies: Vec<IpNet>,
    /// At least 64 bytes; `None` means generated once and kept in the database.
    pub secret_key: Option<SecretBox<Vec<u8>>>,
    /// `None` when cloud access is not configured.
    pub cloud: Option<CloudSettings>,
    pub log_format: LogFormat,
    /// How many threads hash passwords; defaults to one per core (they run at nice 10).
    pub hash_concurrency: usize,
    /// How long audit events are kept (`DASHBOARD_EVENT_RETENTION`, default 90 days); `None` keeps them.
    pub event_retention: Option<Duration>,
    /// `DASHBOARD_METRICS_LISTEN`: where the Prometheus listener binds; `None` (the default) serves no metrics.
    pub metrics_listen: Option<SocketAddr>,
    /// `DASHBOARD_SMTP_URL` and `DASHBOARD_MAIL_FROM`; `None` (the default) sends no mail.
    pub mail: Option<MailSettings>,
    /// How often the mail sender looks for due mail (tests shorten it).
    pub mail_poll_interval: Duration,
    /// Every variable the configuration reads, as read: the one list unknown names are checked against.
    pub known_variables: BTreeSet<&'static str>,
    /// Warnings about the environment (a misspelt variable), logged once logging is set up.
    pub warnings: Vec<String>,
}

impl Settings {
    /// Reads `.env` (the real environment wins), then the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env is normal; a malformed one is an error worth stopping for.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(ConfigError::DotEnv(e.to_string())),
        }
        let mut settings = Self::from_lookup(|name| std::env::var(name).ok())?;
        settings.warnings = settings.unknown_variables(std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()));
        Ok(settings)
    }

    /// One warning per `DASHBOARD_*` name that no setting reads, naming the closest one that does:
    /// a misspelt variable would otherwise be ignored without a word.
    pub fn unknown_variables(&self, names: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut unknown: Vec<String> = names
            .into_iter()
            .filter(|n| n.starts_with("DASHBOARD_"))
            .filter(|n| !self.known_variables.contains(n.as_str()) && !READ_BY_TESTS.contains(&n.as_str()))
            .collect();
        unknown.sort();
        unknown
            .into_iter()
            .map(|name| {
                let closest = self.known_variables.iter().min_by_key(|k| crate::util::edit_distance(&name, k));
                match closest {
                    Some(k) => format!("{name} is not a setting and is ignored; did you mean {k}?"),
                    None => format!("{name} is not a setting and is ignored"),
                }
            })
            .collect()
    }

    /// The origins a form may be posted from: the public URL's, and with the loopback default also the
    /// listener's own address (`http://127.0.0.1:8080` is the same server as `http://localhost:8080`,
    /// and a newcomer may type either).
    pub fn accepted_origins(&self, listening: SocketAddr) -> Vec<String> {
        let public_url = self.public_url_for(listening);
        let public = url::Url::parse(&public_url).map(|u| u.origin().ascii_serialization()).unwrap_or(public_url);
        let mut origins = vec![public];
        if self.public_url.is_none() && listening.ip().is_loopback() {
            origins.push(format!("http://{listening}"));
        }
        origins
    }

    /// The URL users see: `DASHBOARD_PUBLIC_URL`, else derived from the address the server listens on.
    /// A loopback listener is addressed as `localhost`, a name browsers treat as a secure context and
    /// accept as a passkey relying-party id, so passkeys work on a first start with nothing configured.
    pub fn public_url_for(&self, listening: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.as_str().trim_end_matches('/').to_owned(),
            None if listening.ip().is_loopback() => format!("http://localhost:{}", listening.port()),
            None => format!("http://{listening}"),
        }
    }

    /// Builds settings from any variable lookup; every error names the variable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars::new(&get);
        let database = DatabaseUrl::parse(&vars.get("DATABASE_URL").unwrap_or_else(|| "dashboard.db".into()))
            .map_err(|e| ConfigError::invalid("DATABASE_URL", e))?;
        let listen = vars.socket_addr(
            "DASHBOARD_LISTEN",
            &vars.get("DASHBOARD_LISTEN").unwrap_or_else(|| "127.0.0.1:8080".into()),
        )?;
        let public_url = vars.http_url("DASHBOARD_PUBLIC_URL")?;
        let sessions = SessionSettings::read(&vars)?;
        let sign_in = SignInSettings::read(&vars, public_url.as_ref())?;
        let event_retention = vars.duration_or_off("DASHBOARD_EVENT_RETENTION", "90days")?;
        let log_format = match vars.get("DASHBOARD_LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::invalid("DASHBOARD_LOG_FORMAT", format!("`{other}` is not text or json")))
            }
        };
        let metrics_listen = match vars.get("DASHBOARD_METRICS_LISTEN") {
            Some(raw) if !raw.eq_ignore_ascii_case("off") => Some(vars.socket_addr("DASHBOARD_METRICS_LISTEN", &raw)?),
            _ => None,
        };
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Ok(Self {
            database,
            listen,
            public_url,
            sessions,
            sign_in,
            trusted_proxies: trusted_proxies(&vars)?,
            secret_key: secret_key(&vars)?,
            cloud: CloudSettings::read(&vars)?,
            log_format,
            // Every core: the hashing threads run at nice 10, so page serving still wins the CPU.
            hash_concurrency: cores.max(1),
            event_retention,
            metrics_listen,
            mail: MailSettings::read(&vars)?,
            mail_poll_interval: Duration::from_secs(1),
            known_variables: BTreeSet::new(),
            warnings: Vec::new(),
        })
        .map(|mut s| {
            // Taken after every part has been read, so each name any part asks for counts.
            s.known_variables = vars.asked();
            s
        })
    }

    /// Settings for a database URL and everything else at its default (used by tests and commands).
    pub fn with_database(database_url: &str) -> Result<Self, ConfigError> {
        let url = database_url.to_owned();
        Self::from_lookup(move |name| (name == "DATABASE_URL").then(|| url.clone()))
    }
}

/// Variables the test suite reads (to make a missing tool fail instead of skip, to rewrite the docs);
/// the server ignores them, and warning about them would only be noise in a test run.
const READ_BY_TESTS: [&str; 4] =
    ["DASHBOARD_REQUIRE_BROWSER", "DASHBOARD_REQUIRE_CLOUD", "DASHBOARD_REQUIRE_NGINX", "DASHBOARD_UPDATE_DOCS"];

/// `DASHBOARD_TRUSTED_PROXIES`: comma-separated addresses and CIDRs.
fn trusted_proxies(vars: &Vars) -> Result<Vec<IpNet>, ConfigError> {
    let Some(raw) = vars.get("DASHBOARD_TRUSTED_PROXIES") else { return Ok(Vec::new()) };
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>().or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from)).map_err(|_| {
                ConfigError::invalid("DASHBOARD_TRUSTED_PROXIES", format!("`{s}` is not an IP address or CIDR"))
            })
        })
        .collect()
}

/// `DASHBOARD_SECRET_KEY`: base64 (standard, or URL-safe without padding) of at least 64 bytes.
fn secret_key(vars: &Vars) -> Result<Option<SecretBox<Vec<u8>>>, ConfigError> {
    let Some(raw) = vars.get("DASHBOARD_SECRET_KEY") else { return Ok(None) };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw.as_bytes())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw.as_bytes()))
        .map_err(|_| ConfigError::invalid("DASHBOARD_SECRET_KEY", "not base64"))?;
    if bytes.len() < 64 {
        let why = format!("{} bytes; at least 64 random bytes are needed", bytes.len());
        return Err(ConfigError::invalid("DASHBOARD_SECRET_KEY", why));
    }
    Ok(Some(SecretBox::new(Box::new(bytes))))
}
