//! The gateway client credentials, read from AWS Secrets Manager and cached in memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use secrecy::SecretString;
use tokio::sync::Mutex;

/// How long credentials are reused before Secrets Manager is asked again.
pub const CACHE_FOR: Duration = Duration::from_secs(300);

/// `{"client_id": …, "client_secret": …}`.
#[derive(Clone)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: SecretString,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("client_id", &self.client_id).field("client_secret", &"[redacted]").finish()
    }
}

#[derive(serde::Deserialize)]
struct SecretJson {
    client_id: String,
    client_secret: String,
}

/// Reads one secret through the standard AWS configuration chain (region, credentials,
/// `AWS_ENDPOINT_URL`), with short timeouts so a sign-in never hangs on it.
pub struct SecretSource {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    cached: Mutex<Option<(Credentials, Instant)>>,
    reads: Arc<AtomicU64>,
}

impl SecretSource {
    pub async fn new(secret_id: String) -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .operation_attempt_timeout(Duration::from_secs(3))
                    .operation_timeout(Duration::from_secs(5))
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            .load()
            .await;
        Self {
            client: aws_sdk_secretsmanager::Client::new(&config),
            secret_id,
            cached: Mutex::new(None),
            reads: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }

    /// How many times the secret was read from Secrets Manager (tests check the cache with it).
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// The credentials: cached for [`CACHE_FOR`], or read afresh when `fresh` (after the gateway
    /// rejected the cached ones: the secret may have been rotated).
    pub async fn credentials(&self, fresh: bool) -> anyhow::Result<Credentials> {
        let mut cached = self.cached.lock().await;
        if !fresh {
            if let Some((creds, at)) = cached.as_ref() {
                if at.elapsed() < CACHE_FOR {
                    return Ok(creds.clone());
                }
            }
        }
        self.reads.fetch_add(1, Ordering::Relaxed);
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot read secret `{}`: {}", self.secret_id, aws_error(&e)))?;
        let text =
            out.secret_string().ok_or_else(|| anyhow::anyhow!("secret `{}` has no string value", self.secret_id))?;
        let parsed: SecretJson = serde_json::from_str(text)
            .map_err(|_| anyhow::anyhow!("secret `{}` is not JSON with client_id and client_secret", self.secret_id))?;
        let creds =
            Credentials { client_id: parsed.client_id, client_secret: SecretString::from(parsed.client_secret) };
        *cached = Some((creds.clone(), Instant::now()));
        Ok(creds)
    }
}

/// The error's kind and code, never its full debug form (which could echo request details).
fn aws_error<E: std::error::Error>(e: &aws_sdk_secretsmanager::error::SdkError<E>) -> String {
    use aws_sdk_secretsmanager::error::SdkError;
    match e {
        SdkError::TimeoutError(_) => "timed out".into(),
        SdkError::DispatchFailure(_) => "could not reach Secrets Manager".into(),
        SdkError::ServiceError(s) => format!("service error ({})", s.raw().status().as_u16()),
        SdkError::ResponseError(_) => "unreadable response".into(),
        _ => "request failed".into(),
    }
}
