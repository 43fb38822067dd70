//! Signing in with a passkey: alone (any user's: the passkey names its user), or as the second step
//! after the password. The checks are the sign-in pipeline's ([`crate::signin`]).

use actix_web::http::StatusCode;
use actix_web::web;
use webauthn_rs::prelude::PublicKeyCredential;

use super::{internal, outcome_answer, relying_party, started, Answer, Finish, JsonError};
use crate::auth::ceremonies::{self, Answer as CeremonyAnswer};
use crate::auth::local_next;
use crate::auth::passkeys::CeremonyState;
use crate::db::ceremonies::Purpose;
use crate::signin::{self, pending, PendingSignIn, Visit};

/// `POST /login/passkey/start`.
pub async fn sign_in_start(visit: Visit) -> Answer {
    let rp = relying_party(&visit.state)?;
    let (options, authentication) = rp.start_sign_in().map_err(internal)?;
    let ceremony = CeremonyState::SignIn(authentication);
    started((&visit.state, &visit.ip, &visit.csrf), (Purpose::SignIn, None), &ceremony, options).await
}

/// `POST /login/passkey/finish` `{"ceremony": …, "credential": …, "next": …}`: on success the
/// session is created (a new cookie) and the answer says where to go.
pub async fn sign_in_finish(visit: Visit, body: web::Json<Finish<PublicKeyCredential>>) -> Answer {
    let rp = relying_party(&visit.state)?;
    let Finish { ceremony, credential, next, .. } = body.into_inner();
    let outcome = signin::with_passkey(&visit, rp, ceremony, credential, local_next(next)).await?;
    outcome_answer(&visit.state, outcome)
}

/// This browser's pending sign-in (the password step passed), or a `401` back to `/login`.
async fn pending_of(visit: &Visit) -> Result<PendingSignIn, JsonError> {
    pending::current(visit).await?.ok_or_else(|| JsonError {
        redirect: Some("/login".into()),
        ..JsonError::new(StatusCode::UNAUTHORIZED, "This sign-in has expired. Please sign in again.")
    })
}

/// `POST /login/mfa/passkey/start`: the second step of a sign-in, for the user whose password this
/// browser has just given.
pub async fn second_step_start(visit: Visit) -> Answer {
    let rp = relying_party(&visit.state)?;
    let pending = pending_of(&visit).await?;
    let Some((options, ceremony)) = ceremonies::start_verification(&visit.state, rp, &pending.user_id).await? else {
        return Err(JsonError::bad("You have no passkey yet."));
    };
    let purpose = (Purpose::SecondStep, Some(pending.user_id.as_str()));
    started((&visit.state, &visit.ip, &visit.csrf), purpose, &ceremony, options).await
}

/// `POST /login/mfa/passkey/finish` `{"ceremony": …, "credential": …}`: on success the pending
/// sign-in becomes a session and the answer says where to go (the sign-in's `next`).
pub async fn second_step_finish(visit: Visit, body: web::Json<Finish<PublicKeyCredential>>) -> Answer {
    let rp = relying_party(&visit.state)?;
    let pending = pending_of(&visit).await?;
    let Finish { ceremony, credential, trust, .. } = body.into_inner();
    let answer = CeremonyAnswer { ceremony, binding: visit.browser.clone(), credential };
    let outcome = signin::with_second_passkey(&visit, &pending, rp, answer, trust).await?;
    outcome_answer(&visit.state, outcome)
}
