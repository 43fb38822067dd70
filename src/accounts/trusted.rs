//! Trusted browsers: a browser a user chose to trust at the second step skips the second factor at
//! later sign-ins (the password is still asked), until its trust runs out or ends. Trust ends with
//! a password change or reset, an administrator's factor reset, a disable, or the user's *forget*.

use super::factors::Own;
use super::{lock_own, transaction, AccountError};
use crate::db::events::{self, NewEvent};
use crate::db::{trusted, DbConn};
use crate::util::count;

/// A browser to trust, made at the end of a second step: the hash of the random cookie it gets.
pub struct Trust {
    pub id: String,
    pub token_hash: String,
    pub expires_at: i64,
}

/// Records the trust of `user_id` in the browser `trust` (inside the second step's transaction).
pub(super) fn record_trust(
    conn: &mut DbConn,
    user: &crate::db::users::User,
    trust: &Trust,
    session: &super::NewSession,
) -> Result<(), AccountError> {
    trusted::insert(
        conn,
        &trusted::NewTrusted {
            id: &trust.id,
            user_id: &user.id,
            token_hash: &trust.token_hash,
            now: session.now,
            expires_at: trust.expires_at,
            user_agent: &crate::util::truncate(&session.user_agent, 512),
            ip: &crate::util::truncate(&session.ip, 64),
        },
    )?;
    let days = (trust.expires_at - session.now + 86_399_999) / 86_400_000;
    let event = NewEvent::new("browser_trusted")
        .user(&user.username)
        .ip(&session.ip)
        .session(&session.token.public_id)
        .detail(format!("for {}", count(days as usize, "day")));
    events::record(conn, &event)?;
    Ok(())
}

/// At a sign-in that skips the second factor: the browser whose cookie hashes to `token_hash` must
/// still be trusted by `user` (inside the sign-in's transaction, which holds the user's lock, so a
/// *forget*, a reset or a password change that came first wins: [`AccountError::TrustGone`]).
pub(super) fn use_trust(
    conn: &mut DbConn,
    user: &crate::db::users::User,
    token_hash: &str,
    session: &super::NewSession,
) -> Result<(), AccountError> {
    let id = trusted::find_live(conn, &user.id, token_hash, session.now)?.ok_or(AccountError::TrustGone)?;
    trusted::touch(conn, &id, session.now)?;
    let event = NewEvent::new("trusted_browser_used")
        .user(&user.username)
        .ip(&session.ip)
        .session(&session.token.public_id)
        .detail("the second factor was skipped");
    events::record(conn, &event)?;
    Ok(())
}

/// Forgets one of the user's own trusted browsers (another user's id, or one gone:
/// [`AccountError::NothingToRemove`]).
pub fn forget_trusted_browser(conn: &mut DbConn, own: &Own<'_>, id: &str) -> Result<(), AccountError> {
    transaction(conn, |conn| {
        let user = lock_own(conn, own.user_id, own.session_id, own.now)?;
        if trusted::delete_own(conn, &user.id, id)? == 0 {
            return Err(AccountError::NothingToRemove("That browser is not trusted (any more)."));
        }
        let event = NewEvent::new("trusted_browser_forgotten").user(&user.username).session(own.session_id).ip(own.ip);
        events::record(conn, &event.detail("one browser"))?;
        Ok(())
    })
}

/// Forgets every trusted browser of the user; returns how many.
pub fn forget_all_trusted_browsers(conn: &mut DbConn, own: &Own<'_>) -> Result<usize, AccountError> {
    transaction(conn, |conn| {
        let user = lock_own(conn, own.user_id, own.session_id, own.now)?;
        let n = trusted::delete_for_user(conn, &user.id)?;
        let event = NewEvent::new("trusted_browser_forgotten").user(&user.username).session(own.session_id).ip(own.ip);
        events::record(conn, &event.detail(format!("all: {}", count(n, "browser"))))?;
        Ok(n)
    })
}
