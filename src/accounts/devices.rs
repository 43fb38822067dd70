//! New-device sign-ins. A sign-in from a device (browser family and system, from the user agent)
//! and network (IPv4 /24, IPv6 /64) the user has not signed in from in [`KNOWN_FOR_MS`] records a
//! `new_device_sign_in` event and leaves a notice on each of the user's other live sessions, which
//! their next page shows until it is dismissed. The notices live on the session rows (JSON), so the
//! per-request session lookup reads them with the row: no query of its own on any request.

use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::{lock_user, transaction, AccountError, NewSession};
use crate::db::events::{self, NewEvent};
use crate::db::sessions::{self, OtherSession};
use crate::db::users::User;
use crate::db::{devices, DbConn};
use crate::user_agent::device_summary;

/// How long a device and network stay known after a sign-in from them: 90 days.
pub const KNOWN_FOR_MS: i64 = 90 * 24 * 3_600_000;
/// Notices one session keeps (the newest); older ones are dropped.
const MAX_NOTICES: usize = 5;

/// "A sign-in from this device, at this address, at this time", as a session's notice shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewDeviceNotice {
    /// The public id of the session that signed in (the notice's "end that session" button).
    pub session: String,
    pub device: String,
    pub ip: String,
    pub at: i64,
}

impl NewDeviceNotice {
    /// When, as pages show times.
    pub fn when(&self) -> String {
        crate::util::format_ms(self.at)
    }

    /// Where its "end that session" button posts (built here: every page's layout shows notices, and
    /// the `url_part` filter is not in scope of every page's template).
    pub fn end_action(&self) -> String {
        crate::urls::path(&["account", "sessions", &self.session, "revoke"])
    }
}

/// A session's stored notices; nothing for `None` (the common case costs no parsing) or for a value
/// that does not parse (a notice is not worth failing a page for).
pub fn parse_notices(stored: Option<&str>) -> Vec<NewDeviceNotice> {
    stored.and_then(|json| serde_json::from_str(json).ok()).unwrap_or_default()
}

/// The network an address belongs to, as devices are told apart: `203.0.113.0/24`, `2001:db8::/64`
/// (an IPv4-mapped IPv6 address counts as IPv4). Anything that is not an address stays as it is.
pub fn network_of(ip: &str) -> String {
    use std::net::IpAddr;
    match ip.parse::<IpAddr>().map(|ip| ip.to_canonical()) {
        Ok(IpAddr::V4(v4)) => ipnet::Ipv4Net::new(v4, 24).map(|n| n.trunc().to_string()),
        Ok(IpAddr::V6(v6)) => ipnet::Ipv6Net::new(v6, 64).map(|n| n.trunc().to_string()),
        Err(_) => return ip.to_owned(),
    }
    .unwrap_or_else(|_| ip.to_owned())
}

fn encode(notices: &[NewDeviceNotice]) -> QueryResult<Option<String>> {
    if notices.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(notices).map(Some).map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))
}

/// For the sign-in's transaction (which holds the user's lock), after the session `s` was inserted:
/// is its device and network new for the user? If so, records the event and gives each of `others`
/// (the user's other live sessions) a notice. `user` is the row as it was before this sign-in: a
/// user who never signed in before has nothing to compare with, so their first sign-in is not new.
/// A device and network one of the live sessions uses is known, whatever the table says.
pub(super) fn note_sign_in(conn: &mut DbConn, user: &User, s: &NewSession, others: &[OtherSession]) -> QueryResult<()> {
    let (device, network) = (device_summary(&s.user_agent), network_of(&s.ip));
    let known = user.last_login_at.is_none()
        || others.iter().any(|o| device_summary(&o.user_agent) == device && network_of(&o.ip) == network)
        || devices::last_seen(conn, &user.id, &device, &network)?.is_some_and(|t| t > s.now - KNOWN_FOR_MS);
    devices::remember(conn, &user.id, &device, &network, s.now)?;
    if known {
        return Ok(());
    }
    let event = NewEvent::new("new_device_sign_in")
        .user(&user.username)
        .ip(&s.ip)
        .session(&s.token.public_id)
        .detail(format!("{device} from {network}"));
    events::record(conn, &event)?;
    // The user is also told by mail, when they have an address: by the same transaction, so the mail
    // goes exactly when the sign-in happened.
    if let Some(email) = &user.email {
        let payload = crate::mail::Payload::NewDevice {
            username: user.username.clone(),
            device: device.clone(),
            ip: s.ip.clone(),
            at: s.now,
        };
        let kind = crate::mail::Kind::NewDevice;
        let mail = crate::db::outbox::NewMail {
            id: &crate::mail::new_id(),
            kind: kind.as_str(),
            user_id: Some(&user.id),
            recipient: email,
            payload: &payload.to_json(),
            now: s.now,
            expires_at: s.now + crate::util::duration_ms(kind.lifetime()),
        };
        crate::db::outbox::insert(conn, &mail)?;
    }
    let notice = NewDeviceNotice { session: s.token.public_id.clone(), device, ip: s.ip.clone(), at: s.now };
    for other in others {
        let mut notices = parse_notices(other.new_device_notices.as_deref());
        notices.push(notice.clone());
        let oldest_kept = notices.len().saturating_sub(MAX_NOTICES);
        sessions::set_notices(conn, &other.id, encode(&notices[oldest_kept..])?.as_deref())?;
    }
    Ok(())
}

/// Which of a session's notices to dismiss.
#[derive(Clone, Copy, Debug)]
pub enum Dismiss<'a> {
    /// Those of sign-ins up to this time: the ones the page showed (a notice that arrived after the
    /// page was drawn stays).
    UpTo(i64),
    /// The one about this session (ended from the notice).
    About(&'a str),
}

/// Dismisses notices of `session_id`, a session of `user_id`; returns how many.
pub fn dismiss_notices(
    conn: &mut DbConn,
    user_id: &str,
    session_id: &str,
    which: Dismiss<'_>,
) -> Result<usize, AccountError> {
    transaction(conn, |conn| {
        // The user's lock: a sign-in adding a notice to this row waits, or has finished.
        lock_user(conn, user_id)?.ok_or(AccountError::Changed)?;
        let stored = sessions::notices(conn, session_id)?.ok_or(AccountError::SessionEnded)?;
        let mut notices = parse_notices(stored.as_deref());
        let before = notices.len();
        notices.retain(|n| match which {
            Dismiss::UpTo(at) => n.at > at,
            Dismiss::About(id) => n.session != id,
        });
        if notices.len() != before {
            sessions::set_notices(conn, session_id, encode(&notices)?.as_deref())?;
        }
        Ok(before - notices.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_a_slash_24_or_a_slash_64() {
        assert_eq!(network_of("203.0.113.7"), "203.0.113.0/24");
        assert_eq!(network_of("::ffff:203.0.113.7"), "203.0.113.0/24");
        assert_eq!(network_of("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(network_of(""), "");
        assert_eq!(network_of("unknown"), "unknown");
    }

    #[test]
    fn notices_survive_their_column_and_garbage_is_no_notice() {
        let n =
            NewDeviceNotice { session: "s1".into(), device: "Firefox on Linux".into(), ip: "10.0.0.1".into(), at: 5 };
        let stored = encode(std::slice::from_ref(&n)).unwrap();
        assert_eq!(parse_notices(stored.as_deref()), vec![n]);
        assert_eq!(encode(&[]).unwrap(), None);
        assert!(parse_notices(None).is_empty());
        assert!(parse_notices(Some("{not json")).is_empty());
    }
}
