//! Beginning a sign-in with a username and a password.

use secrecy::SecretString;

use super::complete::{complete, Completed};
use super::{pending, trust, Outcome, Refused, Visit};
use crate::accounts::{self, AccountError, AuthMethod, PasswordSignIn};
use crate::auth::attempts::{self, Counter};
use crate::auth::password;
use crate::config::PASSWORD_MAX_LENGTH;
use crate::db::events::NewEvent;
use crate::db::users;
use crate::error::AppError;
use crate::metrics::{self, SignIn};

/// Checks `username` and `password`: signed in (`next`), or on to the second step for a user with a
/// second factor, or locked, or refused with the one answer for every wrong or unknown name.
pub async fn with_password(
    visit: &Visit,
    username: &str,
    password: String,
    next: Option<String>,
) -> Result<Outcome, AppError> {
    let (state, ip) = (&visit.state, visit.ip.as_str());
    let shown: String = username.trim().chars().take(64).collect();
    let counters = [Counter::user(state, username), Counter::ip(state, ip)];
    state.hasher.check_room(ip).map_err(anyhow::Error::new)?;

    // An attempt is reserved on the username's and the address's counters before anything is
    // hashed; at the limit (or while locked) nothing is, whatever the name, existing or not. The
    // account (if any, with its passkey count: whether a second step follows is decided after the
    // password) is read in the same database call.
    let name = users::normalize_username(username).ok();
    let reserved = attempts::reserve_then(state, &counters, move |conn| match &name {
        Some(name) => Ok(users::find_by_username_with_passkeys(conn, name)?.map_or((None, 0), |(u, n)| (Some(u), n))),
        None => Ok((None, 0)),
    })
    .await?;
    let (user, passkeys) = match reserved {
        Ok(found) => found,
        Err(until) => {
            tracing::warn!(username = %shown, client_ip = %ip, "sign-in refused: locked out");
            metrics::sign_in(SignIn::Locked);
            return Ok(Outcome::Locked { until });
        }
    };

    // Over-long passwords are refused before any hashing; unknown users still cost one verification
    // (against a dummy hash) so that timing does not tell them apart from known ones.
    let too_long = password.chars().count() > PASSWORD_MAX_LENGTH;
    let secret = SecretString::from(password);
    let verified = !too_long && {
        match state.hasher.verify(secret.clone(), user.as_ref().map(|u| u.password_hash.clone()), ip).await {
            Ok(verified) => verified,
            Err(e) => {
                // Not checked (the hashing queue is full): the attempt does not count.
                attempts::release(state, &counters).await?;
                return Err(e.into());
            }
        }
    };
    let user = match user {
        Some(user) if verified && !user.is_disabled() => user,
        _ => {
            tracing::warn!(username = %shown, client_ip = %ip, "sign-in failed");
            metrics::sign_in(SignIn::Wrong);
            let event = NewEvent::new("sign_in_failed").user(&shown).ip(ip);
            if let Some(lock) = attempts::fail(state, &counters, event).await? {
                tracing::warn!(username = %shown, client_ip = %ip, locked = lock.what, "sign-in locked out");
            }
            return Ok(Outcome::Refused(Refused::Invalid));
        }
    };

    // Hashes made with weaker parameters than today's are upgraded while we hold the password.
    let rehash =
        if password::needs_rehash(&user.password_hash) { Some(state.hasher.hash(secret, ip).await?) } else { None };

    // A user with a second factor: the password step is done, the session waits for the second
    // (no session row before it) — unless this browser is one they trust, and still is when the
    // session is written. The answer to a wrong password above never says whether there is one.
    let second_factor = state.config.mfa.enabled() && (user.totp_secret.is_some() || passkeys > 0);
    let trusted = if second_factor { trust::presented(visit) } else { None };
    let rehash = match trusted {
        Some(token_hash) => {
            state.trusted_sign_in_hold.pass().await;
            let sign_in = PasswordSignIn {
                user_id: user.id.clone(),
                verified_hash: user.password_hash.clone(),
                rehash: rehash.clone(),
                throttle_key: counters[0].key.clone(),
                address_key: Some(counters[1].key.clone()),
                trusted_browser: Some(token_hash),
            };
            let completed = complete(visit, &user, AuthMethod::TrustedBrowser, move |conn, session| {
                Ok(accounts::sign_in(conn, &sign_in, &session)?.into())
            })
            .await?;
            match completed {
                Completed::SignedIn(_) => return Ok(signed_in(next)),
                Completed::CloudUnavailable => {
                    attempts::release(state, &counters).await?; // the password was right
                    return Ok(Outcome::Refused(Refused::Invalid));
                }
                // Trust ended meanwhile (forgotten, a reset): the second factor is asked after all.
                Completed::Refused(AccountError::TrustGone) => rehash,
                Completed::Refused(_) => return changed_meanwhile(visit, &user.username, &counters).await,
            }
        }
        None => rehash,
    };
    if second_factor {
        attempts::release(state, &counters).await?; // not a guess; the username's failures stay counted
        return match pending::begin(visit, &user, rehash, next).await? {
            Ok(cookie) => Ok(Outcome::SecondStep { cookie }),
            Err(_) => changed_meanwhile(visit, &user.username, &counters).await,
        };
    }

    let sign_in = PasswordSignIn {
        user_id: user.id.clone(),
        verified_hash: user.password_hash.clone(),
        rehash,
        throttle_key: counters[0].key.clone(),
        // The password was right: this attempt was not a guess (given back by the same transaction).
        address_key: Some(counters[1].key.clone()),
        trusted_browser: None,
    };
    let completed = complete(visit, &user, AuthMethod::Password, move |conn, session| {
        Ok(accounts::sign_in(conn, &sign_in, &session)?.into())
    })
    .await?;
    match completed {
        Completed::SignedIn(_) => Ok(signed_in(next)),
        Completed::CloudUnavailable => {
            attempts::release(state, &counters).await?; // the password was right
            Ok(Outcome::Refused(Refused::Invalid))
        }
        Completed::Refused(_) => changed_meanwhile(visit, &user.username, &counters).await,
    }
}

fn signed_in(next: Option<String>) -> Outcome {
    Outcome::SignedIn { next: next.unwrap_or_else(|| "/".to_owned()), trusted: None }
}

/// Reset or disabled while the password was being checked: that check no longer holds, and the
/// username's attempt counts as a failure.
async fn changed_meanwhile(visit: &Visit, username: &str, counters: &[Counter]) -> Result<Outcome, AppError> {
    let event = NewEvent::new("sign_in_failed").user(username).ip(&visit.ip).detail("the account changed meanwhile");
    attempts::fail(&visit.state, &counters[..1], event).await?;
    metrics::sign_in(SignIn::Refused);
    Ok(Outcome::Refused(Refused::Invalid))
}
