//! Authentication: passwords, the guard, CSRF, client addresses and the signed-in user.

pub mod csrf;
pub mod guard;
pub mod password;

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
