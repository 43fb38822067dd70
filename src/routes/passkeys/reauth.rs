//! Confirming who you are with one of your passkeys before a sensitive action.

use actix_web::http::StatusCode;
use actix_web::web;
use webauthn_rs::prelude::PublicKeyCredential;

use super::{redirect, relying_party, started, Answer, Finish, JsonError};
use crate::accounts::AuthMethod;
use crate::auth::attempts::{self, Counter};
use crate::auth::ceremonies::{self, Answer as CeremonyAnswer, Confirmation};
use crate::auth::csrf::CsrfToken;
use crate::auth::{local_next, reauth, CurrentUser};
use crate::db::ceremonies::Purpose;
use crate::db::events::NewEvent;
use crate::state::ClientIp;
use crate::state::State;

/// `POST /reauth/passkey/start`.
pub async fn reauth_start(ip: ClientIp, user: CurrentUser, csrf: CsrfToken, state: State) -> Answer {
    let rp = relying_party(&state)?;
    let Some((options, ceremony)) = ceremonies::start_verification(&state, rp, &user.user_id).await? else {
        return Err(JsonError::bad("You have no passkey yet."));
    };
    started((&state, &ip.0, &csrf), (Purpose::Reauth, Some(&user.user_id)), &ceremony, options).await
}

/// `POST /reauth/passkey/finish` `{"ceremony": …, "credential": …, "next": …}`: on success the
/// re-authentication window starts again and the answer says where to go (`next`).
pub async fn reauth_finish(
    ip: ClientIp,
    user: CurrentUser,
    csrf: CsrfToken,
    body: web::Json<Finish<PublicKeyCredential>>,
    state: State,
) -> Answer {
    let rp = relying_party(&state)?;
    let Finish { ceremony, credential, next, .. } = body.into_inner();
    let next = local_next(next);
    let counters = [Counter::user(&state, &user.username), Counter::ip(&state, &ip.0)];
    let answer = CeremonyAnswer { ceremony, binding: ceremonies::binding(&csrf), credential };
    let why = match ceremonies::confirm(&state, rp, Purpose::Reauth, &user.user_id, &counters, answer).await? {
        Confirmation::Confirmed => {
            attempts::release(&state, &counters).await?;
            reauth::record_reauthentication(&state, &user, AuthMethod::Passkey).await?;
            return Ok(redirect(&next));
        }
        Confirmation::Locked(until) => return Err(JsonError::locked(until, state.now_ms())),
        Confirmation::Refused(why) => why,
    };
    let event = NewEvent::new("reauth_failed")
        .user(&user.username)
        .session(&user.session_id)
        .ip(&ip.0)
        .detail(format!("passkey: {why}"));
    attempts::fail(&state, &counters, event).await?;
    tracing::warn!(username = %user.username, session = %user.session_id, reason = %why, "re-authentication with a passkey failed");
    Err(JsonError::new(StatusCode::UNAUTHORIZED, "That passkey was not accepted. Please try again."))
}
