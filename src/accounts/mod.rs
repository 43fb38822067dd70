//! The accounts service: every change to an account or its sessions, for the command line and the
//! HTTP handlers alike. Neither touches the tables for these operations itself.
//!
//! Each operation is **one transaction that includes its audit event**, and refuses with a typed
//! [`AccountError`]. Hashing (slow) happens before, in the caller: the server on its hashing threads,
//! the command line in place; what is hashed comes here already checked by [`check_new_password`].
//!
//! Every transaction's first statement is a write that locks what the decision depends on (the
//! user's row; all active admins' rows when an admin could be lost): on PostgreSQL that is a row
//! lock, on SQLite the database's write lock, taken before anything is read, so a read-then-write
//! transaction can neither decide on a stale read nor fail to upgrade its lock. Operations on one
//! user are therefore linearizable: a password change or a sign-in whose hash was verified before a
//! reset, a disable or a logout finds the account changed (or its session gone) and writes nothing.

mod devices;
mod factors;
mod links;
mod passkeys;
mod sessions;
mod trusted;
mod users;

pub use devices::{dismiss_notices, network_of, parse_notices, Dismiss, NewDeviceNotice, KNOWN_FOR_MS};
pub use factors::*;
pub use links::*;
pub use passkeys::*;
pub use sessions::*;
pub use trusted::{forget_all_trusted_browsers, forget_trusted_browser, Trust};
pub use users::*;

use diesel::prelude::*;

use crate::db::schema::users as users_table;
use crate::db::users::{normalize_username, User};
use crate::db::DbConn;

/// Why an account operation did not happen. Each is shown to the person who asked (page or
/// command line); `Database` is an internal error.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    InvalidName(&'static str),
    #[error("the username `{0}` is taken")]
    NameTaken(String),
    /// The password policy's reason, as shown to the person setting it.
    #[error("{0}")]
    Policy(String),
    #[error("the two passwords do not match")]
    Mismatch,
    #[error("the current password is not right")]
    WrongCurrentPassword,
    #[error("no user named `{0}`")]
    NoSuchUser(String),
    #[error("no session with id `{0}`")]
    NoSuchSession(String),
    #[error("`{0}` is the last active admin and cannot be {1}")]
    LastActiveAdmin(String, &'static str),
    /// The account changed after its password was checked (a reset, a disable): nothing was written.
    #[error("the account changed meanwhile")]
    Changed,
    /// The session the request runs in was ended meanwhile: nothing was written.
    #[error("the session has ended")]
    SessionEnded,
    #[error("no passkey with id `{0}`")]
    NoSuchPasskey(String),
    /// What was to be removed is not there (shown as it is).
    #[error("{0}")]
    NothingToRemove(&'static str),
    /// The pending sign-in was used already, or expired.
    #[error("the sign-in has expired")]
    PendingGone,
    /// The second-factor code was spent already (or the app changed): nothing was written.
    #[error("the code is not right")]
    CodeNotAccepted,
    #[error("setup is no longer open")]
    SetupClosed,
    /// The app's set-up form was made before the app last changed (turned on, off or reset).
    #[error("that set-up is no longer valid")]
    SetupStale,
    #[error("you already have a passkey named “{0}”")]
    PasskeyNameTaken(String),
    #[error("this passkey is already registered")]
    PasskeyKnown,
    /// The address as typed is not one (the reason, as shown).
    #[error("{0}")]
    InvalidEmail(&'static str),
    /// The browser's trust ended (forgotten, a password change, a reset) while it was signing in.
    #[error("this browser is no longer trusted")]
    TrustGone,
    #[error("the address `{0}` belongs to another user")]
    EmailTaken(String),
    /// An invitation or reset link that was used, has expired, or never existed.
    #[error("this link has been used, has expired or is not valid")]
    LinkGone,
    /// `dashboard user invite` for an account that has signed in already.
    #[error("`{0}` has signed in already; set a password with `dashboard user passwd`")]
    AlreadyActive(String),
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

impl From<AccountError> for crate::error::AppError {
    /// For refusals a handler does not turn into a page of its own.
    fn from(e: AccountError) -> Self {
        use crate::error::AppError;
        match e {
            AccountError::NoSuchUser(_)
            | AccountError::NoSuchSession(_)
            | AccountError::NoSuchPasskey(_)
            | AccountError::SetupClosed => AppError::NotFound,
            AccountError::Changed | AccountError::SessionEnded | AccountError::PendingGone => AppError::Unauthenticated,
            AccountError::Database(e) => AppError::Internal(e.into()),
            AccountError::NothingToRemove(why) => AppError::BadRequest(why.to_owned()),
            other => AppError::BadRequest(capitalized(&other.to_string())),
        }
    }
}

/// Who asked for a change, as the audit log names them.
#[derive(Clone, Copy, Debug)]
pub enum Actor<'a> {
    /// The command line.
    Cli,
    /// An administrator, by name.
    Admin(&'a str),
    /// The user themselves (no separate actor in the log).
    Owner,
}

impl Actor<'_> {
    fn name(&self) -> Option<&str> {
        match self {
            Actor::Cli => Some("cli"),
            Actor::Admin(name) => Some(name),
            Actor::Owner => None,
        }
    }
}

/// `event` with its actor, when there is one.
fn by(event: crate::db::events::NewEvent, actor: Actor<'_>) -> crate::db::events::NewEvent {
    match actor.name() {
        Some(name) => event.actor(name),
        None => event,
    }
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
        None => String::new(),
    }
}

/// A username as submitted, checked and normalized (lowercase).
pub fn valid_username(raw: &str) -> Result<String, AccountError> {
    normalize_username(raw).map_err(AccountError::InvalidName)
}

/// A new password against the policy (NIST SP 800-63B rules) and, when the form had one, its
/// confirmation. Called before hashing, so a refused password costs no hash.
pub fn check_new_password(
    password: &str,
    confirm: Option<&str>,
    username: &str,
    min_length: usize,
) -> Result<(), AccountError> {
    crate::auth::password::check_policy(password, username, min_length).map_err(AccountError::Policy)?;
    match confirm {
        Some(confirm) if confirm != password => Err(AccountError::Mismatch),
        _ => Ok(()),
    }
}

/// Runs `f` as one transaction. Its first statement must be a write (see the module comment).
fn transaction<T>(
    conn: &mut DbConn,
    f: impl FnOnce(&mut DbConn) -> Result<T, AccountError>,
) -> Result<T, AccountError> {
    conn.transaction(f)
}

/// Locks one user's row and reads it (one statement, see [`crate::db::users::lock`]); `None` when
/// there is no such user.
fn lock_user(conn: &mut DbConn, user_id: &str) -> QueryResult<Option<User>> {
    crate::db::users::lock(conn, user_id)
}

/// [`lock_user`] for a change a user makes to their own account from `session_id`: the session must
/// still be live and theirs, so a request still in flight after a logout, a revocation or an admin's
/// disable or reset writes nothing ([`AccountError::SessionEnded`]).
fn lock_own(conn: &mut DbConn, user_id: &str, session_id: &str, now: i64) -> Result<User, AccountError> {
    let user = lock_user(conn, user_id)?.ok_or(AccountError::Changed)?;
    if user.is_disabled() {
        return Err(AccountError::Changed);
    }
    if crate::db::sessions::find_live(conn, session_id, now)?.is_none_or(|s| s.user_id != user.id) {
        return Err(AccountError::SessionEnded);
    }
    Ok(user)
}

/// [`lock_user`] by name.
fn lock_user_named(conn: &mut DbConn, username: &str) -> QueryResult<Option<User>> {
    diesel::update(users_table::table.filter(users_table::username.eq(username)))
        .set(users_table::disabled.eq(users_table::disabled))
        .execute(conn)?;
    crate::db::users::find_by_username(conn, username)
}

/// Locks every active admin's row, before a change that could leave none: two such changes take
/// turns, and the second sees the first's result.
fn lock_active_admins(conn: &mut DbConn) -> QueryResult<usize> {
    diesel::update(users_table::table.filter(users_table::role.eq("admin")).filter(users_table::disabled.eq(0)))
        .set(users_table::role.eq(users_table::role))
        .execute(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_as_sentences_on_pages() {
        let e: crate::error::AppError = AccountError::Mismatch.into();
        assert_eq!(e.to_string(), "bad request: The two passwords do not match.");
    }
}
