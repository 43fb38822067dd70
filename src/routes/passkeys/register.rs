//! Adding a passkey to the signed-in user (a sensitive action).

use actix_web::web;
use webauthn_rs::prelude::RegisterPublicKeyCredential;

use super::{internal, redirect, relying_party, started, Answer, Finish, JsonError, RegisterStart, EXPIRED};
use crate::accounts::{self, AccountError, NewPasskey};
use crate::auth::ceremonies::{self, stored_passkey};
use crate::auth::csrf::CsrfToken;
use crate::auth::passkeys::{credential_key, valid_name, CeremonyState, Refusal};
use crate::auth::CurrentUser;
use crate::db::ceremonies::Purpose;
use crate::db::{self, passkeys};
use crate::error::AppError;
use crate::state::ClientIp;
use crate::state::State;

/// `POST /account/passkeys/register/start` `{"name": …}`.
pub async fn register_start(
    ip: ClientIp,
    user: CurrentUser,
    csrf: CsrfToken,
    body: web::Json<RegisterStart>,
    state: State,
) -> Answer {
    let rp = relying_party(&state)?;
    let name = valid_name(&body.name).map_err(JsonError::bad)?;
    let (user_id, check) = (user.user_id.clone(), name.clone());
    let (rows, taken) = db::run(&state.pool, move |conn| {
        Ok((passkeys::credentials_for_user(conn, &user_id)?, passkeys::name_taken(conn, &user_id, &check)?))
    })
    .await?;
    if taken {
        return Err(JsonError::bad(format!("You already have a passkey named “{name}”.")));
    }
    let existing = rows.iter().map(|r| stored_passkey(r).map(|p| p.cred_id().clone())).collect::<Result<_, _>>()?;
    let (options, registration) = rp.start_registration(&user.user_id, &user.username, existing).map_err(internal)?;
    let ceremony = CeremonyState::Register { name, state: registration };
    started((&state, &ip.0, &csrf), (Purpose::Register, Some(&user.user_id)), &ceremony, options).await
}

/// `POST /account/passkeys/register/finish` `{"ceremony": …, "credential": …}`.
pub async fn register_finish(
    ip: ClientIp,
    user: CurrentUser,
    csrf: CsrfToken,
    body: web::Json<Finish<RegisterPublicKeyCredential>>,
    state: State,
) -> Answer {
    let rp = relying_party(&state)?;
    let Finish { ceremony, credential, .. } = body.into_inner();
    let taken = ceremonies::take(&state, ceremony, ceremonies::binding(&csrf), Purpose::Register).await?;
    let refused = |why: Refusal| {
        tracing::warn!(username = %user.username, session = %user.session_id, client_ip = %ip, reason = %why, "passkey not added");
        match why {
            Refusal::NoCeremony => JsonError::bad(EXPIRED),
            Refusal::NotDiscoverable => JsonError::bad(
                "This authenticator cannot keep a passkey on itself, so it could not sign you in. Try another one.",
            ),
            _ => JsonError::bad("The passkey could not be added. Please try again."),
        }
    };
    let (name, registration) = match taken {
        Ok((Some(owner), CeremonyState::Register { name, state })) if owner == user.user_id => (name, state),
        Ok(_) | Err(_) => return Err(refused(Refusal::NoCeremony)),
    };
    let passkey = rp.finish_registration(&credential, &registration).map_err(refused)?;
    let new = NewPasskey {
        user_id: user.user_id.clone(),
        session_id: user.session_id.clone(),
        name,
        credential_id: credential_key(passkey.cred_id()),
        credential: serde_json::to_string(&passkey).map_err(internal)?,
        ip: ip.0.clone(),
        now: state.now_ms(),
    };
    match db::run(&state.pool, move |conn| Ok(accounts::add_passkey(conn, &new))).await? {
        Ok(_) => {
            tracing::info!(username = %user.username, session = %user.session_id, "passkey added");
            Ok(redirect("/account/security?done=passkey-added"))
        }
        Err(AccountError::Changed | AccountError::SessionEnded) => Err(JsonError::signed_out()),
        Err(e) => Err(AppError::from(e).into()),
    }
}
