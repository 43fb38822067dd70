//! Signing in with a passkey alone (it is both factors): the answer names its user.

use webauthn_rs::prelude::{Passkey, PublicKeyCredential};

use super::complete::{complete, Completed};
use super::{Outcome, Refused, Visit};
use crate::accounts::{self, AuthMethod, PasskeySignIn};
use crate::auth::attempts::{self, Counter};
use crate::auth::ceremonies;
use crate::auth::passkeys::{CeremonyState, Refusal, RelyingParty};
use crate::db::ceremonies::Purpose;
use crate::db::events::NewEvent;
use crate::db::{self, passkeys};
use crate::error::AppError;
use crate::metrics::{self, SignIn};

/// Checks `credential`, the browser's answer to its ceremony `ceremony`: signed in (`next`),
/// locked, or refused.
pub async fn with_passkey(
    visit: &Visit,
    rp: &RelyingParty,
    ceremony: String,
    credential: PublicKeyCredential,
    next: String,
) -> Result<Outcome, AppError> {
    let state = &visit.state;
    // Whom the answer claims (not verified yet): it decides which counters the attempt goes on.
    let claimed = rp.identify(&credential);
    let key = claimed.as_ref().map(|(_, key)| key.clone()).ok();
    let found = match key {
        Some(key) => db::run(&state.pool, move |conn| Ok(passkeys::find_with_owner(conn, &key)?)).await?,
        None => None,
    };
    // Per address always; per user when the credential names one of ours.
    let user_counter = found.as_ref().map(|(_, owner)| Counter::user(state, &owner.username));
    let counters: Vec<Counter> = user_counter.into_iter().chain([Counter::ip(state, &visit.ip)]).collect();
    let (binding, now) = (visit.browser.clone(), state.now_ms());
    let taken = match attempts::reserve_then(state, &counters, move |conn| {
        crate::db::ceremonies::take(conn, &ceremony, &binding, Purpose::SignIn, now)
    })
    .await?
    {
        Ok(taken) => taken,
        Err(until) => {
            tracing::warn!(client_ip = %visit.ip, "passkey sign-in refused: locked out");
            metrics::sign_in(SignIn::Locked);
            return Ok(Outcome::Locked { until });
        }
    };

    let verified = (|| {
        let authentication = match ceremonies::state_of(taken)? {
            (None, CeremonyState::SignIn(authentication)) => authentication,
            _ => return Err(Refusal::NoCeremony),
        };
        let (handle, _) = claimed?;
        let (row, owner) = found.clone().ok_or(Refusal::UnknownCredential)?;
        // The passkey must be the user's whose handle the authenticator signed for.
        if RelyingParty::user_handle(&owner.id) != handle {
            return Err(Refusal::OtherUsersCredential);
        }
        let mut passkey: Passkey = serde_json::from_str(&row.credential).map_err(|_| Refusal::UnknownCredential)?;
        let result = rp.finish_sign_in(&credential, authentication, &passkey)?;
        passkey.update_credential(&result);
        if owner.is_disabled() {
            return Err(Refusal::Disabled);
        }
        Ok((row, owner, passkey))
    })();
    let owner_name = found.as_ref().map(|(_, owner)| owner.username.clone());
    let (row, user, passkey) = match verified {
        Ok(verified) => verified,
        Err(why) => return failed(visit, &counters, owner_name, &why).await,
    };

    let sign_in = PasskeySignIn {
        user_id: user.id.clone(),
        passkey_id: row.id.clone(),
        verified_credential: row.credential.clone(),
        updated_credential: serde_json::to_string(&passkey).map_err(|e| AppError::Internal(e.into()))?,
        throttle_key: Counter::user(state, &user.username).key,
        address_key: Counter::ip(state, &visit.ip).key,
    };
    let completed = complete(visit, &user, AuthMethod::Passkey, move |conn, session| {
        Ok(accounts::sign_in_with_passkey(conn, &sign_in, &session)?.into())
    })
    .await?;
    match completed {
        Completed::SignedIn(_) => Ok(Outcome::SignedIn { next, trusted: None }),
        Completed::CloudUnavailable => {
            attempts::release(state, &counters).await?; // the passkey was right
            Ok(Outcome::Refused(Refused::Invalid))
        }
        // Disabled, or the passkey deleted or used in parallel, while it was being checked.
        Completed::Refused(_) => {
            let user_counter = [Counter::user(state, &user.username)];
            failed(visit, &user_counter, Some(user.username.clone()), &Refusal::Changed).await
        }
    }
}

/// A failed passkey sign-in: the reserved attempts stay counted and the audit log says why.
async fn failed(
    visit: &Visit,
    counters: &[Counter],
    username: Option<String>,
    why: &Refusal,
) -> Result<Outcome, AppError> {
    tracing::warn!(username = username.as_deref().unwrap_or(""), client_ip = %visit.ip, reason = %why, "passkey sign-in failed");
    metrics::sign_in(SignIn::Wrong);
    let mut event = NewEvent::new("sign_in_failed").ip(&visit.ip).detail(format!("passkey: {why}"));
    event.username = username;
    attempts::fail(&visit.state, counters, event).await?;
    Ok(Outcome::Refused(if matches!(why, Refusal::NoCeremony) { Refused::CeremonyGone } else { Refused::Invalid }))
}
