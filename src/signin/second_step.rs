//! The second step of a sign-in, after the password: an app code, a recovery code or a passkey.
//! Each counts on the username's and the address's counters like the password did, fails and locks
//! one way, and finishes through the same completion.

use super::complete::{complete, Completed, Done};
use super::pending::{self, PendingSignIn};
use super::{Outcome, Refused, Visit};
use crate::accounts::{self, AccountError, AuthMethod, SecondStep};
use crate::auth::attempts::{self, Counter};
use crate::auth::ceremonies::{self, Answer, Confirmation};
use crate::auth::codes::{self, CodeProof};
use crate::auth::passkeys::RelyingParty;
use crate::db::ceremonies::Purpose;
use crate::db::events::NewEvent;
use crate::db::{self, users};
use crate::error::AppError;
use crate::metrics::{self, SignIn};

/// The counters every second step reserves an attempt on.
fn counters(visit: &Visit, pending: &PendingSignIn) -> [Counter; 2] {
    [Counter::user(&visit.state, &pending.username), Counter::ip(&visit.state, &visit.ip)]
}

/// The second step with an app code or a recovery code (`code`, as typed); `trust`: the person
/// asked to trust this browser from now on.
pub async fn with_code(visit: &Visit, pending: &PendingSignIn, code: &str, trust: bool) -> Result<Outcome, AppError> {
    let state = &visit.state;
    let counters = counters(visit, pending);
    let id = pending.user_id.clone();
    let user = match attempts::reserve_then(state, &counters, move |conn| users::find_by_id(conn, &id)).await? {
        Ok(Some(user)) => user,
        Ok(None) => return start_again(visit, pending, &counters).await,
        Err(until) => return locked(visit, pending, until).await,
    };
    let why = match codes::check(&state.totp_seal, &user, code, state.now_ms()) {
        None => "wrong code",
        Some(proof) => {
            let method = proof.method();
            match finish(visit, pending, (&counters, trust), &user, Some(proof), method).await? {
                Some(outcome) => return Ok(outcome),
                None => "code not accepted (used already, or not one of the user's)",
            }
        }
    };
    failed(visit, pending, &counters, why.to_owned()).await
}

/// The second step with one of the user's passkeys: `answer` to a ceremony this browser started
/// (`trust`: as for [`with_code`]).
pub async fn with_second_passkey(
    visit: &Visit,
    pending: &PendingSignIn,
    rp: &RelyingParty,
    answer: Answer,
    trust: bool,
) -> Result<Outcome, AppError> {
    let state = &visit.state;
    let counters = counters(visit, pending);
    match ceremonies::confirm(state, rp, Purpose::SecondStep, &pending.user_id, &counters, answer).await? {
        Confirmation::Confirmed => {}
        Confirmation::Refused(why) => return failed(visit, pending, &counters, format!("passkey: {why}")).await,
        Confirmation::Locked(until) => return locked(visit, pending, until).await,
    }
    let id = pending.user_id.clone();
    let Some(user) = db::run(&state.pool, move |conn| Ok(users::find_by_id(conn, &id)?)).await? else {
        return start_again(visit, pending, &counters).await;
    };
    match finish(visit, pending, (&counters, trust), &user, None, AuthMethod::Passkey).await? {
        Some(outcome) => Ok(outcome),
        None => Err(AppError::Internal(anyhow::anyhow!("no code was to be spent"))),
    }
}

/// Finishes `pending` after its second factor: `proof` (a code, spent in the transaction that
/// creates the session) or nothing (a passkey, checked and recorded by the caller). `None` when the
/// code was spent already (a replay, or a parallel request won): nothing was written.
async fn finish(
    visit: &Visit,
    pending: &PendingSignIn,
    (counters, trust): (&[Counter; 2], bool),
    user: &users::User,
    proof: Option<CodeProof>,
    method: AuthMethod,
) -> Result<Option<Outcome>, AppError> {
    let (trust, trusted) = match trust && super::trust::offered(&visit.state) {
        true => {
            let (trust, cookie) = super::trust::new_trust(&visit.state);
            (Some(trust), Some(cookie))
        }
        false => (None, None),
    };
    let step = SecondStep {
        pending_id_hash: pending.id_hash.clone(),
        user_id: pending.user_id.clone(),
        verified_hash: pending.verified_hash.clone(),
        proof,
        throttle_key: counters[0].key.clone(),
        address_key: counters[1].key.clone(),
        trust,
    };
    visit.state.second_step_hold.pass().await;
    let completed = complete(visit, user, method, move |conn, session| {
        let (user, recovery_codes_left) = accounts::finish_sign_in(conn, &step, &session)?;
        Ok(Done { user, recovery_codes_left })
    })
    .await?;
    match completed {
        Completed::SignedIn(done) => {
            // After a recovery code (the phone is probably lost), with nowhere else asked for: the
            // security page, which says how many codes are left.
            let next = match (done.recovery_codes_left, &pending.next) {
                (_, Some(next)) => next.clone(),
                (Some(left), None) => format!("/account/security?done=recovery-code-used&n={left}"),
                (None, None) => "/".to_owned(),
            };
            Ok(Some(Outcome::SignedIn { next, trusted }))
        }
        Completed::Refused(AccountError::CodeNotAccepted) => Ok(None),
        // Expired or used meanwhile, the account changed, or cloud access required and unavailable:
        // the factor was right, so its attempts are given back.
        Completed::Refused(_) | Completed::CloudUnavailable => start_again(visit, pending, counters).await.map(Some),
    }
}

/// No sign-in after all, though nothing was guessed: the attempts are given back, the pending
/// sign-in ends, and the browser starts again at `/login`.
async fn start_again(visit: &Visit, pending: &PendingSignIn, counters: &[Counter]) -> Result<Outcome, AppError> {
    attempts::release(&visit.state, counters).await?;
    pending::discard(&visit.state, pending).await?;
    tracing::warn!(username = %pending.username, client_ip = %visit.ip, "second step refused: the sign-in expired or the account changed");
    metrics::sign_in(SignIn::Refused);
    Ok(Outcome::Refused(Refused::StartAgain))
}

/// A wrong second factor: it stays counted and is recorded; when it locked a counter the pending
/// sign-in ends with the lock.
async fn failed(
    visit: &Visit,
    pending: &PendingSignIn,
    counters: &[Counter],
    why: String,
) -> Result<Outcome, AppError> {
    let event = NewEvent::new("second_factor_failed").user(&pending.username).ip(&visit.ip).detail(why.as_str());
    let lock = attempts::fail(&visit.state, counters, event).await?;
    tracing::warn!(username = %pending.username, client_ip = %visit.ip, why, locked = lock.is_some(), "second step failed");
    metrics::sign_in(SignIn::SecondFactorFailed);
    match lock {
        Some(lock) => {
            pending::discard(&visit.state, pending).await?;
            Ok(Outcome::Locked { until: lock.until })
        }
        None => Ok(Outcome::Refused(Refused::WrongFactor)),
    }
}

/// A counter was locked before anything was checked: the lock ends the pending sign-in.
async fn locked(visit: &Visit, pending: &PendingSignIn, until: i64) -> Result<Outcome, AppError> {
    pending::discard(&visit.state, pending).await?;
    tracing::warn!(username = %pending.username, client_ip = %visit.ip, "second step refused: locked out");
    metrics::sign_in(SignIn::Locked);
    Ok(Outcome::Locked { until })
}
