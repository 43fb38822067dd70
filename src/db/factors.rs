//! Second factors in the database: the authenticator app's columns of `users`, the
//! `recovery_codes` table, and what the pages show of a user's factors.

use std::collections::HashMap;

use diesel::prelude::*;

use super::schema::{passkeys, recovery_codes, users};
use super::DbConn;

/// Turns the app on with `sealed` (its secret, sealed), marking `step` (the code that confirmed
/// it) as used; or off (`None`). 0 rows when there is no such user.
pub fn set_totp(conn: &mut DbConn, user_id: &str, sealed: Option<&str>, step: Option<i64>) -> QueryResult<usize> {
    diesel::update(users::table.find(user_id))
        .set((
            users::totp_secret.eq(sealed),
            users::totp_last_step.eq(step),
            users::factor_epoch.eq(users::factor_epoch + 1),
        ))
        .execute(conn)
}

/// Accepts an app code of time step `step`: **one conditional UPDATE** that moves
/// `totp_last_step` forward only past what was accepted before, and only while the app is still
/// the one the code was checked against (`sealed`). Two requests with the same code, on one
/// instance or several, cannot both get 1 row: the second finds the step taken.
pub fn accept_totp_step(conn: &mut DbConn, user_id: &str, sealed: &str, step: i64) -> QueryResult<bool> {
    let n = diesel::update(
        users::table
            .find(user_id)
            .filter(users::totp_secret.eq(sealed))
            .filter(users::totp_last_step.is_null().or(users::totp_last_step.lt(step))),
    )
    .set(users::totp_last_step.eq(step))
    .execute(conn)?;
    Ok(n == 1)
}

/// Replaces a user's recovery codes with `hashes`.
pub fn replace_recovery_codes(conn: &mut DbConn, user_id: &str, hashes: &[String], now: i64) -> QueryResult<()> {
    delete_recovery_codes(conn, user_id)?;
    // One row at a time: batch inserts are not portable through diesel's MultiConnection.
    for h in hashes {
        diesel::insert_into(recovery_codes::table)
            .values((
                recovery_codes::id.eq(crate::util::random_b64(12)),
                recovery_codes::user_id.eq(user_id),
                recovery_codes::code_hash.eq(h),
                recovery_codes::created_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

pub fn delete_recovery_codes(conn: &mut DbConn, user_id: &str) -> QueryResult<usize> {
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id))).execute(conn)
}

/// Spends the unused recovery code with `hash`: a conditional UPDATE, so a code is spent once even
/// by parallel requests. False when there is no such unused code.
pub fn use_recovery_code(conn: &mut DbConn, user_id: &str, hash: &str, now: i64) -> QueryResult<bool> {
    let n = diesel::update(
        recovery_codes::table
            .filter(recovery_codes::user_id.eq(user_id))
            .filter(recovery_codes::code_hash.eq(hash))
            .filter(recovery_codes::used_at.is_null()),
    )
    .set(recovery_codes::used_at.eq(Some(now)))
    .execute(conn)?;
    Ok(n == 1)
}

/// How many unused recovery codes a user has.
pub fn recovery_codes_left(conn: &mut DbConn, user_id: &str) -> QueryResult<i64> {
    recovery_codes::table
        .filter(recovery_codes::user_id.eq(user_id))
        .filter(recovery_codes::used_at.is_null())
        .count()
        .get_result(conn)
}

/// How many passkeys a user has.
pub fn passkey_count(conn: &mut DbConn, user_id: &str) -> QueryResult<i64> {
    passkeys::table.filter(passkeys::user_id.eq(user_id)).count().get_result(conn)
}

/// A user's second factors, as pages and the command line name them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Factors {
    pub totp: bool,
    pub passkeys: i64,
}

impl Factors {
    pub fn any(&self) -> bool {
        self.totp || self.passkeys > 0
    }

    /// `totp passkey`, `totp`, `passkey` or `none` (the `data-mfa` attribute of `/admin/users`).
    pub fn names(&self) -> String {
        let names: Vec<&str> = [(self.totp, "totp"), (self.passkeys > 0, "passkey")]
            .into_iter()
            .filter_map(|(on, n)| on.then_some(n))
            .collect();
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(" ")
        }
    }
}

/// One user's factors.
pub fn factors_of(conn: &mut DbConn, user_id: &str) -> QueryResult<Factors> {
    let totp: Option<Option<String>> = users::table.find(user_id).select(users::totp_secret).first(conn).optional()?;
    Ok(Factors { totp: totp.flatten().is_some(), passkeys: passkey_count(conn, user_id)? })
}

/// Every user's factors, by user id (users with none are left out).
pub fn factors_by_user(conn: &mut DbConn) -> QueryResult<HashMap<String, Factors>> {
    let mut out: HashMap<String, Factors> = HashMap::new();
    let with_app: Vec<String> = users::table.filter(users::totp_secret.is_not_null()).select(users::id).load(conn)?;
    for id in with_app {
        out.entry(id).or_default().totp = true;
    }
    let keys: Vec<(String, i64)> = passkeys::table
        .group_by(passkeys::user_id)
        .select((passkeys::user_id, diesel::dsl::count_star()))
        .load(conn)?;
    for (id, n) in keys {
        out.entry(id).or_default().passkeys = n;
    }
    Ok(out)
}
