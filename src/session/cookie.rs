//! The session cookie: its name and attributes, in one place. The session middleware is built from
//! here, and so is the removal cookie the sign-in page sends for a dead session.

use actix_session::config::{BrowserSession, CookieContentSecurity, TtlExtensionPolicy};
use actix_session::SessionMiddleware;
use actix_web::cookie::{Cookie, Key, SameSite};

use super::DbSessionStore;

/// `dashboard_session`, or `__Host-dashboard_session` under `https://`: HttpOnly, `SameSite=Lax`,
/// `Path=/`, no `Domain`, encrypted with the server key, and a browser-session cookie (expiry is the
/// server's business, from the row).
#[derive(Clone)]
pub struct SessionCookie {
    name: &'static str,
    secure: bool,
    key: Key,
}

impl SessionCookie {
    pub fn new(key: Key, secure: bool) -> Self {
        let name = if secure { "__Host-dashboard_session" } else { "dashboard_session" };
        Self { name, secure, key }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn secure(&self) -> bool {
        self.secure
    }

    /// The session middleware on `store` (built per worker; the key is the same in every one).
    pub fn middleware(
        &self,
        store: DbSessionStore,
        state_ttl: std::time::Duration,
    ) -> SessionMiddleware<DbSessionStore> {
        let ttl = actix_web::cookie::time::Duration::seconds(i64::try_from(state_ttl.as_secs()).unwrap_or(i64::MAX));
        SessionMiddleware::builder(store, self.key.clone())
            .cookie_name(self.name.to_owned())
            .cookie_path("/".into())
            .cookie_domain(None)
            .cookie_secure(self.secure)
            .cookie_http_only(true)
            .cookie_same_site(SameSite::Lax)
            .cookie_content_security(CookieContentSecurity::Private)
            // Sliding is done (coalesced) by the store's load, not by a write per request.
            .session_lifecycle(
                BrowserSession::default().state_ttl(ttl).state_ttl_extension_policy(TtlExtensionPolicy::OnStateChanges),
            )
            .build()
    }

    /// A cookie that makes the browser forget the session cookie.
    pub fn removal(&self) -> Cookie<'static> {
        let mut removal = Cookie::build(self.name, "")
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Lax)
            .finish();
        removal.make_removal();
        removal
    }
}
