//! A submitted second-factor code: six digits are an authenticator-app code, anything else is read
//! as a recovery code. Checking needs no write; **spending** it ([`spend`]) is one conditional
//! UPDATE, inside the caller's transaction, so a code is accepted at most once even when two
//! requests (on two instances) carry it at the same moment.

use crate::accounts::AuthMethod;
use crate::db::users::User;
use crate::db::{factors, DbConn};
use crate::seal::Sealer;

/// What a code proved, to be spent.
#[derive(Clone, Debug)]
pub enum CodeProof {
    /// A right app code of time step `step`, for the app whose sealed secret is `sealed`.
    Totp { sealed: String, step: i64 },
    /// A recovery code in the right shape (whether it is one of the user's unused codes is decided
    /// when it is spent).
    Recovery { hash: String },
}

impl CodeProof {
    pub fn method(&self) -> AuthMethod {
        match self {
            CodeProof::Totp { .. } => AuthMethod::Totp,
            CodeProof::Recovery { .. } => AuthMethod::RecoveryCode,
        }
    }
}

/// Opens the user's app secret.
pub fn totp_secret(seal: &Sealer, user: &User) -> Option<Vec<u8>> {
    seal.open(&user.id, user.totp_secret.as_deref()?)
}

/// What `code` proves for `user` at `now`, before anything is spent; `None` for a wrong app code
/// or something that is no code at all.
pub fn check(seal: &Sealer, user: &User, code: &str, now: i64) -> Option<CodeProof> {
    if crate::auth::totp::normalize(code).is_some() {
        let sealed = user.totp_secret.clone()?;
        let step = crate::auth::totp::matching_step(&totp_secret(seal, user)?, code, now)?;
        return Some(CodeProof::Totp { sealed, step });
    }
    let normalized = crate::auth::recovery::normalize(code)?;
    Some(CodeProof::Recovery { hash: crate::auth::recovery::hash(&user.id, &normalized) })
}

/// Spends a checked code: the app's step moves forward (refused when that step or a later one was
/// already accepted, or the app changed), or the recovery code is marked used. False when it was
/// not accepted. Returns also, for a recovery code, how many are left.
pub fn spend(conn: &mut DbConn, user_id: &str, proof: &CodeProof, now: i64) -> diesel::QueryResult<Option<Spent>> {
    match proof {
        CodeProof::Totp { sealed, step } => {
            Ok(factors::accept_totp_step(conn, user_id, sealed, *step)?.then_some(Spent { recovery_codes_left: None }))
        }
        CodeProof::Recovery { hash } => {
            if !factors::use_recovery_code(conn, user_id, hash, now)? {
                return Ok(None);
            }
            Ok(Some(Spent { recovery_codes_left: Some(factors::recovery_codes_left(conn, user_id)?) }))
        }
    }
}

/// A spent code.
#[derive(Clone, Copy, Debug)]
pub struct Spent {
    /// For a recovery code: how many unused ones are left.
    pub recovery_codes_left: Option<i64>,
}

/// The `recovery_code_used` event's words.
pub fn left_words(left: i64) -> String {
    match left {
        0 => "no recovery codes left".to_owned(),
        1 => "1 recovery code left".to_owned(),
        n => format!("{n} recovery codes left"),
    }
}
