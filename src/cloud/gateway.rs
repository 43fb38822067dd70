//! The gateway's OAuth 2.0 token endpoint (client-credentials grant, RFC 6749 §4.4).

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

use super::secrets::Credentials;
use crate::db::users::Role;

/// A gateway JWT and when it stops being valid (epoch ms).
#[derive(Clone)]
pub struct Token {
    pub access_token: SecretString,
    pub expires_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The gateway refused the client credentials (401, or 400 `invalid_client`): they may have
    /// been rotated.
    #[error("the gateway rejected the client credentials")]
    Rejected,
    #[error("the gateway is unavailable: {0}")]
    Unavailable(String),
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<i64>,
}

#[derive(serde::Deserialize)]
struct ErrorResponse {
    error: Option<String>,
}

/// One token request for `role`: form-encoded `grant_type=client_credentials&scope=role:…`, the
/// client id and secret in HTTP Basic authentication. Counted and timed in the metrics.
pub async fn request_token(
    http: &reqwest::Client,
    token_url: &url::Url,
    creds: &Credentials,
    role: Role,
) -> Result<Token, GatewayError> {
    let started = std::time::Instant::now();
    let result = send_token_request(http, token_url, creds, role).await;
    let outcome = match &result {
        Ok(_) => "success",
        Err(GatewayError::Rejected) => "rejected",
        Err(GatewayError::Unavailable(_)) => "unavailable",
    };
    crate::metrics::cloud_token(outcome, started.elapsed());
    result
}

async fn send_token_request(
    http: &reqwest::Client,
    token_url: &url::Url,
    creds: &Credentials,
    role: Role,
) -> Result<Token, GatewayError> {
    let scope = format!("role:{}", role.as_str());
    let res = http
        .post(token_url.clone())
        .basic_auth(&creds.client_id, Some(creds.client_secret.expose_secret()))
        .form(&[("grant_type", "client_credentials"), ("scope", scope.as_str())])
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| {
            GatewayError::Unavailable(if e.is_timeout() { "timed out".into() } else { "unreachable".into() })
        })?;
    let status = res.status();
    let body = res.bytes().await.map_err(|_| GatewayError::Unavailable("unreadable answer".into()))?;
    if status == reqwest::StatusCode::UNAUTHORIZED
        || (status == reqwest::StatusCode::BAD_REQUEST
            && serde_json::from_slice::<ErrorResponse>(&body).ok().and_then(|e| e.error).as_deref()
                == Some("invalid_client"))
    {
        return Err(GatewayError::Rejected);
    }
    if !status.is_success() {
        return Err(GatewayError::Unavailable(format!("status {}", status.as_u16())));
    }
    let parsed: TokenResponse =
        serde_json::from_slice(&body).map_err(|_| GatewayError::Unavailable("answer without access_token".into()))?;
    let now = crate::util::now_ms();
    let from_expires_in = parsed.expires_in.map(|s| now.saturating_add(s.saturating_mul(1000)));
    let from_claim = jwt_exp(&parsed.access_token).map(|s| s.saturating_mul(1000));
    // The earlier of the two; without either, assume five minutes.
    let expires_at = match (from_expires_in, from_claim) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => now + 300_000,
    };
    if expires_at <= now {
        return Err(GatewayError::Unavailable("the token is already expired".into()));
    }
    Ok(Token { access_token: SecretString::from(parsed.access_token), expires_at })
}

/// The `exp` claim of a JWT, if the token is one. Only read to schedule the refresh: the Cloud API
/// verifies the token, the dashboard never trusts its claims for anything else.
fn jwt_exp(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes).ok()?.get("exp")?.as_i64()
}

#[cfg(test)]
mod tests {
    use super::jwt_exp;
    use base64::Engine;
    use proptest::prelude::*;

    fn jwt(payload: &str) -> String {
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.sig", enc(r#"{"alg":"RS256"}"#), enc(payload))
    }

    #[test]
    fn the_exp_claim_is_read_when_present() {
        assert_eq!(jwt_exp(&jwt(r#"{"exp":1900000000,"scope":"role:user"}"#)), Some(1_900_000_000));
        assert_eq!(jwt_exp(&jwt(r#"{"scope":"role:user"}"#)), None);
        assert_eq!(jwt_exp("opaque-token"), None);
    }

    proptest! {
        #[test]
        fn any_token_text_is_handled_without_panicking(t in any::<String>()) {
            let _ = jwt_exp(&t);
        }
    }
}
