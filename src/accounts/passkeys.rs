//! Account operations on passkeys: adding one, and signing in with one alone. (Removing one is done
//! with the other second factors, from the security page.)

use super::{lock_own, lock_user, transaction, AccountError, NewSession};
use crate::db::events::{self, NewEvent};
use crate::db::passkeys::{self, PasskeyRow};
use crate::db::users::User;
use crate::db::{self, throttle, DbConn};

/// A passkey to add to the user of the session it is added from.
pub struct NewPasskey {
    pub user_id: String,
    /// The session the request runs in: the passkey is added only while it exists.
    pub session_id: String,
    pub name: String,
    /// base64url of the credential id.
    pub credential_id: String,
    /// The credential (public key, counter), as JSON.
    pub credential: String,
    pub ip: String,
    pub now: i64,
}

/// Adds a passkey, **only if** the account is still enabled and the session the request runs in
/// still exists (a logout, a revocation or a disable that came during the ceremony wins), with its
/// audit event; returns its public id. A name the user already gave another passkey is refused.
pub fn add_passkey(conn: &mut DbConn, p: &NewPasskey) -> Result<String, AccountError> {
    transaction(conn, |conn| {
        let user = lock_own(conn, &p.user_id, &p.session_id, p.now)?;
        if passkeys::name_taken(conn, &user.id, &p.name)? {
            return Err(AccountError::PasskeyNameTaken(p.name.clone()));
        }
        let row = PasskeyRow {
            id: crate::util::random_b64(12),
            user_id: user.id.clone(),
            credential_id: p.credential_id.clone(),
            name: p.name.clone(),
            credential: p.credential.clone(),
            created_at: p.now,
            last_used_at: None,
        };
        db::on_unique_violation(passkeys::insert(conn, &row), || AccountError::PasskeyKnown)?;
        // The new passkey was just used (with user verification): it is the session's last
        // authentication now.
        crate::db::sessions::set_authenticated(conn, &p.session_id, p.now, super::AuthMethod::Passkey.as_str())?;
        let event = NewEvent::new("second_factor_added")
            .user(&user.username)
            .session(&p.session_id)
            .ip(&p.ip)
            .detail(format!("passkey “{}”", p.name));
        events::record(conn, &event)?;
        Ok(row.id)
    })
}

/// A sign-in with a passkey alone, whose signature was verified against `verified_credential`.
pub struct PasskeySignIn {
    pub user_id: String,
    pub passkey_id: String,
    /// The stored credential the signature was checked against.
    pub verified_credential: String,
    /// The same credential with the new signature counter.
    pub updated_credential: String,
    /// The username's failed-sign-in counter, reset on success.
    pub throttle_key: String,
    /// The client address's counter, whose reserved attempt is given back on success.
    pub address_key: String,
}

/// Signs a user in with a passkey: creates the session row **only if** the account is still enabled
/// and the passkey is still theirs and unchanged since it was checked (deleted, or used by a parallel
/// request, meanwhile: [`AccountError::Changed`], nothing written); records the use (counter, last
/// used) and the sign-in, in one transaction.
pub fn sign_in_with_passkey(conn: &mut DbConn, s: &PasskeySignIn, session: &NewSession) -> Result<User, AccountError> {
    transaction(conn, |conn| {
        let user = lock_user(conn, &s.user_id)?.ok_or(AccountError::Changed)?;
        if user.is_disabled() {
            return Err(AccountError::Changed);
        }
        let now = session.now;
        let used =
            passkeys::record_use(conn, &s.passkey_id, &user.id, &s.verified_credential, &s.updated_credential, now)?;
        if used != 1 {
            return Err(AccountError::Changed);
        }
        throttle::succeeded(conn, &s.throttle_key, Some(&s.address_key))?;
        super::sessions::insert_session(conn, &user, session)?;
        Ok(user)
    })
}
