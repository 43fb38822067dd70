//! `/account/security` and what it leads to: the authenticator app (set up with a QR code, turned
//! off), recovery codes, removing passkeys. (Adding and using passkeys is the WebAuthn code's.)
//! Every `POST` here is a sensitive action (see the route table). With `DASHBOARD_MFA=off` these
//! pages answer `404` (the policy middleware, [`crate::auth::guard::second_factor_policy`]).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{filters, render, see_other, Done, Layout};
use crate::accounts::{self, Own};
use crate::auth::csrf::CsrfToken;
use crate::auth::{recovery, totp, CurrentUser};
use crate::db::{self, factors, passkeys};
use crate::error::AppError;
use crate::state::ClientIp;
use crate::state::State;
use crate::util::format_ms;

/// How long a set-up page's secret may be confirmed.
const SETUP_LIFETIME_MS: i64 = 10 * 60 * 1000;

struct PasskeyView {
    id: String,
    name: String,
    added: String,
    last_used: String,
}

#[derive(Template)]
#[template(path = "account_security.html")]
struct SecurityPage {
    layout: Layout,
    totp: bool,
    passkeys: Vec<PasskeyView>,
    recovery_codes_left: i64,
    /// The policy requires a factor and the user has none.
    required: bool,
    /// Why passkeys cannot be added on this server, if they cannot (see [`crate::auth::passkeys`]).
    passkeys_off: Option<String>,
    /// The browsers the user trusts to skip the second factor.
    trusted: Vec<super::trusted::TrustedView>,
    /// Trusting browsers is on (`DASHBOARD_TRUST_BROWSER_DAYS` is not `0`).
    trust_on: bool,
}

pub async fn show(
    user: CurrentUser,
    csrf: CsrfToken,
    done: web::Query<Done>,
    state: State,
) -> Result<HttpResponse, AppError> {
    let id = user.user_id.clone();
    let now = state.now_ms();
    let (keys, left, factors, trusted) = db::run(&state.pool, move |conn| {
        Ok((
            passkeys::list_for_user(conn, &id)?,
            factors::recovery_codes_left(conn, &id)?,
            factors::factors_of(conn, &id)?,
            crate::db::trusted::list_live(conn, &id, now)?,
        ))
    })
    .await?;
    let trusted = trusted.into_iter().map(super::trusted::TrustedView::from).collect();
    let trust_on = state.config.trust_browser_days > 0;
    let passkeys = keys
        .into_iter()
        .map(|k| PasskeyView {
            id: k.id,
            name: k.name,
            added: format_ms(k.created_at),
            last_used: k.last_used_at.map_or_else(|| "never".to_owned(), format_ms),
        })
        .collect();
    let required = state.config.mfa.requires(user.role) && !factors.any();
    let mut layout = Layout::new(Some(user), &csrf);
    layout.success = done.message();
    if required {
        layout.notice =
            Some("Your account must have a second factor. Add an authenticator app or a passkey to go on.".into());
    }
    let passkeys_off = state.passkeys.relying_party().err().map(str::to_owned);
    let page = SecurityPage {
        layout,
        totp: factors.totp,
        passkeys,
        recovery_codes_left: left,
        required,
        passkeys_off,
        trusted,
        trust_on,
    };
    render(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "account_totp.html")]
struct TotpPage {
    layout: Layout,
    qr_svg: String,
    secret: String,
    setup: String,
    replacing: bool,
}

/// The set-up page for `secret`, its sealed copy in the form (bound to the user and to the app's
/// state now — its factor epoch — and expiring).
async fn totp_page(
    state: &State,
    user: CurrentUser,
    csrf: &CsrfToken,
    status: StatusCode,
    secret: &[u8],
    expires_at: i64,
    error: Option<String>,
) -> Result<HttpResponse, AppError> {
    let url = totp::otpauth_url(secret, &user.username)
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("cannot build the otpauth URL")))?;
    let qr_svg = totp::qr_svg(&url).ok_or_else(|| AppError::Internal(anyhow::anyhow!("cannot draw the QR code")))?;
    let secret_text = totp::base32(secret);
    let id = user.user_id.clone();
    let epoch = db::run(&state.pool, move |conn| Ok(crate::db::users::find_by_id(conn, &id)?))
        .await?
        .ok_or(AppError::Unauthenticated)?
        .factor_epoch;
    let setup = state.totp_setup_seal.seal(&user.user_id, format!("{epoch}:{expires_at}:{secret_text}").as_bytes());
    let replacing = user.has_totp;
    let mut layout = Layout::new(Some(user), csrf);
    layout.error = error;
    render(status, &TotpPage { layout, qr_svg, secret: secret_text, setup, replacing })
}

pub async fn totp_form(user: CurrentUser, csrf: CsrfToken, state: State) -> Result<HttpResponse, AppError> {
    let expires_at = state.now_ms() + SETUP_LIFETIME_MS;
    totp_page(&state, user, &csrf, StatusCode::OK, &totp::new_secret(), expires_at, None).await
}

#[derive(Deserialize)]
pub struct TotpForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    setup: String,
}

/// What a set-up form carries, while it has not expired.
struct Setup {
    secret: Vec<u8>,
    expires_at: i64,
    /// The user's factor epoch when it was made.
    epoch: i32,
}

fn open_setup(state: &State, user_id: &str, setup: &str, now: i64) -> Option<Setup> {
    let plain = String::from_utf8(state.totp_setup_seal.open(user_id, setup)?).ok()?;
    let mut parts = plain.splitn(3, ':');
    let epoch: i32 = parts.next()?.parse().ok()?;
    let expires_at: i64 = parts.next()?.parse().ok()?;
    let secret = totp::decode_base32(parts.next()?)?;
    (now < expires_at).then_some(Setup { secret, expires_at, epoch })
}

#[derive(Template)]
#[template(path = "recovery_codes.html")]
struct CodesPage {
    layout: Layout,
    codes: Vec<String>,
    /// Why they are shown.
    intro: &'static str,
}

/// Turns the app on after a right code for the secret of the set-up form.
pub async fn totp_enable(
    ip: ClientIp,
    user: CurrentUser,
    csrf: CsrfToken,
    form: web::Form<TotpForm>,
    state: State,
) -> Result<HttpResponse, AppError> {
    let now = state.now_ms();
    let expired = |state: State, user: CurrentUser, csrf: CsrfToken| async move {
        let message = "That set-up has expired. Here is a new secret: add it to your app again.".to_owned();
        let expires_at = now + SETUP_LIFETIME_MS;
        totp_page(&state, user, &csrf, StatusCode::BAD_REQUEST, &totp::new_secret(), expires_at, Some(message)).await
    };
    let Some(Setup { secret, expires_at, epoch }) = open_setup(&state, &user.user_id, &form.setup, now) else {
        return expired(state, user, csrf).await;
    };
    let Some(step) = totp::matching_step(&secret, &form.code, now) else {
        let message = "That code is not right. Check the time on your phone and enter the code the app shows now.";
        return totp_page(&state, user, &csrf, StatusCode::BAD_REQUEST, &secret, expires_at, Some(message.into()))
            .await;
    };
    let sealed = state.totp_seal.seal(&user.user_id, &secret);
    let codes = recovery::generate();
    let hashes = hashes_of(&user.user_id, &codes);
    let (uid, sid, ip) = (user.user_id.clone(), user.session_id.clone(), ip.0);
    let enabled = db::run(&state.pool, move |conn| {
        let own = Own { user_id: &uid, session_id: &sid, ip: &ip, now };
        Ok(accounts::enable_totp(conn, &own, epoch, &sealed, step, &hashes))
    })
    .await?;
    let codes_made = match enabled {
        Err(accounts::AccountError::SetupStale) => {
            tracing::warn!(username = %user.username, session = %user.session_id, "a stale authenticator-app set-up was refused");
            return expired(state, user, csrf).await;
        }
        other => other?,
    };
    tracing::info!(username = %user.username, session = %user.session_id, codes_made, "authenticator app turned on");
    if !codes_made {
        return Ok(see_other("/account/security?done=totp-enabled"));
    }
    let mut layout = Layout::new(Some(user), &csrf);
    layout.success = Some("The authenticator app is on.".into());
    let intro = "Keep these recovery codes somewhere safe: each signs you in once if you lose your phone.";
    render(StatusCode::OK, &CodesPage { layout, codes, intro })
}

fn hashes_of(user_id: &str, codes: &[String]) -> Vec<String> {
    codes.iter().filter_map(|c| recovery::normalize(c)).map(|n| recovery::hash(user_id, &n)).collect()
}

/// The "end my other sessions" checkbox (on by default in the forms).
#[derive(Deserialize)]
pub struct EndOthersForm {
    end_others: Option<String>,
}

impl EndOthersForm {
    fn asked(&self) -> bool {
        self.end_others.as_deref() == Some("yes")
    }
}

pub(super) fn own_of<'a>(user: &'a CurrentUser, ip: &'a str, now: i64) -> Own<'a> {
    Own { user_id: &user.user_id, session_id: &user.session_id, ip, now }
}

pub async fn totp_disable(
    ip: ClientIp,
    user: CurrentUser,
    form: web::Form<EndOthersForm>,
    state: State,
) -> Result<HttpResponse, AppError> {
    let (ip, now, asked) = (ip.0, state.now_ms(), form.asked());
    let who = user.clone();
    let ended =
        db::run(&state.pool, move |conn| Ok(accounts::disable_totp(conn, &own_of(&who, &ip, now), asked))).await??;
    tracing::info!(username = %user.username, session = %user.session_id, ended, "authenticator app turned off");
    Ok(see_other(&format!("/account/security?done=totp-disabled&n={ended}")))
}

pub async fn new_recovery_codes(
    ip: ClientIp,
    user: CurrentUser,
    csrf: CsrfToken,
    form: web::Form<EndOthersForm>,
    state: State,
) -> Result<HttpResponse, AppError> {
    let (ip, now, asked) = (ip.0, state.now_ms(), form.asked());
    let codes = recovery::generate();
    let hashes = hashes_of(&user.user_id, &codes);
    let who = user.clone();
    let ended = db::run(&state.pool, move |conn| {
        Ok(accounts::new_recovery_codes(conn, &own_of(&who, &ip, now), &hashes, asked))
    })
    .await??;
    tracing::info!(username = %user.username, session = %user.session_id, ended, "new recovery codes");
    let mut layout = Layout::new(Some(user), &csrf);
    layout.success = Some(match ended {
        0 => "New recovery codes were made; the old ones no longer work.".to_owned(),
        n => format!(
            "New recovery codes were made; the old ones no longer work. Ended {}.",
            crate::util::count(n, "other session")
        ),
    });
    let intro = "Keep these recovery codes somewhere safe: each signs you in once if you lose your phone or passkey.";
    render(StatusCode::OK, &CodesPage { layout, codes, intro })
}

pub async fn delete_passkey(
    ip: ClientIp,
    user: CurrentUser,
    id: web::Path<String>,
    form: web::Form<EndOthersForm>,
    state: State,
) -> Result<HttpResponse, AppError> {
    let (ip, now, asked, id) = (ip.0, state.now_ms(), form.asked(), id.into_inner());
    let who = user.clone();
    let ended =
        db::run(&state.pool, move |conn| Ok(accounts::delete_passkey(conn, &own_of(&who, &ip, now), &id, asked)))
            .await??;
    tracing::info!(username = %user.username, session = %user.session_id, ended, "passkey removed");
    Ok(see_other(&format!("/account/security?done=passkey-deleted&n={ended}")))
}
