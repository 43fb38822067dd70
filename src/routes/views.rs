//! What pages show of sessions: a readable device summary and formatted times.

use crate::db::sessions::SessionRow;
use crate::user_agent::device_summary;
use crate::util::format_ms;

/// A session as a table row shows it. Only the public id; never the token or its hash.
pub struct SessionView {
    pub id: String,
    pub username: String,
    pub device: String,
    pub user_agent: String,
    pub ip: String,
    pub created: String,
    pub last_seen: String,
    pub expires: String,
    pub current: bool,
    /// How it signed in: in words, and as stored (`password`, `totp`, `recovery_code`, `passkey`).
    pub method: &'static str,
    pub method_code: &'static str,
    /// "role:admin until 18:02 UTC" when the session holds a live gateway token.
    pub cloud: Option<String>,
    /// Bound to a key of its browser (a device-bound session).
    pub bound: bool,
}

impl SessionView {
    pub fn new(row: &SessionRow, username: &str, current_id: &str, now: i64) -> Self {
        let method =
            crate::accounts::AuthMethod::parse(&row.auth_method).unwrap_or(crate::accounts::AuthMethod::Password);
        SessionView {
            id: row.id.clone(),
            username: username.to_owned(),
            device: device_summary(&row.user_agent),
            user_agent: row.user_agent.clone(),
            ip: row.ip.clone(),
            created: format_ms(row.created_at),
            last_seen: format_ms(row.last_seen_at),
            expires: format_ms(row.idle_expires_at),
            current: row.id == current_id,
            method: method.describe(),
            method_code: method.as_str(),
            cloud: match (&row.cloud_role, row.cloud_expires_at) {
                (Some(role), Some(until)) if until > now => Some(format!("role:{role} until {}", format_ms(until))),
                _ => None,
            },
            bound: row.dbsc_key.is_some(),
        }
    }
}
