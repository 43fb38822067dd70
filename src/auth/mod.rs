//! Authentication: passwords, the guard, CSRF, client addresses and the signed-in user.

pub mod attempts;
pub mod ceremonies;
pub mod codes;
pub mod csrf;
pub mod dbsc;
pub mod guard;
pub mod passkeys;
pub mod password;
pub mod reauth;
pub mod recovery;
pub mod totp;

use std::net::IpAddr;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use ipnet::IpNet;

use crate::error::AppError;
pub use crate::session::CurrentUser;

impl FromRequest for CurrentUser {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    /// The guard puts the signed-in user in the request; a handler that asks for one where there is
    /// none is sent to sign in.
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let user = req.extensions().get::<CurrentUser>().cloned().ok_or(AppError::Unauthenticated);
        std::future::ready(user.map(|user| CurrentUser { path: req.path().to_owned(), ..user }))
    }
}

/// The client's address: the peer, or — when the peer is one of `DASHBOARD_TRUSTED_PROXIES` — the
/// nearest untrusted hop of `X-Forwarded-For`. The list is read from its right end (the entry the
/// proxy that connected to us appended) leftwards, past trusted proxies only: everything to the left
/// of the client's entry is whatever the client sent, so it is never read, and a malformed entry
/// there cannot hide the client behind the proxy's address. A malformed entry among the trusted
/// hops stops the walk at the last trusted one (that proxy is then the nearest address known).
pub fn client_ip(req: &HttpRequest, trusted: &[IpNet]) -> String {
    let Some(peer) = req.peer_addr().map(|a| a.ip()) else {
        return String::new();
    };
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer.to_string();
    }
    let mut nearest = peer;
    // Several header lines make one list, in order.
    let values: Vec<_> = req.headers().get_all("x-forwarded-for").collect();
    for value in values.into_iter().rev() {
        let Ok(value) = value.to_str() else { return nearest.to_string() };
        for part in value.rsplit(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) if is_trusted(&ip) => nearest = ip,
                Ok(ip) => return ip.to_string(),
                Err(_) => return nearest.to_string(),
            }
        }
    }
    nearest.to_string()
}

/// `next` when it is a local path (see [`is_local_path`]), else `/`.
pub fn local_next(next: Option<String>) -> String {
    next.filter(|n| is_local_path(n)).unwrap_or_else(|| "/".to_owned())
}

/// True when `next` is a local path: starts with one `/` (not `//`) and holds no `\` and no control
/// character. Anything else could send the user to another site after signing in.
pub fn is_local_path(next: &str) -> bool {
    next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') && !next.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(peer: &str, forwarded: &[&str]) -> String {
        let trusted: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
        let mut req = actix_web::test::TestRequest::default().peer_addr(peer.parse().unwrap());
        for value in forwarded {
            req = req.append_header(("X-Forwarded-For", *value));
        }
        client_ip(&req.to_http_request(), &trusted)
    }

    #[test]
    fn the_address_a_trusted_proxy_appends_is_the_client() {
        // nginx's $proxy_add_x_forwarded_for: what the client sent, then the address it saw.
        assert_eq!(seen("127.0.0.1:5000", &["127.0.0.2"]), "127.0.0.2");
        assert_eq!(seen("127.0.0.1:5000", &["203.0.113.9, 127.0.0.2"]), "127.0.0.2");
        assert_eq!(seen("127.0.0.1:5000", &["203.0.113.9", "127.0.0.2"]), "127.0.0.2");
        // Through two trusted proxies.
        assert_eq!(seen("127.0.0.1:5000", &["203.0.113.9, 198.51.100.7, 10.1.2.3"]), "198.51.100.7");
        // No header: the proxy itself.
        assert_eq!(seen("127.0.0.1:5000", &[]), "127.0.0.1");
    }

    #[test]
    fn what_a_client_writes_in_front_is_never_believed() {
        for sent in ["garbage", "unknown, , 1.2.3.4", "127.0.0.1", "10.0.0.1", "::1"] {
            assert_eq!(seen("127.0.0.1:5000", &[&format!("{sent}, 127.0.0.2")]), "127.0.0.2", "{sent}");
        }
        // An untrusted peer's header is ignored altogether.
        assert_eq!(seen("192.0.2.4:5000", &["203.0.113.9"]), "192.0.2.4");
        // A malformed entry among trusted hops stops at the nearest trusted one.
        assert_eq!(seen("127.0.0.1:5000", &["203.0.113.9, garbage, 10.1.2.3"]), "10.1.2.3");
    }

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
