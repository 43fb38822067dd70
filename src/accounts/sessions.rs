//! Account operations on sessions: sign-in (the only place a session row is created) and ending
//! sessions.

use diesel::prelude::*;

use super::{by, lock_user, lock_user_named, transaction, AccountError, Actor};
use crate::db::events::{self, NewEvent};
use crate::db::schema::sessions as sessions_table;
use crate::db::users::User;
use crate::db::{sessions, throttle, users, DbConn};
use crate::session::{Timeouts, TokenRow};
use crate::util::{count, truncate};

/// A gateway token obtained at sign-in, sealed for the row.
pub struct CloudGrant {
    pub sealed_token: String,
    pub role: String,
    pub expires_at: i64,
}

/// How a session signed in (the `sessions.auth_method` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    Password,
    /// The password and an authenticator-app code.
    Totp,
    /// The password and a recovery code.
    RecoveryCode,
    /// A passkey (alone, or after the password).
    Passkey,
    /// The password, on a browser the user trusts to skip the second factor (which it did not
    /// prove now: a sensitive action still asks for it).
    TrustedBrowser,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Totp => "totp",
            Self::RecoveryCode => "recovery_code",
            Self::Passkey => "passkey",
            Self::TrustedBrowser => "trusted_browser",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Password, Self::Totp, Self::RecoveryCode, Self::Passkey, Self::TrustedBrowser]
            .into_iter()
            .find(|m| m.as_str() == s)
    }

    /// Whether it proved a second factor (everything but the password alone, on a trusted browser
    /// or not).
    pub fn used_second_factor(self) -> bool {
        !matches!(self, Self::Password | Self::TrustedBrowser)
    }

    /// In words, for pages and the audit log.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Totp => "password and authenticator app",
            Self::RecoveryCode => "password and recovery code",
            Self::Passkey => "passkey",
            Self::TrustedBrowser => "password on a trusted browser",
        }
    }
}

/// The session a sign-in creates: what sign-in hands the store, as one typed value.
pub struct NewSession {
    /// The token's hash and public id, and actix-session's state (see [`crate::session::prepare`]).
    pub token: TokenRow,
    pub ip: String,
    pub user_agent: String,
    pub cloud: Option<CloudGrant>,
    pub timeouts: Timeouts,
    pub now: i64,
    /// How it signed in; `now` is its first authentication (the re-authentication window starts).
    pub auth_method: AuthMethod,
    /// The challenge offered to the browser to bind the session to a key of its own, if one is.
    pub dbsc_challenge: Option<String>,
}

/// A sign-in with a password that was verified against `verified_hash`.
pub struct PasswordSignIn {
    pub user_id: String,
    pub verified_hash: String,
    /// A stronger hash of the same password, when the stored one is weaker than today's parameters.
    pub rehash: Option<String>,
    /// The username's failed-sign-in counter, reset on success.
    pub throttle_key: String,
    /// The client address's counter, whose reserved attempt is given back on success.
    pub address_key: Option<String>,
    /// The hash of the cookie of the trusted browser that lets this user skip the second factor,
    /// when it does: it must still be trusted ([`AccountError::TrustGone`]).
    pub trusted_browser: Option<String>,
}

/// Signs a user in: creates the session row **only if** the account is still enabled and its
/// password hash is still the one the password was verified against (a reset or a disable that
/// came while the hash was being checked wins), deletes the user's expired sessions, records the
/// sign-in. [`AccountError::Changed`] means nothing was written.
pub fn sign_in(conn: &mut DbConn, sign_in: &PasswordSignIn, session: &NewSession) -> Result<User, AccountError> {
    transaction(conn, |conn| {
        let user = lock_user(conn, &sign_in.user_id)?.ok_or(AccountError::Changed)?;
        if user.is_disabled() || user.password_hash != sign_in.verified_hash {
            return Err(AccountError::Changed);
        }
        if let Some(token_hash) = &sign_in.trusted_browser {
            super::trusted::use_trust(conn, &user, token_hash, session)?;
        }
        throttle::succeeded(conn, &sign_in.throttle_key, sign_in.address_key.as_deref())?;
        if let Some(hash) = &sign_in.rehash {
            users::set_password_hash(conn, &user.id, hash)?;
        }
        insert_session(conn, &user, session)?;
        Ok(user)
    })
}

/// Inserts the session row for `user` and records the sign-in (inside the caller's transaction,
/// which holds the user's lock, so concurrent sign-ins of one user take turns here). Signing in is
/// when the user's expired sessions are cleared away, when their least recently used ones are ended
/// to keep within the cap (`Timeouts::max_per_user`), and when a new device is noticed (`user` as
/// read when it was locked, before this sign-in: `last_login_at` is set here, last).
pub(super) fn insert_session(conn: &mut DbConn, user: &User, s: &NewSession) -> Result<(), AccountError> {
    let mut others = sessions::live_of_user_clearing_expired(conn, &user.id, s.now)?;
    let over = (others.len() + 1).saturating_sub(s.timeouts.max_per_user.max(1));
    let why = format!("least recently used, over the limit of {} sessions per user", s.timeouts.max_per_user);
    for o in others.drain(..over) {
        sessions::delete_by_id(conn, &o.id)?;
        let event = NewEvent::new("session_ended").user(&user.username).session(&o.id).actor("system");
        events::record(conn, &event.detail(why.as_str()))?;
    }
    let (idle, absolute) = s.timeouts.expiries_from(s.now);
    sessions::insert(
        conn,
        &sessions::NewSession {
            id: &s.token.public_id,
            token_hash: &s.token.token_hash,
            user_id: &user.id,
            data: &s.token.data,
            created_at: s.now,
            last_seen_at: s.now,
            idle_expires_at: idle,
            absolute_expires_at: absolute,
            ip: &truncate(&s.ip, 64),
            user_agent: &truncate(&s.user_agent, 512),
            cloud_token: s.cloud.as_ref().map(|c| c.sealed_token.as_str()),
            cloud_role: s.cloud.as_ref().map(|c| c.role.as_str()),
            cloud_expires_at: s.cloud.as_ref().map(|c| c.expires_at),
            auth_method: s.auth_method.as_str(),
            authenticated_with: s.auth_method.as_str(),
            authenticated_at: s.now,
            csrf_token: &s.token.csrf_token,
            dbsc_challenge: s.dbsc_challenge.as_deref(),
        },
    )?;
    let event = NewEvent::new("sign_in").user(&user.username).ip(&s.ip).session(&s.token.public_id);
    let event = event.detail(format!("with {}", s.auth_method.describe()));
    events::record(conn, &event)?;
    super::devices::note_sign_in(conn, user, s, &others)?;
    users::touch_last_login(conn, &user.id, s.now)?;
    Ok(())
}

/// Whose session may be ended by whom.
#[derive(Clone, Copy, Debug)]
pub enum Ending<'a> {
    /// Any session (an administrator or the command line).
    Any(Actor<'a>),
    /// Only a session of this user, by that user (another user's id is "no such session").
    Own { user_id: &'a str },
}

/// Ends one session by its public id.
pub fn end_session(conn: &mut DbConn, id: &str, ending: Ending<'_>) -> Result<(), AccountError> {
    transaction(conn, |conn| {
        let query = diesel::delete(sessions_table::table.find(id));
        let owner: Option<String> = match ending {
            Ending::Any(_) => query.returning(sessions_table::user_id).get_result(conn).optional()?,
            Ending::Own { user_id } => query
                .filter(sessions_table::user_id.eq(user_id))
                .returning(sessions_table::user_id)
                .get_result(conn)
                .optional()?,
        };
        let owner = owner.ok_or_else(|| AccountError::NoSuchSession(id.to_owned()))?;
        let name = users::find_by_id(conn, &owner)?.map(|u| u.username).unwrap_or_default();
        let event = NewEvent::new("session_ended").user(name).session(id);
        let event = match ending {
            Ending::Any(actor) => by(event, actor),
            Ending::Own { .. } => event.detail("by the user"),
        };
        events::record(conn, &event)?;
        Ok(())
    })
}

/// Ends every session of a user; returns how many.
pub fn end_user_sessions(conn: &mut DbConn, username: &str, actor: Actor<'_>) -> Result<usize, AccountError> {
    transaction(conn, |conn| {
        let user = lock_user_named(conn, username)?.ok_or_else(|| AccountError::NoSuchUser(username.to_owned()))?;
        let ended = sessions::delete_for_user(conn, &user.id)?;
        let event = NewEvent::new("session_ended").user(&user.username).detail(match ended {
            1 => "their only session".to_owned(),
            n => format!("all {n} of their sessions"),
        });
        events::record(conn, &by(event, actor))?;
        Ok(ended)
    })
}

/// Ends every session of a user but `keep` (the one they are using); returns how many.
pub fn end_other_sessions(conn: &mut DbConn, user_id: &str, keep: &str) -> Result<usize, AccountError> {
    transaction(conn, |conn| {
        let user = lock_user(conn, user_id)?.ok_or(AccountError::Changed)?;
        end_others_locked(conn, &user.id, &user.username, keep)
    })
}

/// Ends all the user's sessions but `keep`, with the event, inside a transaction that holds the
/// user's lock; returns how many.
pub(super) fn end_others_locked(
    conn: &mut DbConn,
    user_id: &str,
    username: &str,
    keep: &str,
) -> Result<usize, AccountError> {
    let ended = sessions::delete_for_user_except(conn, user_id, keep)?;
    let event = NewEvent::new("session_ended")
        .user(username)
        .session(keep)
        .detail(format!("{}, by the user", count(ended, "other session")));
    events::record(conn, &event)?;
    Ok(ended)
}

/// Ends every session of every user; returns how many.
pub fn end_all_sessions(conn: &mut DbConn, actor: Actor<'_>) -> Result<usize, AccountError> {
    transaction(conn, |conn| {
        let ended = sessions::delete_all(conn)?;
        events::record(conn, &by(NewEvent::new("session_ended").detail(format!("every session ({ended})")), actor))?;
        Ok(ended)
    })
}
