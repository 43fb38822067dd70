//! Mail: addresses, the outbox's payloads, composing, and the SMTP settings.
//!
//! A mail is never sent inside a request. What causes it (an invitation, a reset request, a
//! new-device sign-in) writes an outbox row in its own transaction ([`crate::db::outbox`]); the
//! background [`sender`] of any instance claims it, composes it from the row's payload and sends it,
//! retrying with growing delays. So an SMTP server that is down, refuses or hangs delays mail but
//! loses none and holds no request. A link's token is sealed in the payload (bound to the row) and
//! the payload is emptied once the mail is sent: the database holds only hashes of live tokens.

pub mod compose;
pub mod sender;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Which mail a row is (`mail_outbox.kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Invitation,
    PasswordReset,
    NewDevice,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Invitation => "invitation",
            Kind::PasswordReset => "password_reset",
            Kind::NewDevice => "new_device",
        }
    }

    /// How long a mail of this kind is worth sending: as long as its link lives; a day for a notice.
    pub fn lifetime(self) -> Duration {
        match self {
            Kind::Invitation => INVITATION_LIFETIME,
            Kind::PasswordReset => RESET_LIFETIME,
            Kind::NewDevice => Duration::from_secs(24 * 3600),
        }
    }
}

/// How long an invitation link works.
pub const INVITATION_LIFETIME: Duration = Duration::from_secs(72 * 3600);
/// How long a password-reset link works.
pub const RESET_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// Reset mails one account may be sent per hour.
pub const RESETS_PER_HOUR: i64 = 3;

/// What a mail is composed from, as the outbox row keeps it (JSON). `token` is sealed for the row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Payload {
    Invitation { username: String, token: String },
    PasswordReset { username: String, token: String },
    NewDevice { username: String, device: String, ip: String, at: i64 },
}

impl Payload {
    pub fn kind(&self) -> Kind {
        match self {
            Payload::Invitation { .. } => Kind::Invitation,
            Payload::PasswordReset { .. } => Kind::PasswordReset,
            Payload::NewDevice { .. } => Kind::NewDevice,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A new one-time link: the token (for the mail, or printed) and what is stored of it.
pub struct Link {
    pub token: SecretString,
    pub token_hash: String,
    /// The outbox row that will carry it.
    pub mail_id: String,
    /// The token sealed for that row.
    pub sealed_token: String,
}

/// The mail side of the app state.
pub struct Mail {
    /// SMTP is configured: mail can go out (invitations by mail, `/password-reset`).
    pub on: bool,
    seal: crate::seal::Sealer,
    /// Test hook: where a password reset, its token and new password checked, is about to be done.
    pub reset_hold: crate::hold::HoldPoint,
}

impl Mail {
    pub fn new(on: bool, key: &[u8]) -> Self {
        Self { on, seal: sealer(key), reset_hold: Default::default() }
    }

    /// A fresh link whose token is sealed for a new outbox row.
    pub fn new_link(&self) -> Link {
        let token = crate::util::random_b64(32);
        let mail_id = new_id();
        let sealed_token = self.seal.seal(&mail_id, token.as_bytes());
        Link { token_hash: crate::db::tokens::hash(&token), token: SecretString::from(token), mail_id, sealed_token }
    }
}

/// The key that seals tokens in outbox payloads.
pub fn sealer(key: &[u8]) -> crate::seal::Sealer {
    crate::seal::Sealer::new(key, b"dashboard mail token v1")
}

/// A new outbox row id.
pub fn new_id() -> String {
    crate::util::random_b64(12)
}

/// `{public_url}{path}?token={token}`.
pub fn link_url(public_url: &str, path: &str, token: &SecretString) -> String {
    format!("{}{path}?token={}", public_url.trim_end_matches('/'), token.expose_secret())
}

/// How long after its `attempts`-th failed attempt a mail is tried again: 5 s, then three times as
/// long each time (15 s, 45 s, …), at most a day.
pub fn retry_delay(attempts: i32) -> Duration {
    let exponent = u32::try_from(attempts.max(1) - 1).unwrap_or(0).min(20);
    Duration::from_secs(5u64.saturating_mul(3u64.saturating_pow(exponent))).min(Duration::from_secs(24 * 3600))
}

/// An address as typed, checked and normalized (trimmed, lowercased): `local@domain`, at most 254
/// characters, no spaces or control characters, a domain of dot-separated labels. Lowercased whole,
/// so addresses are unique case-insensitively (mail systems treat the local part so in practice).
pub fn normalize_email(raw: &str) -> Result<String, &'static str> {
    let email = raw.trim().to_lowercase();
    if email.is_empty() {
        return Err("The email address is empty.");
    }
    if email.chars().count() > 254 {
        return Err("The email address is longer than 254 characters.");
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Err("The email address needs an @ between a name and a domain.");
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
    let domain_ok = domain.contains('.') || domain == "localhost";
    let labels_ok = domain.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    });
    if !local_ok || !domain_ok || !labels_ok || email.parse::<lettre::Address>().is_err() {
        return Err("That is not an email address.");
    }
    Ok(email)
}

/// How the SMTP connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// `smtp://`: STARTTLS when the server offers it.
    Opportunistic,
    /// `smtp://…?tls=required`: STARTTLS or nothing is sent.
    Required,
    /// `smtps://`: TLS from the first byte.
    Wrapper,
}

/// A parsed `DASHBOARD_SMTP_URL`.
#[derive(Clone, Debug)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub credentials: Option<(String, SecretString)>,
}

impl SmtpSettings {
    /// `smtp://[user:pass@]host[:port][?tls=required]` (port 25 by default) or
    /// `smtps://[user:pass@]host[:port]` (port 465); user and password percent-encoded.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = url::Url::parse(raw).map_err(|e| format!("not a URL ({e})"))?;
        let (tls, default_port) = match url.scheme() {
            "smtp" => (TlsMode::Opportunistic, 25),
            "smtps" => (TlsMode::Wrapper, 465),
            other => return Err(format!("scheme `{other}` is not smtp or smtps")),
        };
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err("it has no host".into()),
        };
        if !matches!(url.path(), "" | "/") {
            return Err("it has a path; write smtp://[user:pass@]host:port".into());
        }
        let mut tls = tls;
        for (key, value) in url.query_pairs() {
            match (key.as_ref(), value.as_ref(), tls) {
                ("tls", "required", TlsMode::Opportunistic | TlsMode::Required) => tls = TlsMode::Required,
                ("tls", "opportunistic", TlsMode::Opportunistic) => {}
                ("tls", other, _) => return Err(format!("tls=`{other}` is not `required` (smtp://) ")),
                (other, _, _) => return Err(format!("unknown parameter `{other}` (only tls=required)")),
            }
        }
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        let credentials = match (url.username(), url.password()) {
            ("", None) => None,
            (user, Some(pass)) => Some((decode(user), SecretString::from(decode(pass)))),
            (_, None) => return Err("a user needs a password (smtp://user:pass@host)".into()),
        };
        Ok(Self { host, port: url.port().unwrap_or(default_port), tls, credentials })
    }
}

/// A `DASHBOARD_MAIL_FROM`: an address, optionally with a display name (`Dashboard <dash@example.com>`).
pub fn parse_from(raw: &str) -> Result<lettre::message::Mailbox, String> {
    raw.parse::<lettre::message::Mailbox>().map_err(|e| format!("`{raw}` is not an address or `Name <address>` ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_and_lowercased() {
        assert_eq!(normalize_email(" Bob@Example.COM ").as_deref(), Ok("bob@example.com"));
        assert_eq!(normalize_email("a.b+tag@sub.example.org").as_deref(), Ok("a.b+tag@sub.example.org"));
        for bad in [
            "",
            "bob",
            "@example.com",
            "bob@",
            "bob@example",
            "bo b@example.com",
            "bob@exa mple.com",
            "bob@@example.com",
            ".bob@example.com",
            "bob..x@example.com",
            "bob@-x.com",
            "bob\n@example.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
        assert!(normalize_email(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn retries_start_within_ten_seconds_and_grow_to_a_day() {
        assert_eq!(retry_delay(1), Duration::from_secs(5));
        assert_eq!(retry_delay(2), Duration::from_secs(15));
        assert!(retry_delay(5) > retry_delay(4));
        assert_eq!(retry_delay(30), Duration::from_secs(24 * 3600));
        assert_eq!(retry_delay(i32::MAX), Duration::from_secs(24 * 3600));
    }

    #[test]
    fn smtp_urls_choose_tls_and_ports() {
        let s = SmtpSettings::parse("smtp://mail.example.com").unwrap();
        assert_eq!((s.host.as_str(), s.port, s.tls), ("mail.example.com", 25, TlsMode::Opportunistic));
        assert!(s.credentials.is_none());
        let s = SmtpSettings::parse("smtp://u%40x:p%3Ass@127.0.0.1:2525?tls=required").unwrap();
        assert_eq!((s.port, s.tls), (2525, TlsMode::Required));
        let (user, pass) = s.credentials.unwrap();
        assert_eq!((user.as_str(), pass.expose_secret()), ("u@x", "p:ss"));
        let s = SmtpSettings::parse("smtps://mail.example.com").unwrap();
        assert_eq!((s.port, s.tls), (465, TlsMode::Wrapper));
        for bad in [
            "http://x",
            "smtp://",
            "smtp://x?tls=maybe",
            "smtp://x?foo=1",
            "smtp://x/path",
            "smtps://x?tls=required",
            "smtp://user@x",
        ] {
            assert!(SmtpSettings::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn payloads_keep_their_kind() {
        let p = Payload::PasswordReset { username: "bob".into(), token: "sealed".into() };
        let back: Payload = serde_json::from_str(&p.to_json()).unwrap();
        assert_eq!((back.kind(), back), (Kind::PasswordReset, p));
    }
}
