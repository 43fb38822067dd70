//! Authentication: passwords, the guard, CSRF, client addresses and the signed-in user.

pub mod attempts;
pub mod codes;
pub mod csrf;
pub mod guard;
pub mod passkeys;
pub mod password;
pub mod pending;
pub mod reauth;
pub mod recovery;
pub mod totp;

use std::net::IpAddr;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use ipnet::IpNet;

use crate::error::AppError;
pub use crate::session::LiveSession as CurrentUser;

impl FromRequest for CurrentUser {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    /// The guard puts the signed-in user in the request; a handler that asks for one where there is
    /// none is sent to sign in.
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(req.extensions().get::<CurrentUser>().cloned().ok_or(AppError::Unauthenticated))
    }
}

/// The client's address: the peer, or the nearest untrusted hop of `X-Forwarded-For` when the peer is
/// one of `DASHBOARD_TRUSTED_PROXIES` (so a client cannot choose its own address by sending the header).
pub fn client_ip(req: &HttpRequest, trusted: &[IpNet]) -> String {
    let Some(peer) = req.peer_addr().map(|a| a.ip()) else {
        return String::new();
    };
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer.to_string();
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for value in req.headers().get_all("x-forwarded-for") {
        let Ok(value) = value.to_str() else { return peer.to_string() };
        for part in value.split(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => hops.push(ip),
                Err(_) => return peer.to_string(),
            }
        }
    }
    hops.into_iter().rev().find(|ip| !is_trusted(ip)).unwrap_or(peer).to_string()
}

/// True when `next` is a local path: starts with one `/` (not `//`) and holds no `\` and no control
/// character. Anything else could send the user to another site after signing in.
pub fn is_local_path(next: &str) -> bool {
    next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') && !next.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed() {
        for ok in ["/", "/account/sessions", "/a?b=c&d=%2F%2Fe", "/a//b"] {
            assert!(is_local_path(ok), "{ok}");
        }
        for bad in [
            "",
            "//evil.example",
            "https://evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/\tevil",
            "/a\nb",
            "evil.example",
            "javascript:alert(1)",
        ] {
            assert!(!is_local_path(bad), "{bad:?}");
        }
    }
}

#[cfg(test)]
mod properties {
    use super::is_local_path;
    use proptest::prelude::*;

    proptest! {
        /// Whatever `next` is, an accepted one stays on this site: a path, never a scheme, a
        /// protocol-relative `//host` or a backslash a browser would read as one.
        #[test]
        fn an_accepted_next_never_leaves_the_site(next in any::<String>()) {
            if is_local_path(&next) {
                prop_assert!(next.starts_with('/'));
                prop_assert!(!next.starts_with("//"));
                prop_assert!(!next.contains('\\'));
                prop_assert!(!next.chars().any(char::is_control));
                // Resolved against our origin, it stays on our origin.
                let base = url::Url::parse("https://dashboard.example/").unwrap();
                let joined = base.join(&next).unwrap();
                prop_assert_eq!(joined.host_str(), Some("dashboard.example"));
            }
        }

        #[test]
        fn external_urls_are_never_accepted(host in "[a-z]{1,12}\\.[a-z]{2,3}", path in "[a-z/]{0,12}") {
            for next in [
                format!("//{host}/{path}"),
                format!("https://{host}/{path}"),
                format!("/\\{host}/{path}"),
                format!("\\\\{host}"),
                format!("/\t/{host}"),
            ] {
                prop_assert!(!is_local_path(&next), "{}", next);
            }
        }

        #[test]
        fn plain_local_paths_are_accepted(path in "/([a-z0-9_-]{1,20}(/[a-z0-9_-]{1,10}){0,3})?(\\?[a-z]=[0-9]{1,3})?") {
            prop_assert!(is_local_path(&path));
        }
    }
}
