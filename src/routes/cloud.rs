//! `ANY /cloud/{path}`: forwards the request to `DASHBOARD_CLOUD_API_URL/{path}` with the session's
//! gateway JWT, and streams the answer back. The browser never sees the token.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use secrecy::ExposeSecret;

use crate::auth::CurrentUser;
use crate::error::{error_page, AppError};
use crate::state::State;

/// The largest request body forwarded.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Request headers passed on to the Cloud API (never the dashboard's cookies or an Authorization).
const REQUEST_HEADERS: &[&str] = &[
    "accept",
    "accept-language",
    "content-type",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
];
/// Response headers passed back (never Set-Cookie).
const RESPONSE_HEADERS: &[&str] = &[
    "content-type",
    "cache-control",
    "etag",
    "last-modified",
    "content-disposition",
    "content-language",
    "retry-after",
];

fn unavailable(why: &str) -> HttpResponse {
    error_page(StatusCode::SERVICE_UNAVAILABLE, Some(why))
}

/// `base` and `path` joined by exactly one `/`, the query kept.
pub fn target_url(base: &url::Url, path: &str, query: &str) -> String {
    let mut url = format!("{}/{}", base.as_str().trim_end_matches('/'), path.trim_start_matches('/'));
    if !query.is_empty() {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// A path that could climb out of the API's base path (`..`, also percent-encoded) is refused.
fn climbs(path: &str) -> bool {
    let lower = path.to_ascii_lowercase().replace("%2e", ".").replace("%2f", "/").replace("%5c", "/");
    lower.split(['/', '\\']).any(|seg| seg == "..")
}

pub async fn proxy(
    req: HttpRequest,
    user: CurrentUser,
    mut payload: web::Payload,
    state: State,
) -> Result<HttpResponse, AppError> {
    let pool = &state.pool;
    let Some(cloud) = state.cloud.as_ref() else {
        return Ok(unavailable("Cloud access is not configured on this dashboard."));
    };
    let path = req.path().strip_prefix("/cloud/").unwrap_or("");
    if climbs(path) {
        return Err(AppError::BadRequest("That address is not allowed.".into()));
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| AppError::BadRequest("The request body could not be read.".into()))?;
        if body.len() + chunk.len() > BODY_LIMIT {
            return Err(AppError::PayloadTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    let body = body.freeze();
    let url = target_url(&cloud.api_url, path, req.query_string());
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
        .map_err(|_| AppError::BadRequest("Unknown method.".into()))?;

    let send = |token: secrecy::SecretString| {
        let mut out = cloud.http.request(method.clone(), &url).bearer_auth(token.expose_secret()).body(body.clone());
        for name in REQUEST_HEADERS {
            if let Some(value) = req.headers().get(*name) {
                out = out.header(*name, value.as_bytes());
            }
        }
        out.send()
    };
    let Some(token) = cloud.token_for(pool, &user, false).await else {
        return Ok(unavailable("Cloud access is unavailable right now. Please try again in a minute."));
    };
    let mut answer = send(token).await;
    if answer.as_ref().is_ok_and(|r| r.status() == reqwest::StatusCode::UNAUTHORIZED) {
        // The token was refused: get a new one and try once more.
        let Some(token) = cloud.token_for(pool, &user, true).await else {
            return Ok(unavailable("Cloud access is unavailable right now. Please try again in a minute."));
        };
        answer = send(token).await;
    }
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(session = %user.session_id, timeout = e.is_timeout(), "the Cloud API did not answer");
            return Ok(unavailable("The Cloud API did not answer. Please try again."));
        }
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut res = HttpResponse::build(status);
    for name in RESPONSE_HEADERS {
        if let Some(value) = answer.headers().get(*name) {
            if let Ok(value) = header::HeaderValue::from_bytes(value.as_bytes()) {
                res.insert_header((*name, value));
            }
        }
    }
    Ok(res.streaming(answer.bytes_stream()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_the_base_with_exactly_one_slash() {
        for base in ["http://api.example/v1", "http://api.example/v1/"] {
            let base: url::Url = base.parse().unwrap();
            assert_eq!(target_url(&base, "ping", ""), "http://api.example/v1/ping");
            assert_eq!(target_url(&base, "/items/7", "a=1&b=2"), "http://api.example/v1/items/7?a=1&b=2");
        }
    }

    #[test]
    fn climbing_paths_are_refused() {
        for bad in ["../admin", "a/../../b", "%2e%2e/x", "a/%2E%2E%2Fb", "..\\x"] {
            assert!(climbs(bad), "{bad}");
        }
        for ok in ["ping", "a..b/c", "items/..x"] {
            assert!(!climbs(ok), "{ok}");
        }
    }
}
