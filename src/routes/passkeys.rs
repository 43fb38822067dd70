//! The passkey ceremonies' JSON endpoints, called by `static/passkeys.js` (internal: not part of the
//! contract). Each ceremony is two `POST`s: `…/start` answers the options for
//! `navigator.credentials.create/get` and the id of the ceremony kept on the server; `…/finish`
//! brings the browser's answer with that id. Both carry the page's CSRF token in `X-CSRF-Token`.
//!
//! - `/account/passkeys/register/…`: add a passkey to the signed-in user (a sensitive action);
//! - `/login/passkey/…`: sign in with a passkey alone (any user's: the passkey names its user);
//! - `/login/mfa/passkey/…`: the second step of a sign-in, after the password;
//! - `/reauth/passkey/…`: confirm who you are with one of your passkeys.
//!
//! A ceremony is bound to the browser that started it: its row holds a hash of the browser's CSRF
//! token, which is derived from the browser's own cookie and, once signed in, the session (see
//! [`crate::auth::csrf`]); another browser's answer does not find it. Answers are
//! `{"redirect": PATH}` on success, `{"error": MESSAGE}` with a 4xx/5xx status otherwise (plus
//! `"redirect"` when the browser should go elsewhere, such as to sign in again).

use actix_session::Session;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{Passkey, PublicKeyCredential, RegisterPublicKeyCredential};

use crate::accounts::{self, AccountError, AuthMethod, NewPasskey, PasskeySignIn};
use crate::auth::attempts::{self, Counter};
use crate::auth::csrf::CsrfToken;
use crate::auth::passkeys::{credential_key, valid_name, CeremonyState, Refusal, RelyingParty, CEREMONY_LIFETIME};
use crate::auth::pending::{self, PendingSignIn};
use crate::auth::{local_next, reauth, CurrentUser};
use crate::db;
use crate::db::ceremonies::{self, NewCeremony, NotKept, Purpose};
use crate::db::events::NewEvent;
use crate::db::passkeys::{self, PasskeyRow};
use crate::error::AppError;
use crate::state::{AppState, State};
use crate::util::{duration_ms, sha256_hex};

/// Ceremonies one client address may have waiting for an answer at once.
const WAITING_PER_ADDRESS: i64 = 32;

/// What the person is told when a passkey did not sign them in (whatever the reason: which one is in
/// the audit log).
const NOT_ACCEPTED: &str = "That passkey was not accepted. Try again, or use your password.";
const EXPIRED: &str = "This passkey request has expired or was already used. Please try again.";

/// An error answer: `{"error": …}` (and `"redirect"`) with its status.
#[derive(Debug)]
pub struct JsonError {
    status: StatusCode,
    message: String,
    redirect: Option<String>,
    retry_after: Option<i64>,
}

impl JsonError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), redirect: None, retry_after: None }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// Signed out meanwhile (the session or account ended): to the sign-in page.
    fn signed_out() -> Self {
        Self {
            redirect: Some("/login".into()),
            ..Self::new(StatusCode::UNAUTHORIZED, "Your session has ended. Please sign in again.")
        }
    }

    fn locked(until: i64, now: i64) -> Self {
        Self {
            retry_after: Some(super::login::retry_after_secs(until, now)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, super::login::locked_message(until, now))
        }
    }
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    redirect: Option<&'a str>,
}

impl ResponseError for JsonError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        res.insert_header((header::CACHE_CONTROL, "no-store"));
        if let Some(secs) = self.retry_after {
            res.insert_header((header::RETRY_AFTER, secs));
        }
        let mut res = res.json(ErrorBody { error: &self.message, redirect: self.redirect.as_deref() });
        res.extensions_mut().insert(crate::error::JsonAnswer);
        res
    }
}

impl From<AppError> for JsonError {
    /// Internal errors keep their status; the words are the error pages'.
    fn from(e: AppError) -> Self {
        let status = e.status_code();
        match e {
            AppError::Unauthenticated => Self::signed_out(),
            AppError::BadRequest(m) | AppError::Forbidden(m) => Self::new(status, m),
            AppError::NotFound => Self::new(status, "Not found."),
            AppError::Unavailable => {
                Self::new(status, "The dashboard cannot reach its database right now. Please try again in a moment.")
            }
            AppError::Busy | AppError::PayloadTooLarge => Self::new(status, "Please try again in a moment."),
            AppError::Internal(cause) => {
                tracing::error!(error = %format!("{cause:#}"), "internal error");
                Self::new(status, "Something went wrong. It has been logged; please try again.")
            }
        }
    }
}

impl From<anyhow::Error> for JsonError {
    fn from(e: anyhow::Error) -> Self {
        AppError::from(e).into()
    }
}

type Answer = Result<HttpResponse, JsonError>;

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(serde_json::json!({ "redirect": to }))
}

/// A ceremony started: its id and the options for the browser.
#[derive(Serialize)]
struct Started<T> {
    ceremony: String,
    options: T,
}

/// A ceremony's answer from the browser.
#[derive(Deserialize)]
pub struct Finish<T> {
    ceremony: String,
    credential: T,
    /// Where to go once signed in or confirmed (a local path).
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct RegisterStart {
    #[serde(default)]
    name: String,
}

/// The relying party, or a `404` saying why passkeys are not available here (this server cannot
/// have them, or `DASHBOARD_MFA=off`).
fn relying_party(state: &AppState) -> Result<&RelyingParty, JsonError> {
    if !state.config.mfa.enabled() {
        return Err(JsonError::new(
            StatusCode::NOT_FOUND,
            "Second factors, passkeys included, are off on this server.",
        ));
    }
    state.passkeys.relying_party().map_err(|why| JsonError::new(StatusCode::NOT_FOUND, why))
}

/// What binds a ceremony to the browser (and session) that started it.
fn binding(csrf: &CsrfToken) -> String {
    sha256_hex(&csrf.0)
}

fn internal(e: impl std::fmt::Display) -> JsonError {
    AppError::Internal(anyhow::anyhow!("passkeys: {e}")).into()
}

/// Keeps a ceremony for its answer, and answers the browser its id and `options`.
async fn started(
    state: &AppState,
    req: &HttpRequest,
    csrf: &CsrfToken,
    (purpose, user_id): (Purpose, Option<&str>),
    ceremony: &CeremonyState,
    options: impl Serialize,
) -> Answer {
    let json = serde_json::to_string(ceremony).map_err(internal)?;
    let (binding, user_id, ip) = (binding(csrf), user_id.map(str::to_owned), state.client_ip(req));
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
        match ceremonies::insert(conn, &c, now, WAITING_PER_ADDRESS) {
            Ok(id) => Ok(Ok(id)),
            Err(NotKept::TooMany) => Ok(Err(())),
            Err(NotKept::Database(e)) => Err(e.into()),
        }
    })
    .await?;
    let id = kept.map_err(|()| {
        JsonError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many passkey requests from this address are waiting. Please finish one, or wait a few minutes.",
        )
    })?;
    Ok(HttpResponse::Ok().json(Started { ceremony: id, options }))
}

/// The ceremony's state from a taken row, if it is of the expected kind.
fn state_of(taken: Option<ceremonies::Taken>) -> Result<(Option<String>, CeremonyState), Refusal> {
    let taken = taken.ok_or(Refusal::NoCeremony)?;
    let state = serde_json::from_str(&taken.state).map_err(|_| Refusal::NoCeremony)?;
    Ok((taken.user_id, state))
}

fn stored_passkey(row: &PasskeyRow) -> Result<Passkey, JsonError> {
    serde_json::from_str(&row.credential).map_err(|e| internal(format!("passkey {} is unreadable: {e}", row.id)))
}

// ---- Adding a passkey ------------------------------------------------------------------------

/// `POST /account/passkeys/register/start` `{"name": …}`.
pub async fn register_start(
    req: HttpRequest,
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
    started(&state, &req, &csrf, (Purpose::Register, Some(&user.user_id)), &ceremony, options).await
}

/// `POST /account/passkeys/register/finish` `{"ceremony": …, "credential": …}`.
pub async fn register_finish(
    req: HttpRequest,
    user: CurrentUser,
    csrf: CsrfToken,
    body: web::Json<Finish<RegisterPublicKeyCredential>>,
    state: State,
) -> Answer {
    let rp = relying_party(&state)?;
    let Finish { ceremony, credential, .. } = body.into_inner();
    let (binding, now) = (binding(&csrf), state.now_ms());
    let taken =
        db::run(&state.pool, move |conn| Ok(ceremonies::take(conn, &ceremony, &binding, Purpose::Register, now)?))
            .await?;
    let ip = state.client_ip(&req);
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
    let (name, registration) = match state_of(taken) {
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
        ip: ip.clone(),
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

// ---- Signing in with a passkey alone -----------------------------------------------------------

/// `POST /login/passkey/start`.
pub async fn sign_in_start(req: HttpRequest, csrf: CsrfToken, state: State) -> Answer {
    let rp = relying_party(&state)?;
    let (options, authentication) = rp.start_sign_in().map_err(internal)?;
    started(&state, &req, &csrf, (Purpose::SignIn, None), &CeremonyState::SignIn(authentication), options).await
}

/// `POST /login/passkey/finish` `{"ceremony": …, "credential": …, "next": …}`: on success the
/// session is created (a new cookie) and the answer says where to go.
pub async fn sign_in_finish(
    req: HttpRequest,
    session: Session,
    csrf: CsrfToken,
    body: web::Json<Finish<PublicKeyCredential>>,
    state: State,
) -> Answer {
    let rp = relying_party(&state)?;
    let Finish { ceremony, credential, next } = body.into_inner();
    let next = local_next(next);
    let ip = state.client_ip(&req);

    // Whom the answer claims (not verified yet): it decides which counters the attempt goes on.
    let claimed = rp.identify(&credential);
    let key = claimed.as_ref().map(|(_, key)| key.clone()).ok();
    let found = match key {
        Some(key) => db::run(&state.pool, move |conn| Ok(passkeys::find_with_owner(conn, &key)?)).await?,
        None => None,
    };
    // Per address always; per user when the credential names one of ours.
    let ip_counter = Counter::ip(&state, &ip);
    let user_counter = found.as_ref().map(|(_, owner)| Counter::user(&state, &owner.username));
    let counters: Vec<Counter> = user_counter.iter().cloned().chain([ip_counter.clone()]).collect();
    let (binding, now) = (binding(&csrf), state.now_ms());
    let taken = match attempts::reserve_then(&state, &counters, move |conn| {
        ceremonies::take(conn, &ceremony, &binding, Purpose::SignIn, now)
    })
    .await?
    {
        Ok(taken) => taken,
        Err(until) => {
            tracing::warn!(client_ip = %ip, "passkey sign-in refused: locked out");
            crate::metrics::sign_in(crate::metrics::SignIn::Locked);
            return Err(JsonError::locked(until, state.now_ms()));
        }
    };

    let verified = (|| {
        let authentication = match state_of(taken)? {
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
        Ok((row, owner, passkey))
    })();
    let owner_name = found.as_ref().map(|(_, owner)| owner.username.clone());
    let (row, user, passkey) = match verified {
        Ok((_, owner, _)) if owner.is_disabled() => {
            let why = "the account is disabled";
            return Err(sign_in_failed(&state, &counters, owner_name, &ip, why, NOT_ACCEPTED).await);
        }
        Ok(verified) => verified,
        Err(why) => {
            let message = if matches!(why, Refusal::NoCeremony) { EXPIRED } else { NOT_ACCEPTED };
            return Err(sign_in_failed(&state, &counters, owner_name, &ip, &why.to_string(), message).await);
        }
    };

    let Ok(cloud_token) = super::login::cloud_at_sign_in(&state, &user, &ip).await else {
        attempts::release(&state, &counters).await?; // the passkey was right
        return Err(JsonError::new(StatusCode::UNAUTHORIZED, NOT_ACCEPTED));
    };
    let token = crate::session::prepare(&req, &session, &user.id).map_err(JsonError::from)?;
    let sign_in = PasskeySignIn {
        user_id: user.id.clone(),
        passkey_id: row.id.clone(),
        verified_credential: row.credential.clone(),
        updated_credential: serde_json::to_string(&passkey).map_err(internal)?,
        throttle_key: Counter::user(&state, &user.username).key,
        address_key: ip_counter.key.clone(),
        session: super::login::new_session(&req, &state, &token, &user, cloud_token, ip.clone(), AuthMethod::Passkey),
    };
    match db::run(&state.pool, move |conn| Ok(accounts::sign_in_with_passkey(conn, &sign_in)))
        .await
        .map_err(|e| JsonError::from(crate::session::abandoned(&session, e)))?
    {
        Ok(_) => {
            crate::session::hand_over(token);
            tracing::info!(username = %user.username, client_ip = %ip, "passkey sign-in succeeded");
            crate::metrics::sign_in(crate::metrics::SignIn::Success);
            Ok(redirect(&next))
        }
        Err(AccountError::Changed) => {
            // Disabled, or the passkey deleted or used in parallel, while it was being checked.
            crate::session::abandon(&session);
            let why = "the account or the passkey changed meanwhile";
            let user_counter = [Counter::user(&state, &user.username)];
            Err(sign_in_failed(&state, &user_counter, Some(user.username.clone()), &ip, why, NOT_ACCEPTED).await)
        }
        Err(e) => {
            crate::session::abandon(&session);
            Err(AppError::from(e).into())
        }
    }
}

/// A failed passkey sign-in: the reserved attempts stay counted, the audit log says why, the person
/// is told `message`.
async fn sign_in_failed(
    state: &AppState,
    counters: &[Counter],
    username: Option<String>,
    ip: &str,
    why: &str,
    message: &str,
) -> JsonError {
    tracing::warn!(username = username.as_deref().unwrap_or(""), client_ip = %ip, reason = %why, "passkey sign-in failed");
    crate::metrics::sign_in(crate::metrics::SignIn::Wrong);
    let mut event = NewEvent::new("sign_in_failed").ip(ip).detail(format!("passkey: {why}"));
    event.username = username;
    match attempts::fail(state, counters, event).await {
        Ok(_) => JsonError::new(StatusCode::UNAUTHORIZED, message),
        Err(e) => e.into(),
    }
}

// ---- Confirming a known user: the second step of a sign-in, re-authentication -------------------

/// Options to confirm `user_id` with one of their passkeys, kept as a ceremony for `purpose`.
async fn start_verification(
    state: &AppState,
    req: &HttpRequest,
    csrf: &CsrfToken,
    purpose: Purpose,
    user_id: &str,
) -> Answer {
    let rp = relying_party(state)?;
    let owner = user_id.to_owned();
    let rows = db::run(&state.pool, move |conn| Ok(passkeys::credentials_for_user(conn, &owner)?)).await?;
    if rows.is_empty() {
        return Err(JsonError::bad("You have no passkey yet."));
    }
    let stored = rows.iter().map(stored_passkey).collect::<Result<Vec<_>, _>>()?;
    let (options, authentication) = rp.start_verification(&stored).map_err(internal)?;
    started(state, req, csrf, (purpose, Some(user_id)), &CeremonyState::Verify(authentication), options).await
}

/// How confirming a known user with a passkey went.
enum Confirmation {
    Confirmed,
    /// Not accepted, and why (for the audit log): the reserved attempts stay counted, the caller
    /// records the failure.
    Refused(String),
    /// A counter is locked (until then, epoch ms): nothing was checked.
    Locked(i64),
}

/// Checks an answer to [`start_verification`] for the user `user_id`, after reserving an attempt on
/// `counters`, and records the passkey's use (counter, last used) if it is unchanged since it was
/// checked.
async fn confirm(
    state: &AppState,
    csrf: &CsrfToken,
    purpose: Purpose,
    user_id: &str,
    counters: &[Counter],
    answer: Finish<PublicKeyCredential>,
) -> Result<Confirmation, JsonError> {
    let rp = relying_party(state)?;
    let Finish { ceremony, credential, .. } = answer;
    let key = credential_key(&credential.raw_id);
    let (binding, now) = (binding(csrf), state.now_ms());
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
        Err(why) => return Ok(Confirmation::Refused(why.to_string())),
    };
    let updated = serde_json::to_string(&updated).map_err(internal)?;
    let now = state.now_ms();
    let used = db::run(&state.pool, move |conn| {
        Ok(passkeys::record_use(conn, &row.id, &row.user_id, &row.credential, &updated, now)?)
    })
    .await?;
    Ok(if used == 1 { Confirmation::Confirmed } else { Confirmation::Refused("the passkey changed meanwhile".into()) })
}

/// `POST /reauth/passkey/start`.
pub async fn reauth_start(req: HttpRequest, user: CurrentUser, csrf: CsrfToken, state: State) -> Answer {
    start_verification(&state, &req, &csrf, Purpose::Reauth, &user.user_id).await
}

/// `POST /reauth/passkey/finish` `{"ceremony": …, "credential": …, "next": …}`: on success the
/// re-authentication window starts again and the answer says where to go (`next`).
pub async fn reauth_finish(
    req: HttpRequest,
    user: CurrentUser,
    csrf: CsrfToken,
    body: web::Json<Finish<PublicKeyCredential>>,
    state: State,
) -> Answer {
    let ip = state.client_ip(&req);
    let next = local_next(body.next.clone());
    let counters = [Counter::user(&state, &user.username), Counter::ip(&state, &ip)];
    let refusal = match confirm(&state, &csrf, Purpose::Reauth, &user.user_id, &counters, body.into_inner()).await? {
        Confirmation::Confirmed => None,
        Confirmation::Refused(why) => Some(why),
        Confirmation::Locked(until) => return Err(JsonError::locked(until, state.now_ms())),
    };
    if let Some(why) = refusal {
        let event = NewEvent::new("reauth_failed")
            .user(&user.username)
            .session(&user.session_id)
            .ip(&ip)
            .detail(format!("passkey: {why}"));
        attempts::fail(&state, &counters, event).await?;
        tracing::warn!(username = %user.username, session = %user.session_id, reason = %why, "re-authentication with a passkey failed");
        return Err(JsonError::new(StatusCode::UNAUTHORIZED, "That passkey was not accepted. Please try again."));
    }
    attempts::release(&state, &counters).await?;
    reauth::record_reauthentication(&state, &user, AuthMethod::Passkey).await?;
    Ok(redirect(&next))
}

/// This browser's pending sign-in (the password step passed), or a `401` back to `/login`.
async fn pending_of(state: &AppState, req: &HttpRequest) -> Result<PendingSignIn, JsonError> {
    pending::current(state, req).await?.ok_or_else(|| JsonError {
        redirect: Some("/login".into()),
        ..JsonError::new(StatusCode::UNAUTHORIZED, "This sign-in has expired. Please sign in again.")
    })
}

/// `POST /login/mfa/passkey/start`: the second step of a sign-in, for the user whose password this
/// browser has just given.
pub async fn second_step_start(req: HttpRequest, csrf: CsrfToken, state: State) -> Answer {
    let pending = pending_of(&state, &req).await?;
    start_verification(&state, &req, &csrf, Purpose::SecondStep, &pending.user_id).await
}

/// `POST /login/mfa/passkey/finish` `{"ceremony": …, "credential": …}`: on success the pending
/// sign-in becomes a session (through [`pending::finish`]) and the answer says
/// where to go (the sign-in's `next`).
pub async fn second_step_finish(
    req: HttpRequest,
    session: Session,
    csrf: CsrfToken,
    body: web::Json<Finish<PublicKeyCredential>>,
    state: State,
) -> Answer {
    let pending = pending_of(&state, &req).await?;
    let ip = state.client_ip(&req);
    let counters = [Counter::user(&state, &pending.username), Counter::ip(&state, &ip)];
    let refusal =
        match confirm(&state, &csrf, Purpose::SecondStep, &pending.user_id, &counters, body.into_inner()).await? {
            Confirmation::Confirmed => None,
            Confirmation::Refused(why) => Some(why),
            Confirmation::Locked(until) => {
                // The lock ends the pending sign-in.
                pending::discard(&state, &pending).await?;
                return Err(JsonError::locked(until, state.now_ms()));
            }
        };
    if let Some(why) = refusal {
        let event =
            NewEvent::new("second_factor_failed").user(&pending.username).ip(&ip).detail(format!("passkey: {why}"));
        let locked = attempts::fail(&state, &counters, event).await?;
        tracing::warn!(username = %pending.username, client_ip = %ip, reason = %why, "second step with a passkey failed");
        crate::metrics::sign_in(crate::metrics::SignIn::SecondFactorFailed);
        if locked.is_some() {
            pending::discard(&state, &pending).await?;
            let now = state.now_ms();
            return Err(JsonError::locked(now + duration_ms(state.config.login_lockout), now));
        }
        return Err(JsonError::new(StatusCode::UNAUTHORIZED, "That passkey was not accepted. Please try again."));
    }
    attempts::release(&state, &counters[1..]).await?; // the address's; the username's is reset by the sign-in
    match pending::finish(&state, &req, &session, &pending, None, AuthMethod::Passkey).await? {
        pending::Finished::SignedIn(res) => Ok(as_json(res)),
        pending::Finished::Refused(res) => {
            // Expired, used by a parallel request, or the account changed: the passkey was right,
            // so the username's attempt is given back like the app-code step gives it back.
            attempts::release(&state, &counters[..1]).await?;
            Ok(as_json(res))
        }
        pending::Finished::CodeNotAccepted => {
            Err(AppError::Internal(anyhow::anyhow!("no code was to be spent")).into())
        }
    }
}

/// A `303` of the sign-in machinery as this API's answer: `{"redirect": LOCATION}`, with its cookies.
fn as_json(res: HttpResponse) -> HttpResponse {
    let location = res.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("/login");
    let mut out = redirect(location);
    for cookie in res.cookies() {
        let _ = out.add_cookie(&cookie);
    }
    out
}
