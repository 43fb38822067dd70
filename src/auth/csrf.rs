//! CSRF protection for every `POST` (and every other unsafe method).
//!
//! A signed-in session has a CSRF token of its own: random, made with the session and kept in its
//! row, so the session lookup that every signed-in request does anyway brings it (no HMAC, no cookie
//! to unseal). A row from before rows kept one gets HMAC(server key, its public id) instead.
//! A visitor without a session has a random secret in a signed, HttpOnly pre-session cookie (no
//! `sessions` row), and the token HMAC(server key, secret): bound to that browser. So a token from
//! another visitor or another session does not verify. Checked in constant time. Forms carry it in
//! the `csrf_token` field; JSON requests (the passkey ceremonies) and the Cloud proxy in the
//! `X-CSRF-Token` header. A request from another site (`Sec-Fetch-Site: cross-site`, or an `Origin`
//! that is not ours) is refused before the token is read.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use base64::Engine;
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::CurrentUser;
use crate::error::{error_page, AppError};

/// The largest form body accepted anywhere.
pub const FORM_LIMIT: usize = 16 * 1024;

/// CSRF settings, shared as app data of their own (the middleware needs nothing else of the app).
#[derive(Clone)]
pub struct CsrfConfig {
    /// HMAC states already keyed (the key's two compression rounds done once, not per request).
    token_mac: Hmac<Sha256>,
    cookie_mac: Hmac<Sha256>,
    cookie_name: String,
    secure: bool,
    /// `scheme://host[:port]` of the public URL, for the `Origin` check (and, when the public URL is
    /// the loopback default, the listener's own address, which is the same server).
    origins: Vec<String>,
}

/// An HMAC state keyed with the key derived from `master` for `purpose`.
fn keyed(master: &[u8], purpose: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(&crate::util::derive_key(master, purpose)).expect("HMAC takes keys of any length")
}

impl CsrfConfig {
    pub fn new(master: &[u8], secure: bool, origins: Vec<String>) -> Self {
        let cookie_name = if secure { "__Host-dashboard_csrf" } else { "dashboard_csrf" }.to_owned();
        Self {
            token_mac: keyed(master, b"dashboard csrf v1"),
            cookie_mac: keyed(master, b"dashboard csrf cookie v2"),
            cookie_name,
            secure,
            origins,
        }
    }

    /// The token for a visitor's secret (a visitor without a session).
    fn token(&self, secret: &str) -> String {
        let mut mac = self.token_mac.clone();
        mac.update(secret.as_bytes());
        mac.update(b"|");
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// The token of a signed-in session: the one its row keeps, or for a row from before rows kept
    /// one, an HMAC of its public id (a visitor secret never holds a NUL, so the two kinds of input
    /// never meet).
    fn session_token(&self, user: &CurrentUser) -> String {
        if !user.csrf.0.is_empty() {
            return user.csrf.0.clone();
        }
        let mut mac = self.token_mac.clone();
        mac.update(b"\0session\0");
        mac.update(user.session_id.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// The cookie's value: `secret.tag`, the tag an HMAC of the secret under its own key.
    fn seal(&self, secret: &str) -> String {
        let mut mac = self.cookie_mac.clone();
        mac.update(secret.as_bytes());
        format!("{secret}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    /// The secret of a cookie value whose tag verifies (checked in constant time).
    fn unseal<'a>(&self, value: &'a str) -> Option<&'a str> {
        let (secret, tag) = value.rsplit_once('.')?;
        let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(tag).ok()?;
        let mut mac = self.cookie_mac.clone();
        mac.update(secret.as_bytes());
        mac.verify_slice(&tag).ok()?;
        Some(secret)
    }

    fn read_secret(&self, req: &ServiceRequest) -> Option<String> {
        let cookies = req.cookies().ok()?;
        let cookie = cookies.iter().find(|c| c.name() == self.cookie_name)?;
        self.unseal(cookie.value()).map(str::to_owned)
    }

    fn secret_cookie(&self, secret: &str) -> Cookie<'static> {
        Cookie::build(self.cookie_name.clone(), self.seal(secret))
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Lax)
            .finish()
    }

    fn cross_site(&self, req: &ServiceRequest) -> bool {
        let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
        if header("sec-fetch-site") == Some("cross-site") {
            return true;
        }
        matches!(header(header::ORIGIN.as_str()), Some(origin) if !self.origins.iter().any(|o| o == origin))
    }
}

/// The CSRF token to put in this page's forms.
#[derive(Clone, Debug)]
pub struct CsrfToken(pub String);

impl FromRequest for CsrfToken {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            req.extensions()
                .get::<CsrfToken>()
                .cloned()
                .ok_or_else(|| AppError::Internal(anyhow::anyhow!("CSRF middleware not installed"))),
        )
    }
}

/// A JSON body (`application/json`): only scripts of a page send those (a cross-site form cannot,
/// and a cross-site script would need CORS, which is never granted).
fn is_json(req: &ServiceRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/json"))
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

/// The middleware. It runs inside the guard, so a signed-out request to a protected route is
/// redirected before any CSRF check, and the signed-in user is known here.
pub async fn protect(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let config = req
        .app_data::<web::Data<CsrfConfig>>()
        .cloned()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("CSRF settings missing")))?;
    // A signed-in request's token came with its session; only a visitor's needs the cookie.
    let signed_in = req.extensions().get::<CurrentUser>().map(|u| config.session_token(u));
    let (expected, new_secret, known) = match signed_in {
        Some(token) => (token, None, true),
        None => match config.read_secret(&req) {
            Some(secret) => (config.token(&secret), None, true),
            None => {
                let secret = crate::util::random_b64(32);
                (config.token(&secret), Some(secret), false)
            }
        },
    };

    // A method the Cloud proxy never forwards is left to its `405` (it changes nothing).
    let cloud = crate::routing::of(&req).has(|r| r.cloud);
    let refused_by_proxy = cloud && !crate::cloud::forwards(req.method());
    // A route the browser calls by itself proves the request with a signature instead.
    let signed = crate::routing::of(&req).has(|r| r.signed);
    if is_unsafe(req.method()) && !refused_by_proxy && !signed {
        let refuse = |req: ServiceRequest, status: StatusCode, why: &str| {
            tracing::info!(path = %req.path(), reason = why, "refused an unsafe request");
            let message = (status == StatusCode::FORBIDDEN).then_some(
                "This form has expired or did not come from this site. Go back, reload the page and try again.",
            );
            Ok(req.into_response(error_page(status, message)).map_into_right_body())
        };
        if config.cross_site(&req) {
            return refuse(req, StatusCode::FORBIDDEN, "cross-site");
        }
        // The Cloud proxy's requests and the passkey ceremonies' JSON carry the token in a header
        // (`X-CSRF-Token`, from the page's `<meta name="csrf-token">`); forms in a field.
        let supplied = if cloud || is_json(&req) {
            req.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()).map(str::to_owned)
        } else {
            match read_form_field(&mut req, "csrf_token").await {
                Ok(v) => v,
                Err(status) => return refuse(req, status, "unreadable body"),
            }
        };
        let valid = known && supplied.is_some_and(|s| bool::from(s.as_bytes().ct_eq(expected.as_bytes())));
        if !valid {
            return refuse(req, StatusCode::FORBIDDEN, "missing or invalid CSRF token");
        }
    }

    req.extensions_mut().insert(CsrfToken(expected));
    let mut res = next.call(req).await?;
    if let Some(secret) = new_secret {
        let _ = res.response_mut().add_cookie(&config.secret_cookie(&secret));
    }
    Ok(res.map_into_left_body())
}

/// Reads the (form) body, at most [`FORM_LIMIT`] bytes, finds `field`, and puts the body back for
/// the handler.
async fn read_form_field(req: &mut ServiceRequest, field: &str) -> Result<Option<String>, StatusCode> {
    if let Some(len) = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok()) {
        if len > FORM_LIMIT {
            return Err(StatusCode::PAYLOAD_TOO_LARGE);
        }
    }
    let mut payload = req.take_payload();
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| StatusCode::BAD_REQUEST)?;
        if body.len() + chunk.len() > FORM_LIMIT {
            return Err(StatusCode::PAYLOAD_TOO_LARGE);
        }
        body.extend_from_slice(&chunk);
    }
    let body = body.freeze();
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let value = if is_form {
        url::form_urlencoded::parse(&body).find(|(k, _)| k == field).map(|(_, v)| v.into_owned())
    } else {
        None
    };
    req.set_payload(Payload::from(body));
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::CsrfConfig;
    use proptest::prelude::*;

    fn config() -> CsrfConfig {
        CsrfConfig::new(&[7u8; 64], false, vec!["http://127.0.0.1:8080".into()])
    }

    fn signed_in(csrf: &str, session_id: &str) -> crate::session::CurrentUser {
        crate::session::CurrentUser {
            user_id: "u".into(),
            username: "alice".into(),
            role: crate::db::users::Role::User,
            session_id: session_id.into(),
            created_at: 0,
            expires_at: 0,
            absolute_expires_at: None,
            notices: Vec::new(),
            authenticated_at: 0,
            authenticated_with: crate::accounts::AuthMethod::Password,
            has_totp: false,
            has_passkey: false,
            second_factors_on: true,
            csrf: crate::session::SessionCsrf(csrf.into()),
            bound: None,
            path: String::new(),
        }
    }

    proptest! {
        /// A visitor's token verifies only for the secret it was made for.
        #[test]
        fn tokens_are_bound_to_the_visitor(a in "[A-Za-z0-9_-]{43}", b in "[A-Za-z0-9_-]{43}") {
            let c = config();
            let t = c.token(&a);
            prop_assert_eq!(&t, &c.token(&a));
            if a != b {
                prop_assert_ne!(&t, &c.token(&b));
            }
            prop_assert_eq!(t.len(), 43);
        }

        /// A session's token is the one its row keeps; a row without one gets a token bound to its
        /// public id, which no visitor secret gives.
        #[test]
        fn session_tokens_come_from_the_row_or_the_session_id(
            kept in "[A-Za-z0-9_-]{43}", id in "[A-Za-z0-9_-]{22}", other in "[A-Za-z0-9_-]{22}",
        ) {
            let c = config();
            prop_assert_eq!(c.session_token(&signed_in(&kept, &id)), kept.clone());
            let derived = c.session_token(&signed_in("", &id));
            prop_assert_eq!(derived.len(), 43);
            prop_assert_eq!(&derived, &c.session_token(&signed_in("", &id)));
            if id != other {
                prop_assert_ne!(&derived, &c.session_token(&signed_in("", &other)));
            }
            prop_assert_ne!(&derived, &c.token(&id));
            prop_assert_ne!(&derived, &c.token(&format!("\0session\0{id}")[..]));
        }

        /// A cookie verifies only as it was sealed: any other secret or tag is refused.
        #[test]
        fn sealed_cookies_verify_only_untouched(a in "[A-Za-z0-9_-]{43}", b in "[A-Za-z0-9_-]{43}") {
            let c = config();
            let sealed = c.seal(&a);
            prop_assert_eq!(c.unseal(&sealed), Some(a.as_str()));
            let (_, tag) = sealed.rsplit_once('.').unwrap();
            if a != b {
                let forged = format!("{b}.{tag}");
                prop_assert_eq!(c.unseal(&forged), None);
            }
            prop_assert_eq!(c.unseal(&a), None);
            let other = CsrfConfig::new(&[8u8; 64], false, vec!["http://127.0.0.1:8080".into()]);
            prop_assert_eq!(other.unseal(&sealed), None);
        }

        #[test]
        fn another_server_key_makes_other_tokens(a in "[A-Za-z0-9_-]{43}") {
            let other = CsrfConfig::new(&[8u8; 64], false, vec!["http://127.0.0.1:8080".into()]);
            prop_assert_ne!(config().token(&a), other.token(&a));
        }
    }
}
