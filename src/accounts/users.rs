//! Account operations on users: create, first-admin setup, role, disable/enable, passwords.

use diesel::prelude::*;

use super::{by, lock_active_admins, lock_user, lock_user_named, transaction, AccountError, Actor};
use crate::db::events::{self, NewEvent};
use crate::db::schema::users as users_table;
use crate::db::users::{self, Role, User};
use crate::db::{self, sessions, settings, DbConn};
use crate::util::count;

/// The `app_settings` name of the one-time setup token.
pub const SETUP_TOKEN: &str = "setup_token";

/// Creates a user with an already hashed password.
pub fn create_user(
    conn: &mut DbConn,
    username: &str,
    password_hash: &str,
    role: Role,
    actor: Actor<'_>,
) -> Result<User, AccountError> {
    transaction(conn, |conn| {
        let user = db::on_unique_violation(users::create(conn, username, password_hash, role), || {
            AccountError::NameTaken(username.to_owned())
        })?;
        events::record(conn, &by(NewEvent::new("user_created").user(username).detail(role.as_str()), actor))?;
        Ok(user)
    })
}

/// Creates the first admin with the one-time setup token, and signs them in (`session`), in one
/// transaction: spending the token is its first statement, so two setups cannot both create an
/// admin.
pub fn set_up_first_admin(
    conn: &mut DbConn,
    token: &str,
    admin_id: &str,
    username: &str,
    password_hash: &str,
    session: &super::NewSession,
) -> Result<User, AccountError> {
    transaction(conn, |conn| {
        if !settings::take(conn, SETUP_TOKEN, token)? || users::count(conn)? > 0 {
            return Err(AccountError::SetupClosed);
        }
        let admin = db::on_unique_violation(
            users::create_with_id(conn, admin_id, username, password_hash, Role::Admin),
            || AccountError::NameTaken(username.to_owned()),
        )?;
        events::record(conn, &NewEvent::new("first_admin_created").user(username).ip(&session.ip))?;
        super::sessions::insert_session(conn, &admin, session)?;
        Ok(admin)
    })
}

/// Changes a user's role (from their next request on). The last active admin cannot be demoted.
pub fn set_role(conn: &mut DbConn, username: &str, role: Role, actor: Actor<'_>) -> Result<(), AccountError> {
    transaction(conn, |conn| {
        let user = lock_for_admin_change(conn, username, role != Role::Admin)?;
        if role != Role::Admin && is_last_active_admin(conn, &user)? {
            return Err(AccountError::LastActiveAdmin(user.username, "demoted"));
        }
        diesel::update(users_table::table.find(&user.id)).set(users_table::role.eq(role.as_str())).execute(conn)?;
        events::record(conn, &by(NewEvent::new("role_changed").user(&user.username).detail(role.as_str()), actor))?;
        Ok(())
    })
}

/// Disables a user and ends all their sessions; returns how many were ended. The last active admin
/// cannot be disabled.
pub fn disable(conn: &mut DbConn, username: &str, actor: Actor<'_>) -> Result<usize, AccountError> {
    transaction(conn, |conn| {
        let user = lock_for_admin_change(conn, username, true)?;
        if is_last_active_admin(conn, &user)? {
            return Err(AccountError::LastActiveAdmin(user.username, "disabled"));
        }
        diesel::update(users_table::table.find(&user.id)).set(users_table::disabled.eq(1)).execute(conn)?;
        let ended = sessions::delete_for_user(conn, &user.id)?;
        crate::db::trusted::delete_for_user(conn, &user.id)?;
        let event =
            NewEvent::new("user_disabled").user(&user.username).detail(format!("ended {}", count(ended, "session")));
        events::record(conn, &by(event, actor))?;
        Ok(ended)
    })
}

/// Ends the lock on `username`'s failed sign-ins and forgets the failures and earlier locks behind
/// it, so the next lock is the shortest again (an administrator's help; the address's counters are
/// left as they are). Returns whether a lock was running.
pub fn unlock(conn: &mut DbConn, username: &str, actor: Actor<'_>, now: i64) -> Result<bool, AccountError> {
    transaction(conn, |conn| {
        let user = lock_user_named(conn, username)?.ok_or_else(|| AccountError::NoSuchUser(username.to_owned()))?;
        let was_locked = crate::db::throttle::unlock(conn, &crate::db::throttle::user_key(&user.username), now)?;
        let detail = if was_locked { "the lock ended" } else { "not locked; failures forgotten" };
        events::record(conn, &by(NewEvent::new("unlocked").user(&user.username).detail(detail), actor))?;
        Ok(was_locked)
    })
}

/// Enables a disabled user.
pub fn enable(conn: &mut DbConn, username: &str, actor: Actor<'_>) -> Result<(), AccountError> {
    transaction(conn, |conn| {
        let user = lock_user_named(conn, username)?.ok_or_else(|| AccountError::NoSuchUser(username.to_owned()))?;
        diesel::update(users_table::table.find(&user.id)).set(users_table::disabled.eq(0)).execute(conn)?;
        events::record(conn, &by(NewEvent::new("user_enabled").user(&user.username), actor))?;
        Ok(())
    })
}

/// Sets a user's password (an administrator's or the command line's reset) and ends all their
/// sessions; returns how many were ended.
pub fn set_password(
    conn: &mut DbConn,
    username: &str,
    password_hash: &str,
    actor: Actor<'_>,
) -> Result<usize, AccountError> {
    transaction(conn, |conn| {
        let user = lock_user_named(conn, username)?.ok_or_else(|| AccountError::NoSuchUser(username.to_owned()))?;
        users::set_password_hash(conn, &user.id, password_hash)?;
        let ended = sessions::delete_for_user(conn, &user.id)?;
        crate::db::trusted::delete_for_user(conn, &user.id)?;
        let event =
            NewEvent::new("password_changed").user(&user.username).detail(format!("ended {}", count(ended, "session")));
        events::record(conn, &by(event, actor))?;
        Ok(ended)
    })
}

/// A signed-in user's own password change, after the caller verified the current password against
/// `verified_hash`.
pub struct OwnPasswordChange {
    pub user_id: String,
    /// The session the change is made from: it stays, with a new token.
    pub session_id: String,
    /// The stored hash the current password was verified against.
    pub verified_hash: String,
    pub new_hash: String,
    /// The current session's new token (its hash replaces the old one in the same row).
    pub renewed_token_hash: String,
    pub ip: String,
    pub now: i64,
}

/// Changes the password **only if** the hash the current password was verified against is still
/// the stored one and the session the request runs in still exists (compare and swap), ends the
/// user's other sessions and gives the current one a new token; returns how many were ended. A
/// reset, a disable or the end of this session that came first makes it write nothing
/// ([`AccountError::Changed`] / [`AccountError::SessionEnded`]).
pub fn change_own_password(conn: &mut DbConn, change: &OwnPasswordChange) -> Result<usize, AccountError> {
    transaction(conn, |conn| {
        let user = lock_user(conn, &change.user_id)?.ok_or(AccountError::Changed)?;
        if user.is_disabled() || user.password_hash != change.verified_hash {
            return Err(AccountError::Changed);
        }
        let (id, user_id) = (&change.session_id, &change.user_id);
        if sessions::rotate_token(conn, id, user_id, &change.renewed_token_hash, change.now)? != 1 {
            return Err(AccountError::SessionEnded);
        }
        users::set_password_hash(conn, &user.id, &change.new_hash)?;
        let ended = sessions::delete_for_user_except(conn, &user.id, &change.session_id)?;
        crate::db::trusted::delete_for_user(conn, &user.id)?;
        let event = NewEvent::new("password_changed")
            .user(&user.username)
            .session(&change.session_id)
            .ip(&change.ip)
            .detail(format!("ended {}", count(ended, "other session")));
        events::record(conn, &event)?;
        Ok(ended)
    })
}

/// Locks what a change of `username` depends on and reads the user: when the change could take an
/// admin away (`removes_admin`), every active admin first, then the user.
fn lock_for_admin_change(conn: &mut DbConn, username: &str, removes_admin: bool) -> Result<User, AccountError> {
    if removes_admin {
        lock_active_admins(conn)?;
    }
    lock_user_named(conn, username)?.ok_or_else(|| AccountError::NoSuchUser(username.to_owned()))
}

/// True when `user` is an active admin and no other active admin exists (read under the locks of
/// [`lock_for_admin_change`]).
fn is_last_active_admin(conn: &mut DbConn, user: &User) -> QueryResult<bool> {
    if user.role() != Role::Admin || user.is_disabled() {
        return Ok(false);
    }
    let others: i64 = users_table::table
        .filter(users_table::role.eq("admin"))
        .filter(users_table::disabled.eq(0))
        .filter(users_table::id.ne(&user.id))
        .count()
        .get_result(conn)?;
    Ok(others == 0)
}
