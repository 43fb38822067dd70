//! Passkey ceremonies kept between their two requests: started (the options go to the browser, what
//! `webauthn-rs` needs for the answer is kept here), then taken once with the answer. Each is bound
//! to the browser that started it (a hash of its CSRF token, derived from its visitor cookie or its
//! session), kept for [`CEREMONY_LIFETIME`], and limited per browser first, then per address.

use serde::Serialize;
use webauthn_rs::prelude::{Passkey, PublicKeyCredential};

use super::attempts::{self, Counter};
use super::csrf::CsrfToken;
use super::passkeys::{credential_key, CeremonyState, Refusal, RelyingParty, CEREMONY_LIFETIME};
use crate::db::ceremonies::{self, NewCeremony, NotKept, Purpose, Waiting};
use crate::db::{self, passkeys};
use crate::error::AppError;
use crate::state::AppState;
use crate::util::{duration_ms, sha256_hex};

/// Ceremonies that may wait for an answer: a few per browser (a further start replaces its oldest),
/// and a bound per address across its browsers.
pub const WAITING: Waiting = Waiting { per_browser: 4, per_address: 256 };

/// What binds a ceremony (and a pending sign-in) to the browser, and once signed in the session,
/// that started it.
pub fn binding(csrf: &CsrfToken) -> String {
    sha256_hex(&csrf.0)
}

/// Why a ceremony could not be kept.
#[derive(Debug)]
pub enum NotStarted {
    /// This address has as many waiting as it may.
    TooMany,
    Failed(AppError),
}

impl<E: Into<AppError>> From<E> for NotStarted {
    fn from(e: E) -> Self {
        NotStarted::Failed(e.into())
    }
}

/// Keeps `ceremony` for `purpose` (of `user_id`, when it confirms a known user), started by the
/// browser `binding` from `ip`; returns its id.
pub async fn keep(
    state: &AppState,
    (purpose, user_id): (Purpose, Option<&str>),
    (binding, ip): (&str, &str),
    ceremony: &CeremonyState,
) -> Result<String, NotStarted> {
    let json = serde_json::to_string(ceremony).map_err(|e| AppError::Internal(e.into()))?;
    let (binding, user_id, ip) = (binding.to_owned(), user_id.map(str::to_owned), ip.to_owned());
    let now = state.now_ms();
    let expires_at = now + duration_ms(CEREMONY_LIFETIME);
    let kept = db::run(&state.pool, move |conn| {
        let c = NewCeremony {
            purpose,
            binding: &binding,
            user_id: user_id.as_deref(),
            client_ip: &ip,
            state: &json,
            expires_at,
        };
        match ceremonies::insert(conn, &c, now, WAITING) {
            Ok(id) => Ok(Ok(id)),
            Err(NotKept::TooMany) => Ok(Err(NotStarted::TooMany)),
            Err(NotKept::Database(e)) => Err(e.into()),
        }
    })
    .await?;
    kept
}

/// The ceremony's owner and state from a taken row, if there was one and it is readable.
pub fn state_of(taken: Option<ceremonies::Taken>) -> Result<(Option<String>, CeremonyState), Refusal> {
    let taken = taken.ok_or(Refusal::NoCeremony)?;
    let state = serde_json::from_str(&taken.state).map_err(|_| Refusal::NoCeremony)?;
    Ok((taken.user_id, state))
}

/// Takes the ceremony `id` of the browser `binding` for `purpose`, once.
pub async fn take(
    state: &AppState,
    id: String,
    binding: String,
    purpose: Purpose,
) -> Result<Result<(Option<String>, CeremonyState), Refusal>, AppError> {
    let now = state.now_ms();
    let taken = db::run(&state.pool, move |conn| Ok(ceremonies::take(conn, &id, &binding, purpose, now)?)).await?;
    Ok(state_of(taken))
}

/// Options for confirming `user_id` with one of their passkeys, and the ceremony to keep;
/// `None` when they have none.
pub async fn start_verification(
    state: &AppState,
    rp: &RelyingParty,
    user_id: &str,
) -> Result<Option<(impl Serialize, CeremonyState)>, AppError> {
    let owner = user_id.to_owned();
    let rows = db::run(&state.pool, move |conn| Ok(passkeys::credentials_for_user(conn, &owner)?)).await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let stored = rows.iter().map(stored_passkey).collect::<Result<Vec<_>, _>>()?;
    let (options, authentication) =
        rp.start_verification(&stored).map_err(|e| AppError::Internal(anyhow::anyhow!("passkeys: {e}")))?;
    Ok(Some((options, CeremonyState::Verify(authentication))))
}

/// A stored passkey, readable.
pub fn stored_passkey(row: &passkeys::PasskeyRow) -> Result<Passkey, AppError> {
    serde_json::from_str(&row.credential)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("passkey {} is unreadable: {e}", row.id)))
}

/// How confirming a known user with a passkey went.
pub enum Confirmation {
    Confirmed,
    /// Not accepted, and why (for the audit log): the reserved attempts stay counted, the caller
    /// records the failure.
    Refused(Refusal),
    /// A counter is locked (until then, epoch ms): nothing was checked.
    Locked(i64),
}

/// An answer to a ceremony of [`start_verification`].
pub struct Answer {
    pub ceremony: String,
    pub binding: String,
    pub credential: PublicKeyCredential,
}

/// Checks `answer` for the user `user_id` after reserving an attempt on `counters`, and records the
/// passkey's use (counter, last used) if it is unchanged since it was checked.
pub async fn confirm(
    state: &AppState,
    rp: &RelyingParty,
    purpose: Purpose,
    user_id: &str,
    counters: &[Counter],
    answer: Answer,
) -> Result<Confirmation, AppError> {
    let Answer { ceremony, binding, credential } = answer;
    let key = credential_key(&credential.raw_id);
    let now = state.now_ms();
    let (taken, row) = match attempts::reserve_then(state, counters, move |conn| {
        Ok((ceremonies::take(conn, &ceremony, &binding, purpose, now)?, passkeys::find_by_credential_id(conn, &key)?))
    })
    .await?
    {
        Ok(taken) => taken,
        Err(until) => return Ok(Confirmation::Locked(until)),
    };
    let checked = (|| {
        let authentication = match state_of(taken)? {
            (Some(owner), CeremonyState::Verify(authentication)) if owner == user_id => authentication,
            _ => return Err(Refusal::NoCeremony),
        };
        let row = row.ok_or(Refusal::UnknownCredential)?;
        if row.user_id != user_id {
            return Err(Refusal::OtherUsersCredential);
        }
        let mut updated: Passkey = serde_json::from_str(&row.credential).map_err(|_| Refusal::UnknownCredential)?;
        let result = rp.finish_verification(&credential, &authentication)?;
        updated.update_credential(&result);
        Ok((row, updated))
    })();
    let (row, updated) = match checked {
        Ok(confirmed) => confirmed,
        Err(why) => return Ok(Confirmation::Refused(why)),
    };
    let updated = serde_json::to_string(&updated).map_err(|e| AppError::Internal(e.into()))?;
    let now = state.now_ms();
    let used = db::run(&state.pool, move |conn| {
        Ok(passkeys::record_use(conn, &row.id, &row.user_id, &row.credential, &updated, now)?)
    })
    .await?;
    Ok(if used == 1 { Confirmation::Confirmed } else { Confirmation::Refused(Refusal::Changed) })
}
