//! Email addresses, invitations and password resets: the account changes that mail carries. Each is
//! one transaction; the mail it causes is an outbox row written by the same transaction, so a mail is
//! sent exactly when its change happened (see [`crate::mail`]).

use diesel::prelude::*;

use super::{by, lock_user, lock_user_named, transaction, AccountError, Actor, NewSession};
use crate::db::events::{self, NewEvent};
use crate::db::schema::users as users_table;
use crate::db::tokens::{self, Purpose};
use crate::db::users::{self, Role, User};
use crate::db::{self, outbox, pending, sessions, throttle, DbConn};
use crate::mail::{Kind, Payload, RESETS_PER_HOUR};
use crate::util::{count, duration_ms};

/// An address as typed, checked and normalized; `None` for an empty field.
pub fn valid_email(raw: &str) -> Result<Option<String>, AccountError> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    crate::mail::normalize_email(raw).map(Some).map_err(AccountError::InvalidEmail)
}

/// Sets `email` on a user inside the caller's transaction; another user's address is refused.
fn put_email(conn: &mut DbConn, user_id: &str, email: Option<&str>) -> Result<(), AccountError> {
    db::on_unique_violation(users::set_email(conn, user_id, email), || {
        AccountError::EmailTaken(email.unwrap_or_default().to_owned())
    })?;
    Ok(())
}

/// Creates a user with an already hashed password and, when given, an address.
pub fn create_user_with_email(
    conn: &mut DbConn,
    username: &str,
    password_hash: &str,
    role: Role,
    email: Option<&str>,
    actor: Actor<'_>,
) -> Result<User, AccountError> {
    transaction(conn, |conn| {
        let mut user = db::on_unique_violation(users::create(conn, username, password_hash, role), || {
            AccountError::NameTaken(username.to_owned())
        })?;
        put_email(conn, &user.id, email)?;
        user.email = email.map(str::to_owned);
        events::record(conn, &by(NewEvent::new("user_created").user(username).detail(role.as_str()), actor))?;
        Ok(user)
    })
}

/// Sets or (with `None`) removes a user's address.
pub fn set_email(conn: &mut DbConn, username: &str, email: Option<&str>, actor: Actor<'_>) -> Result<(), AccountError> {
    transaction(conn, |conn| {
        let user = lock_user_named(conn, username)?.ok_or_else(|| AccountError::NoSuchUser(username.to_owned()))?;
        put_email(conn, &user.id, email)?;
        let detail = if email.is_some() { "set" } else { "removed" };
        events::record(conn, &by(NewEvent::new("email_changed").user(&user.username).detail(detail), actor))?;
        Ok(())
    })
}

/// A new link to store: the hash of its token and, when it goes by mail, the outbox row (its id and
/// the token sealed for it; see [`crate::mail::Mail::new_link`]).
pub struct NewLink {
    pub token_hash: String,
    pub mail: Option<(String, String)>,
    pub now: i64,
}

impl NewLink {
    /// The link of `link`, mailed or not.
    pub fn of(link: &crate::mail::Link, mailed: bool, now: i64) -> Self {
        let mail = mailed.then(|| (link.mail_id.clone(), link.sealed_token.clone()));
        Self { token_hash: link.token_hash.clone(), mail, now }
    }
}

/// Stores the link's token for `user` and, when it is mailed, its outbox row (to the user's address).
fn store_link(
    conn: &mut DbConn,
    user: &User,
    purpose: Purpose,
    kind: Kind,
    link: &NewLink,
) -> Result<(), AccountError> {
    let expires_at = link.now + duration_ms(kind.lifetime());
    tokens::insert(conn, &link.token_hash, purpose, &user.id, link.now, expires_at)?;
    if let (Some((mail_id, sealed)), Some(email)) = (&link.mail, &user.email) {
        let payload = match purpose {
            Purpose::Invitation => Payload::Invitation { username: user.username.clone(), token: sealed.clone() },
            Purpose::PasswordReset => Payload::PasswordReset { username: user.username.clone(), token: sealed.clone() },
        };
        outbox::insert(
            conn,
            &outbox::NewMail {
                id: mail_id,
                kind: kind.as_str(),
                user_id: Some(&user.id),
                recipient: email,
                payload: &payload.to_json(),
                now: link.now,
                expires_at,
            },
        )?;
    }
    Ok(())
}

/// An account to create without a password, with an invitation.
pub struct NewInvitation<'a> {
    pub username: &'a str,
    pub role: Role,
    pub email: Option<&'a str>,
    /// A hash of a random password nobody knows: the account cannot be signed in to until the
    /// invitation sets one, and a sign-in attempt costs the same as for any account.
    pub unusable_hash: &'a str,
    pub link: NewLink,
}

/// Creates the account and its invitation (mailed when `link.mail` is set: the account needs an
/// address then) in one transaction.
pub fn invite_new_user(
    conn: &mut DbConn,
    invitation: &NewInvitation<'_>,
    actor: Actor<'_>,
) -> Result<User, AccountError> {
    let i = invitation;
    transaction(conn, |conn| {
        let mut user = db::on_unique_violation(users::create(conn, i.username, i.unusable_hash, i.role), || {
            AccountError::NameTaken(i.username.to_owned())
        })?;
        put_email(conn, &user.id, i.email)?;
        user.email = i.email.map(str::to_owned);
        events::record(conn, &by(NewEvent::new("user_created").user(i.username).detail(i.role.as_str()), actor))?;
        store_link(conn, &user, Purpose::Invitation, Kind::Invitation, &i.link)?;
        let how = if i.link.mail.is_some() { "by mail" } else { "as a printed link" };
        events::record(conn, &by(NewEvent::new("invitation_sent").user(i.username).detail(how), actor))?;
        Ok(user)
    })
}

/// A new invitation for an account that has never signed in (an earlier link lost or expired); the
/// earlier links stop working.
pub fn reissue_invitation(
    conn: &mut DbConn,
    username: &str,
    link: &NewLink,
    actor: Actor<'_>,
) -> Result<User, AccountError> {
    transaction(conn, |conn| {
        let user = lock_user_named(conn, username)?.ok_or_else(|| AccountError::NoSuchUser(username.to_owned()))?;
        if user.last_login_at.is_some() {
            return Err(AccountError::AlreadyActive(user.username));
        }
        tokens::delete_for_user(conn, &user.id, Purpose::Invitation)?;
        store_link(conn, &user, Purpose::Invitation, Kind::Invitation, link)?;
        let how = if link.mail.is_some() { "again, by mail" } else { "again, as a printed link" };
        events::record(conn, &by(NewEvent::new("invitation_sent").user(&user.username).detail(how), actor))?;
        Ok(user)
    })
}

/// Whose password a reset request names: a username or an address.
pub enum ResetLookup {
    Username(String),
    Email(String),
    /// Neither (nothing is looked up).
    Nothing,
}

impl ResetLookup {
    /// What was typed in the form's one field.
    pub fn of(typed: &str) -> Self {
        if typed.contains('@') {
            return crate::mail::normalize_email(typed).map_or(Self::Nothing, Self::Email);
        }
        users::normalize_username(typed).map_or(Self::Nothing, Self::Username)
    }
}

/// What a reset request did (for the log; the person who asked is told the same either way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetRequested {
    Mailed,
    NoSuchAccount,
    /// Disabled, or without an address.
    NotMailable,
    /// Already [`RESETS_PER_HOUR`] reset mails in the last hour.
    Limited,
}

impl ResetRequested {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Mailed => "mail sent",
            Self::NoSuchAccount => "no such account",
            Self::NotMailable => "no mail: disabled or without an address",
            Self::Limited => "no mail: three in the last hour already",
        }
    }
}

/// A reset request: when `lookup` names an enabled account with an address that has had fewer than
/// [`RESETS_PER_HOUR`] reset mails in the last hour, stores the link and its mail, in one
/// transaction that holds the user's lock (so parallel requests count each other's mails).
/// The request is recorded (`typed`, what was typed, names an unknown account in the log), and the
/// attempt reserved on the client address's counter stays counted like a failed sign-in (`address`;
/// the outcome says whether this request locked the address).
pub fn request_password_reset(
    conn: &mut DbConn,
    lookup: &ResetLookup,
    typed: &str,
    link: &NewLink,
    address: &AddressAttempt,
) -> Result<(ResetRequested, bool), AccountError> {
    let outcome = request_reset_mail(conn, lookup, typed, link, &address.ip)?;
    let lock = throttle::fail(conn, &address.key, link.now, address.window_ms, address.limit, false)?;
    let locked = lock.is_some();
    if let Some(lock) = lock {
        let detail = crate::auth::attempts::lock_detail("client address", lock.length);
        events::record(conn, &NewEvent::new("locked_out").ip(&address.ip).detail(detail))?;
    }
    Ok((outcome, locked))
}

/// The client address's attempt counter a request counts on.
pub struct AddressAttempt {
    pub ip: String,
    pub key: String,
    pub limit: i64,
    pub window_ms: i64,
}

fn request_reset_mail(
    conn: &mut DbConn,
    lookup: &ResetLookup,
    typed: &str,
    link: &NewLink,
    ip: &str,
) -> Result<ResetRequested, AccountError> {
    transaction(conn, |conn| {
        let user = match lookup {
            ResetLookup::Username(name) => lock_user_named(conn, name)?,
            ResetLookup::Email(email) => lock_user_by_email(conn, email)?,
            ResetLookup::Nothing => None,
        };
        let Some(user) = user else {
            let outcome = ResetRequested::NoSuchAccount;
            let typed = crate::util::truncate(typed.trim(), 64);
            let event = NewEvent::new("password_reset_requested").user(typed).ip(ip).detail(outcome.describe());
            events::record(conn, &event)?;
            return Ok(outcome);
        };
        let outcome = if user.is_disabled() || user.email.is_none() {
            ResetRequested::NotMailable
        } else if outbox::count_recent(conn, &user.id, Kind::PasswordReset.as_str(), link.now - 3_600_000)?
            >= RESETS_PER_HOUR
        {
            ResetRequested::Limited
        } else {
            store_link(conn, &user, Purpose::PasswordReset, Kind::PasswordReset, link)?;
            ResetRequested::Mailed
        };
        let event = NewEvent::new("password_reset_requested").user(&user.username).ip(ip).detail(outcome.describe());
        events::record(conn, &event)?;
        Ok(outcome)
    })
}

/// [`lock_user`] by address.
fn lock_user_by_email(conn: &mut DbConn, email: &str) -> QueryResult<Option<User>> {
    diesel::update(users_table::table.filter(users_table::email.eq(email)))
        .set(users_table::disabled.eq(users_table::disabled))
        .execute(conn)?;
    users::find_by_email(conn, email)
}

/// The enabled user a live link of `purpose` belongs to (the form page; nothing is spent).
pub fn link_user(conn: &mut DbConn, token: &str, purpose: Purpose, now: i64) -> Result<User, AccountError> {
    let user_id = tokens::peek(conn, &tokens::hash(token), purpose, now)?.ok_or(AccountError::LinkGone)?;
    users::find_by_id(conn, &user_id)?.filter(|u| !u.is_disabled()).ok_or(AccountError::LinkGone)
}

/// A new password set through a link.
pub struct LinkPassword {
    pub token: String,
    /// The user the link was found for when the password was checked (see [`link_user`]).
    pub user_id: String,
    pub new_hash: String,
    pub ip: String,
    pub now: i64,
}

/// Spends the link (the user locked first, then the token taken: of two uses one wins) and sets the
/// password; the account must still be enabled.
fn spend_link(conn: &mut DbConn, p: &LinkPassword, purpose: Purpose) -> Result<User, AccountError> {
    let user = lock_user(conn, &p.user_id)?.ok_or(AccountError::LinkGone)?;
    let taken = tokens::take(conn, &tokens::hash(&p.token), purpose, p.now)?;
    if taken.as_deref() != Some(user.id.as_str()) || user.is_disabled() {
        return Err(AccountError::LinkGone);
    }
    users::set_password_hash(conn, &user.id, &p.new_hash)?;
    // The other links of this purpose die with the one used.
    tokens::delete_for_user(conn, &user.id, purpose)?;
    Ok(user)
}

/// Resets a password through a reset link: sets it, ends every session and pending sign-in of the
/// user, records it; second factors stay. Returns how many sessions were ended.
pub fn reset_password(conn: &mut DbConn, p: &LinkPassword) -> Result<usize, AccountError> {
    transaction(conn, |conn| {
        let user = spend_link(conn, p, Purpose::PasswordReset)?;
        let ended = sessions::delete_for_user(conn, &user.id)?;
        let pending = pending::delete_for_user(conn, &user.id)?;
        crate::db::trusted::delete_for_user(conn, &user.id)?;
        let detail =
            format!("by mail link; ended {} and {}", count(ended, "session"), count(pending, "pending sign-in"));
        events::record(conn, &NewEvent::new("password_reset").user(&user.username).ip(&p.ip).detail(detail))?;
        Ok(ended)
    })
}

/// Accepts an invitation: sets the first password and signs the user in (`session`), in one
/// transaction.
pub fn accept_invitation(conn: &mut DbConn, p: &LinkPassword, session: &NewSession) -> Result<User, AccountError> {
    transaction(conn, |conn| {
        let user = spend_link(conn, p, Purpose::Invitation)?;
        events::record(conn, &NewEvent::new("invitation_accepted").user(&user.username).ip(&p.ip))?;
        super::sessions::insert_session(conn, &user, session)?;
        Ok(user)
    })
}
