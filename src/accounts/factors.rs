//! Account operations on second factors: the authenticator app on and off, recovery codes, removing
//! a passkey, an administrator's reset. Each is one transaction with its audit event, its first
//! statement the user's row lock (see the module comment of [`crate::accounts`]).

use super::{by, lock_own, lock_user, lock_user_named, transaction, AccountError, Actor, AuthMethod};
use crate::db::events::{self, NewEvent};
use crate::db::factors::{self, Factors};
use crate::db::{passkeys, sessions, DbConn};
use crate::util::count;

/// Who is changing their own factors, from which session.
pub struct Own<'a> {
    pub user_id: &'a str,
    pub session_id: &'a str,
    pub ip: &'a str,
    pub now: i64,
}

/// Ends the user's other sessions when asked; records how many.
fn end_others(conn: &mut DbConn, own: &Own<'_>, username: &str, asked: bool) -> Result<usize, AccountError> {
    match asked {
        true => super::sessions::end_others_locked(conn, own.user_id, username, own.session_id),
        false => Ok(0),
    }
}

fn base_event(kind: &'static str, username: &str, own: &Own<'_>) -> NewEvent {
    NewEvent::new(kind).user(username).session(own.session_id).ip(own.ip)
}

/// Turns the authenticator app on (or replaces it) with `sealed`, the code of `step` having
/// confirmed it (that code is spent). When the user has no unused recovery codes, `new_codes`
/// (hashes) become theirs: returns whether they did, so the page shows them.
///
/// `epoch` is the user's factor epoch when the set-up form was made: after any change of the app
/// since, the form is void ([`AccountError::SetupStale`]), so a set-up seen once cannot be
/// replayed later. The right code proves the app, so the session's last authentication is now
/// the app's.
pub fn enable_totp(
    conn: &mut DbConn,
    own: &Own<'_>,
    epoch: i32,
    sealed: &str,
    step: i64,
    new_codes: &[String],
) -> Result<bool, AccountError> {
    transaction(conn, |conn| {
        let user = lock_own(conn, own.user_id, own.session_id, own.now)?;
        if user.factor_epoch != epoch {
            return Err(AccountError::SetupStale);
        }
        let replaced = user.totp_secret.is_some();
        factors::set_totp(conn, &user.id, Some(sealed), Some(step))?;
        crate::db::sessions::set_authenticated(conn, own.session_id, own.now, AuthMethod::Totp.as_str())?;
        let detail = if replaced { "authenticator app (replaced)" } else { "authenticator app" };
        events::record(conn, &base_event("second_factor_added", &user.username, own).detail(detail))?;
        let codes_made = factors::recovery_codes_left(conn, &user.id)? == 0;
        if codes_made {
            factors::replace_recovery_codes(conn, &user.id, new_codes, own.now)?;
            let event = base_event("recovery_codes_created", &user.username, own)
                .detail(format!("{} with the authenticator app", count(new_codes.len(), "code")));
            events::record(conn, &event)?;
        }
        Ok(codes_made)
    })
}

/// Turns the app off; ends the user's other sessions when asked. Returns how many were ended.
pub fn disable_totp(conn: &mut DbConn, own: &Own<'_>, end_other_sessions: bool) -> Result<usize, AccountError> {
    transaction(conn, |conn| {
        let user = lock_own(conn, own.user_id, own.session_id, own.now)?;
        if user.totp_secret.is_none() {
            return Err(AccountError::NothingToRemove("The authenticator app is already off."));
        }
        factors::set_totp(conn, &user.id, None, None)?;
        events::record(conn, &base_event("second_factor_removed", &user.username, own).detail("authenticator app"))?;
        end_others(conn, own, &user.username, end_other_sessions)
    })
}

/// Replaces the user's recovery codes with `hashes`; ends their other sessions when asked.
pub fn new_recovery_codes(
    conn: &mut DbConn,
    own: &Own<'_>,
    hashes: &[String],
    end_other_sessions: bool,
) -> Result<usize, AccountError> {
    transaction(conn, |conn| {
        let user = lock_own(conn, own.user_id, own.session_id, own.now)?;
        factors::replace_recovery_codes(conn, &user.id, hashes, own.now)?;
        let event = base_event("recovery_codes_created", &user.username, own)
            .detail(format!("{}, replacing the old ones", count(hashes.len(), "code")));
        events::record(conn, &event)?;
        end_others(conn, own, &user.username, end_other_sessions)
    })
}

/// Removes one of the user's own passkeys (another user's id: [`AccountError::NoSuchPasskey`]);
/// ends their other sessions when asked. Returns how many were ended.
pub fn delete_passkey(
    conn: &mut DbConn,
    own: &Own<'_>,
    passkey_id: &str,
    end_other_sessions: bool,
) -> Result<usize, AccountError> {
    transaction(conn, |conn| {
        let user = lock_own(conn, own.user_id, own.session_id, own.now)?;
        let name = passkeys::delete_own(conn, &user.id, passkey_id)?
            .ok_or_else(|| AccountError::NoSuchPasskey(passkey_id.to_owned()))?;
        let event = base_event("second_factor_removed", &user.username, own).detail(format!("passkey “{name}”"));
        events::record(conn, &event)?;
        end_others(conn, own, &user.username, end_other_sessions)
    })
}

/// What an administrator's reset removed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Reset {
    pub removed: Factors,
    pub recovery_codes: usize,
    pub sessions_ended: usize,
}

/// Removes every second factor of `username` (the app, recovery codes, passkeys) and ends all
/// their sessions: an administrator's (or the command line's) help for someone who lost theirs.
pub fn reset_second_factors(conn: &mut DbConn, username: &str, actor: Actor<'_>) -> Result<Reset, AccountError> {
    transaction(conn, |conn| {
        let user = lock_user_named(conn, username)?.ok_or_else(|| AccountError::NoSuchUser(username.to_owned()))?;
        let removed = factors::factors_of(conn, &user.id)?;
        factors::set_totp(conn, &user.id, None, None)?;
        let recovery_codes = factors::delete_recovery_codes(conn, &user.id)?;
        passkeys::delete_for_user(conn, &user.id)?;
        let sessions_ended = sessions::delete_for_user(conn, &user.id)?;
        crate::db::trusted::delete_for_user(conn, &user.id)?;
        let detail = format!(
            "removed {}; ended {}",
            match (removed.totp, removed.passkeys) {
                (false, 0) => "no second factor".to_owned(),
                (true, 0) => "the authenticator app".to_owned(),
                (false, n) => count(n as usize, "passkey"),
                (true, n) => format!("the authenticator app and {}", count(n as usize, "passkey")),
            },
            count(sessions_ended, "session")
        );
        events::record(conn, &by(NewEvent::new("second_factors_reset").user(&user.username).detail(detail), actor))?;
        Ok(Reset { removed, recovery_codes, sessions_ended })
    })
}

/// The first step of a two-step sign-in: the password of `user_id` was verified against
/// `verified_hash`.
pub struct PendingStart<'a> {
    pub user_id: &'a str,
    pub verified_hash: &'a str,
    /// A stronger hash of the same password, when the stored one is weaker than today's.
    pub rehash: Option<&'a str>,
    pub id_hash: &'a str,
    /// The browser it belongs to (see [`crate::signin::pending`]).
    pub binding: &'a str,
    pub next: Option<&'a str>,
    pub now: i64,
    pub expires_at: i64,
}

/// Records a pending sign-in (no session yet) **only if** the account is still enabled with the
/// hash the password was verified against; the upgraded hash, if any, is stored by the same
/// transaction and is what the second step will compare.
pub fn begin_pending_sign_in(conn: &mut DbConn, p: &PendingStart<'_>) -> Result<(), AccountError> {
    transaction(conn, |conn| {
        let user = lock_user(conn, p.user_id)?.ok_or(AccountError::Changed)?;
        if user.is_disabled() || user.password_hash != p.verified_hash {
            return Err(AccountError::Changed);
        }
        let hash = match p.rehash {
            Some(stronger) => {
                crate::db::users::set_password_hash(conn, &user.id, stronger)?;
                stronger
            }
            None => p.verified_hash,
        };
        let row = crate::db::pending::NewPending {
            id_hash: p.id_hash,
            binding: p.binding,
            user_id: &user.id,
            password_hash: hash,
            next: p.next,
            now: p.now,
            expires_at: p.expires_at,
        };
        crate::db::pending::insert(conn, &row)?;
        Ok(())
    })
}

/// The second step of a sign-in.
pub struct SecondStep {
    pub pending_id_hash: String,
    pub user_id: String,
    pub verified_hash: String,
    /// The code to spend (an app or recovery code); `None` for a factor verified and recorded by
    /// the caller (a passkey).
    pub proof: Option<crate::auth::codes::CodeProof>,
    /// The username's failed-attempt counter, reset on success.
    pub throttle_key: String,
    /// The client address's counter, whose reserved attempt is given back on success.
    pub address_key: String,
    /// The browser to trust from now on, when the user asked.
    pub trust: Option<super::Trust>,
}

/// Finishes a two-step sign-in in one transaction: takes the pending sign-in (single use, live),
/// spends the code, creates the session. The account must still be enabled with the verified
/// password hash ([`AccountError::Changed`]); a code already spent (a replay, a parallel request)
/// is [`AccountError::CodeNotAccepted`] and then nothing was written, the pending sign-in included.
/// Returns the user and, after a recovery code, how many are left.
pub fn finish_sign_in(
    conn: &mut DbConn,
    s: &SecondStep,
    session: &super::NewSession,
) -> Result<(crate::db::users::User, Option<i64>), AccountError> {
    transaction(conn, |conn| {
        let user = lock_user(conn, &s.user_id)?.ok_or(AccountError::Changed)?;
        if user.is_disabled() || user.password_hash != s.verified_hash {
            return Err(AccountError::Changed);
        }
        let now = session.now;
        if !crate::db::pending::take(conn, &s.pending_id_hash, &user.id, now)? {
            return Err(AccountError::PendingGone);
        }
        let mut left = None;
        if let Some(proof) = &s.proof {
            let spent = crate::auth::codes::spend(conn, &user.id, proof, now)?.ok_or(AccountError::CodeNotAccepted)?;
            left = spent.recovery_codes_left;
        }
        crate::db::throttle::succeeded(conn, &s.throttle_key, Some(&s.address_key))?;
        super::sessions::insert_session(conn, &user, session)?;
        if let Some(trust) = &s.trust {
            super::trusted::record_trust(conn, &user, trust, session)?;
        }
        if let Some(left) = left {
            let event = NewEvent::new("recovery_code_used")
                .user(&user.username)
                .ip(&session.ip)
                .session(&session.token.public_id)
                .detail(crate::auth::codes::left_words(left));
            events::record(conn, &event)?;
        }
        Ok((user, left))
    })
}
