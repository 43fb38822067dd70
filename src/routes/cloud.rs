//! `ANY /cloud/{path}`: forwards the request to `DASHBOARD_CLOUD_API_URL/{path}` with the session's
//! gateway JWT, and streams the answer back. The browser never sees the token.
//!
//! What comes back is the Cloud API's content, not ours, served on the dashboard's origin. So it is
//! isolated: every `/cloud/…` response carries a `sandbox` CSP (see [`isolate`]), only passive types
//! (JSON, plain text, raster images) are shown inline, anything else is a download, and only the
//! methods an API needs are forwarded (never `TRACE`, which would echo the bearer token back).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::Next;
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
/// Response headers passed back (never Set-Cookie). `Content-Disposition` is ours to decide
/// (see [`is_passive`]), and the security headers are set by [`isolate`].
const RESPONSE_HEADERS: &[&str] =
    &["content-type", "cache-control", "etag", "last-modified", "content-language", "retry-after"];

/// The policy of every `/cloud/…` response (it replaces the dashboard's): no script, style, frame,
/// form or plugin of the Cloud API's content ever runs on the dashboard's origin.
pub const SANDBOX_CSP: &str = "sandbox; default-src 'none'";

/// Middleware, outside the error pages: every response of the proxy's route, whatever the path's
/// spelling — the forwarded answer, and our own redirects and error pages — carries [`SANDBOX_CSP`] instead of the dashboard's policy,
/// and `nosniff`, so a browser never treats it as an active document of this origin.
pub async fn isolate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let cloud = crate::routing::of(&req).has(|r| r.cloud);
    let mut res = next.call(req).await?;
    if cloud {
        let headers = res.headers_mut();
        headers.insert(header::CONTENT_SECURITY_POLICY, header::HeaderValue::from_static(SANDBOX_CSP));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
    }
    Ok(res)
}

/// Whether a Cloud API answer of this `Content-Type` may be shown inline: JSON, plain text and
/// raster images, which a browser never runs. Anything else (HTML, SVG, XML, CSS, scripts, PDF, no
/// type at all) is sent as an attachment.
pub fn is_passive(content_type: Option<&str>) -> bool {
    let Some(essence) = content_type.and_then(|v| v.split(';').next()).map(|v| v.trim().to_ascii_lowercase()) else {
        return false;
    };
    let json = essence == "application/json"
        || essence.strip_prefix("application/").is_some_and(|sub| sub.ends_with("+json") && !sub.contains('/'));
    json || matches!(essence.as_str(), "text/plain" | "image/png" | "image/jpeg" | "image/gif" | "image/webp")
}

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

/// A path that could climb out of the API's base path is refused: a `..` segment, also
/// percent-encoded, also with a path parameter (`..;x`, which Tomcat-style servers treat as `..`),
/// and any `%25` (an encoded `%`, which a server that decodes twice turns into `%2e%2e`).
fn climbs(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    if lower.contains("%25") {
        return true;
    }
    let lower = lower.replace("%2e", ".").replace("%2f", "/").replace("%5c", "/").replace("%3b", ";");
    lower.split(['/', '\\']).any(|seg| seg == ".." || seg.starts_with("..;"))
}

fn method_not_allowed() -> HttpResponse {
    let mut page = error_page(StatusCode::METHOD_NOT_ALLOWED, None);
    let allow = crate::cloud::FORWARDED_METHODS.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
    if let Ok(allow) = header::HeaderValue::from_str(&allow) {
        page.headers_mut().insert(header::ALLOW, allow);
    }
    page
}

pub async fn proxy(
    req: HttpRequest,
    user: CurrentUser,
    mut payload: web::Payload,
    state: State,
) -> Result<HttpResponse, AppError> {
    if !crate::cloud::forwards(req.method()) {
        return Ok(method_not_allowed());
    }
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
        // The token was refused: get a new one and try once more. Forced renewals share the
        // backoff (at most one per session per interval), so a Cloud API that answers 401 to
        // everything cannot make each request cost a token request; meanwhile its 401 is passed on.
        if let Some(token) = cloud.token_for(pool, &user, true).await {
            answer = send(token).await;
        }
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
    let content_type = answer.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if !is_passive(content_type) {
        res.insert_header((header::CONTENT_DISPOSITION, "attachment"));
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
        for bad in [
            "../admin",
            "a/../../b",
            "%2e%2e/x",
            "a/%2E%2E%2Fb",
            "..\\x",
            "..;/admin",
            "a/..;jsessionid=1/b",
            "a/%2e%2e%3b/b",
            "a/.%2e;x/b",
            "%252e%252e/x",
            "a%25b",
        ] {
            assert!(climbs(bad), "{bad}");
        }
        for ok in ["ping", "a..b/c", "items/..x", "a;..;/b", "items/x..;y", "a%20b"] {
            assert!(!climbs(ok), "{ok}");
        }
    }

    #[test]
    fn only_json_plain_text_and_raster_images_are_passive() {
        for passive in [
            "application/json",
            "application/json; charset=utf-8",
            "application/problem+json",
            "Text/Plain; charset=utf-8",
            "image/png",
            "image/jpeg",
            "image/gif",
            "image/webp",
        ] {
            assert!(is_passive(Some(passive)), "{passive}");
        }
        for active in [
            "text/html",
            "text/html; charset=utf-8",
            "image/svg+xml",
            "application/xhtml+xml",
            "text/xml",
            "application/xml",
            "text/css",
            "application/javascript",
            "text/javascript",
            "application/pdf",
            "application/octet-stream",
            "multipart/x-mixed-replace",
            "text/plainx",
            "",
        ] {
            assert!(!is_passive(Some(active)), "{active}");
        }
        assert!(!is_passive(None), "no type at all is not shown inline");
    }
}
