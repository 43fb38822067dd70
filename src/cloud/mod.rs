//! Cloud access: at sign-in, a gateway JWT for the user's role, obtained with client credentials
//! from AWS Secrets Manager; kept on the server, sealed, with the session; used by `/cloud/…`.

pub mod gateway;
pub mod secrets;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

use crate::config::Settings;
use crate::db::users::Role;
use crate::db::{self, sessions, Pool};
use crate::session::CurrentUser;
use crate::util::now_ms;

/// The methods the `/cloud/…` proxy forwards; any other gets `405` (never `TRACE`, which would
/// echo the bearer token back).
pub const FORWARDED_METHODS: &[actix_web::http::Method] = {
    use actix_web::http::Method;
    &[Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::PATCH, Method::DELETE]
};

/// Whether the proxy forwards `method` (the CSRF check leaves the others to the proxy's `405`).
pub fn forwards(method: &actix_web::http::Method) -> bool {
    FORWARDED_METHODS.contains(method)
}
pub use gateway::{GatewayError, Token};

/// A token is renewed when it has less than this left.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(60);
/// After a failed attempt, a session waits this long before the next (so an outage does not make
/// every page wait for the gateway's timeout).
pub const RETRY_AFTER: Duration = Duration::from_secs(30);

/// Connect and total timeouts of every call to Secrets Manager, the gateway and the Cloud API.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(5);

/// The cloud-access service, shared by all workers.
pub struct CloudAccess {
    pub secrets: secrets::SecretSource,
    pub http: reqwest::Client,
    pub token_url: url::Url,
    pub api_url: url::Url,
    pub required: bool,
    sealer: crate::seal::Sealer,
    backoff: Mutex<Backoff>,
}

/// Per session, when the gateway may be asked again. A failure blocks every request for a new
/// token until `failed`; a forced renewal (after a `401` from the Cloud API) blocks further forced
/// renewals until `forced`, so a Cloud API refusing every token costs at most one token request
/// per session per [`RETRY_AFTER`]. Expired entries are dropped whenever one is added.
#[derive(Default)]
struct Backoff {
    failed: HashMap<String, Instant>,
    forced: HashMap<String, Instant>,
}

impl Backoff {
    /// Whether a request for a new token may go to the gateway now; a forced one is recorded.
    fn admit(&mut self, session_id: &str, force: bool) -> bool {
        let now = Instant::now();
        if self.failed.get(session_id).is_some_and(|until| now < *until) {
            return false;
        }
        if force {
            if self.forced.get(session_id).is_some_and(|until| now < *until) {
                return false;
            }
            self.forced.retain(|_, until| *until > now);
            self.forced.insert(session_id.to_owned(), now + RETRY_AFTER);
        }
        true
    }

    fn failed(&mut self, session_id: &str) {
        let now = Instant::now();
        self.failed.retain(|_, until| *until > now);
        self.failed.insert(session_id.to_owned(), now + RETRY_AFTER);
    }
}

/// What the dashboard says about cloud access.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloudStatus {
    NotConfigured,
    Connected { role: String, until: i64 },
    Unavailable,
}

impl CloudAccess {
    /// `None` when `DASHBOARD_CLOUD_SECRET_ID` is unset (cloud access disabled).
    pub async fn from_settings(settings: &Settings, master_key: &[u8]) -> anyhow::Result<Option<Self>> {
        let Some(cloud) = &settings.cloud else {
            return Ok(None);
        };
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TOTAL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("dashboard")
            .build()?;
        Ok(Some(Self {
            secrets: secrets::SecretSource::new(cloud.secret_id.clone()).await,
            http,
            token_url: cloud.token_url.clone(),
            api_url: cloud.api_url.clone(),
            required: cloud.required,
            sealer: crate::seal::Sealer::new(master_key, b"dashboard cloud token v1"),
            backoff: Mutex::new(Backoff::default()),
        }))
    }

    /// A token for `role`. When the gateway rejects the cached credentials, the secret is read
    /// again once and the request retried, so a rotated secret heals without a restart.
    pub async fn obtain(&self, role: Role) -> Result<Token, GatewayError> {
        let unavailable = |e: anyhow::Error| GatewayError::Unavailable(e.to_string());
        let creds = self.secrets.credentials(false).await.map_err(unavailable)?;
        match gateway::request_token(&self.http, &self.token_url, &creds, role).await {
            Err(GatewayError::Rejected) => {
                tracing::info!("gateway rejected the cached client credentials; reading the secret again");
                let creds = self.secrets.credentials(true).await.map_err(unavailable)?;
                gateway::request_token(&self.http, &self.token_url, &creds, role).await
            }
            other => other,
        }
    }

    /// Seals a token for the session `session_id` (the session id is the associated data, so a
    /// sealed token only opens for its row).
    pub fn seal(&self, session_id: &str, token: &SecretString) -> String {
        self.sealer.seal(session_id, token.expose_secret().as_bytes())
    }

    pub fn open(&self, session_id: &str, sealed: &str) -> Option<SecretString> {
        String::from_utf8(self.sealer.open(session_id, sealed)?).ok().map(SecretString::from)
    }

    /// A valid token for the signed-in user's current role: the stored one, or a new one when it is
    /// missing, about to expire, for another role (after a role change), or `force`d (after a `401`
    /// from the Cloud API). `None` when cloud access is unavailable for now, or when a forced
    /// renewal was already made for this session within [`RETRY_AFTER`].
    pub async fn token_for(&self, pool: &Pool, user: &CurrentUser, force: bool) -> Option<SecretString> {
        self.token_until(pool, user, force).await.map(|(token, _)| token)
    }

    /// [`Self::token_for`], with the token's expiry (epoch ms).
    async fn token_until(&self, pool: &Pool, user: &CurrentUser, force: bool) -> Option<(SecretString, i64)> {
        let id = user.session_id.clone();
        let stored = db::run(pool, move |conn| Ok(sessions::cloud_token(conn, &id)?)).await.ok().flatten();
        if !force {
            if let Some((sealed, role, expires_at)) = &stored {
                let fresh = *expires_at - now_ms() > crate::util::duration_ms(REFRESH_BEFORE);
                if fresh && role == user.role.as_str() {
                    if let Some(token) = self.open(&user.session_id, sealed) {
                        return Some((token, *expires_at));
                    }
                }
            }
        }
        // Checked and recorded under one lock, so parallel 401s admit one forced renewal.
        if !self.backoff.lock().await.admit(&user.session_id, force) {
            return None;
        }
        match self.obtain(user.role).await {
            Ok(token) => {
                let sealed = self.seal(&user.session_id, &token.access_token);
                let (id, role, expires_at) = (user.session_id.clone(), user.role.as_str(), token.expires_at);
                let saved =
                    db::run(pool, move |conn| Ok(sessions::set_cloud_token(conn, &id, &sealed, role, expires_at)?))
                        .await;
                if let Err(e) = saved {
                    tracing::warn!(error = %e, session = %user.session_id, "could not store the gateway token");
                }
                self.backoff.lock().await.failed.remove(&user.session_id);
                tracing::info!(session = %user.session_id, role = %user.role, "obtained a gateway token");
                Some((token.access_token, token.expires_at))
            }
            Err(e) => {
                tracing::warn!(session = %user.session_id, error = %e, "cloud access unavailable");
                self.backoff.lock().await.failed(&user.session_id);
                None
            }
        }
    }

    /// The dashboard's line about cloud access (refreshing the token if needed).
    pub async fn status(&self, pool: &Pool, user: &CurrentUser) -> CloudStatus {
        // A token is always for the user's current role (token_until renews it after a role change).
        match self.token_until(pool, user, false).await {
            Some((_, until)) => CloudStatus::Connected { role: user.role.as_str().to_owned(), until },
            None => CloudStatus::Unavailable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn access() -> CloudAccess {
        let mut settings = Settings::with_database("unused.db").unwrap();
        settings.cloud = Some(crate::config::CloudSettings {
            secret_id: "s".into(),
            token_url: "http://127.0.0.1:9/token".parse().unwrap(),
            api_url: "http://127.0.0.1:9/api".parse().unwrap(),
            required: false,
        });
        CloudAccess::from_settings(&settings, &[3u8; 64]).await.unwrap().unwrap()
    }

    #[tokio::test]
    async fn a_sealed_token_opens_only_for_its_session() {
        let c = access().await;
        let token = SecretString::from("eyJ.header.sig");
        let sealed = c.seal("session-a", &token);
        assert!(!sealed.contains("eyJ"));
        assert_eq!(c.open("session-a", &sealed).unwrap().expose_secret(), "eyJ.header.sig");
        assert!(c.open("session-b", &sealed).is_none());
        assert!(c.open("session-a", "garbage").is_none());
        assert_ne!(sealed, c.seal("session-a", &token), "a fresh nonce every time");
    }
}
