//! Device-bound sessions (W3C Device Bound Session Credentials, as Chromium speaks it): at sign-in
//! the browser is asked to register a key it keeps (`Secure-Session-Registration`); it answers with
//! an ES256 JWT (`typ: dbsc+jwt`) carrying the public key as a JWK and the challenge as `jti`. From
//! then on the session works only with a short-lived bound cookie, renewed only at the refresh
//! endpoint by a JWT signed with that key over a fresh challenge (`Secure-Session-Challenge`), the
//! cookie and the challenge rotated at every refresh. A copied cookie works until it expires and
//! cannot be renewed elsewhere. Everything is kept in the session's row ([`crate::db::sessions::dbsc`]).
//! JWTs are read and checked by `jsonwebtoken`.

use std::collections::HashSet;

use actix_web::cookie::{Cookie, SameSite};
use diesel::Connection;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::db::{self, sessions::dbsc};
use crate::error::AppError;
use crate::session::CurrentUser;
use crate::state::AppState;
use crate::util::{duration_ms, random_alphanumeric, random_b64, sha256_hex};

/// The bound cookie (served only over `https://`, so always `__Host-`).
pub const COOKIE: &str = "__Host-dashboard_bound";
pub const REGISTER_PATH: &str = "/login/dbsc/register";
pub const REFRESH_PATH: &str = "/login/dbsc/refresh";

/// A registration offered to the browser at sign-in: its challenge (for the answer's header).
#[derive(Clone, Debug)]
pub struct Registration(pub String);

impl Registration {
    /// A fresh registration challenge, when sessions are device-bound here.
    pub fn offer(state: &AppState) -> Option<Self> {
        state.config.dbsc_cookie_ttl.map(|_| Registration(random_b64(32)))
    }

    /// The `Secure-Session-Registration` header's value.
    pub fn header(&self) -> String {
        format!("(ES256);path=\"{REGISTER_PATH}\";challenge=\"{}\"", self.0)
    }
}

/// A signed request that was not accepted, and why (for the log and the audit event).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("no signed answer")]
    Unsigned,
    #[error("the answer is not an ES256 dbsc+jwt: {0}")]
    Malformed(String),
    #[error("the signature does not verify: {0}")]
    BadSignature(String),
    #[error("the challenge is not the session's current one")]
    WrongChallenge,
    #[error("no such live session")]
    NoSession,
    #[error("the session is bound already")]
    AlreadyBound,
    #[error("the session is not bound")]
    NotBound,
}

#[derive(Deserialize)]
struct Claims {
    jti: String,
}

/// Checks `jwt` (from `Secure-Session-Response`): an ES256 `dbsc+jwt` signed with `key` (the
/// stored JWK) or, at registration (`key` is `None`), with the JWK its header carries. Returns the
/// challenge it answers (`jti`) and the key it was checked with (as JSON).
pub fn verify(jwt: &str, key: Option<&str>) -> Result<(String, String), Refusal> {
    let header = jsonwebtoken::decode_header(jwt).map_err(|e| Refusal::Malformed(e.to_string()))?;
    if header.alg != Algorithm::ES256 || !header.typ.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("dbsc+jwt")) {
        return Err(Refusal::Malformed(format!("alg {:?}, typ {:?}", header.alg, header.typ)));
    }
    let jwk: Jwk = match key {
        Some(stored) => serde_json::from_str(stored).map_err(|e| Refusal::Malformed(format!("stored key: {e}")))?,
        None => header.jwk.ok_or_else(|| Refusal::Malformed("no jwk in the registration".into()))?,
    };
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| Refusal::Malformed(e.to_string()))?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.required_spec_claims = HashSet::new();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let data = jsonwebtoken::decode::<Claims>(jwt, &decoding, &validation)
        .map_err(|e| Refusal::BadSignature(e.to_string()))?;
    let key_json = serde_json::to_string(&jwk).map_err(|e| Refusal::Malformed(e.to_string()))?;
    Ok((data.claims.jti, key_json))
}

/// A new bound cookie: its value's hash and expiry for the row, and the cookie.
fn new_cookie(state: &AppState, ttl: std::time::Duration) -> (String, i64, Cookie<'static>) {
    let value = random_alphanumeric(43);
    let hash = sha256_hex(&value);
    let cookie = Cookie::build(COOKIE, value)
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::seconds(ttl.as_secs() as i64))
        .finish();
    (hash, state.now_ms() + duration_ms(ttl), cookie)
}

/// The session configuration the browser is answered after a registration or a refresh.
pub fn session_config(session_id: &str) -> serde_json::Value {
    serde_json::json!({
        "session_identifier": session_id,
        "refresh_url": REFRESH_PATH,
        "scope": { "include_site": false, "scope_specification": [] },
        "credentials": [{
            "type": "cookie",
            "name": COOKIE,
            "attributes": "Path=/; Secure; HttpOnly; SameSite=Lax",
        }],
    })
}

/// Whether the request may use `user`'s session: always for a session not bound; for a bound one,
/// only with its current bound cookie, unexpired.
pub fn admits(user: &CurrentUser, presented: Option<&str>, now: i64) -> bool {
    let Some(bound) = &user.bound else { return true };
    let Some(value) = presented else { return false };
    bound.expires_at > now && bool::from(sha256_hex(value).as_bytes().ct_eq(bound.cookie_hash.as_bytes()))
}

fn ttl(state: &AppState) -> Result<std::time::Duration, AppError> {
    state.config.dbsc_cookie_ttl.ok_or(AppError::NotFound)
}

/// Registers the key of the signed-in session `user`: `jwt` must be signed with the key it carries
/// and answer the challenge offered at sign-in. Returns the first bound cookie.
pub async fn register(
    state: &AppState,
    user: &CurrentUser,
    jwt: Option<&str>,
) -> Result<Result<Cookie<'static>, Refusal>, AppError> {
    let ttl = ttl(state)?;
    let Some(jwt) = jwt else { return Ok(Err(Refusal::Unsigned)) };
    let (challenge, key) = match verify(jwt, None) {
        Ok(checked) => checked,
        Err(why) => return Ok(Err(why)),
    };
    let (hash, expires_at, cookie) = new_cookie(state, ttl);
    let (id, now) = (user.session_id.clone(), state.now_ms());
    let outcome = db::run(&state.pool, move |conn| {
        Ok(conn.transaction(|conn| {
            if !dbsc::take_challenge(conn, &id, &challenge, now)? {
                return Ok::<_, diesel::result::Error>(Err(Refusal::WrongChallenge));
            }
            if !dbsc::bind(conn, &id, &key, &hash, expires_at, now)? {
                return Ok(Err(Refusal::AlreadyBound));
            }
            Ok(Ok(()))
        })?)
    })
    .await?;
    Ok(outcome.map(|()| cookie))
}

/// How a refresh request was answered.
pub enum Refreshed {
    /// Not signed: the challenge to sign (answered `403` with `Secure-Session-Challenge`).
    Challenge(String),
    /// Signed right: a new bound cookie.
    Renewed(Cookie<'static>),
    Refused(Refusal),
}

/// A refresh of the bound session `session_id`: without a signature, a new challenge; with one over
/// the current challenge, signed by the session's key, a new cookie (and the challenge is spent).
pub async fn refresh(state: &AppState, session_id: &str, jwt: Option<&str>) -> Result<Refreshed, AppError> {
    let ttl = ttl(state)?;
    let (id, now) = (session_id.to_owned(), state.now_ms());
    let found = db::run(&state.pool, move |conn| Ok(dbsc::binding(conn, &id, now)?)).await?;
    let Some(binding) = found else { return Ok(Refreshed::Refused(Refusal::NoSession)) };
    let Some(key) = binding.key else { return Ok(Refreshed::Refused(Refusal::NotBound)) };
    let Some(jwt) = jwt else {
        let (id, challenge) = (session_id.to_owned(), random_b64(32));
        let c = challenge.clone();
        let set = db::run(&state.pool, move |conn| Ok(dbsc::set_challenge(conn, &id, &c, now)?)).await?;
        return Ok(if set == 1 { Refreshed::Challenge(challenge) } else { Refreshed::Refused(Refusal::NoSession) });
    };
    let challenge = match verify(jwt, Some(&key)) {
        Ok((challenge, _)) => challenge,
        Err(why) => return Ok(Refreshed::Refused(why)),
    };
    let (hash, expires_at, cookie) = new_cookie(state, ttl);
    let id = session_id.to_owned();
    let renewed = db::run(&state.pool, move |conn| {
        Ok(conn.transaction(|conn| {
            if !dbsc::take_challenge(conn, &id, &challenge, now)? {
                return Ok::<_, diesel::result::Error>(Err(Refusal::WrongChallenge));
            }
            if !dbsc::rotate_cookie(conn, &id, &hash, expires_at, now)? {
                return Ok(Err(Refusal::NoSession));
            }
            Ok(Ok(()))
        })?)
    })
    .await?;
    Ok(match renewed {
        Ok(()) => Refreshed::Renewed(cookie),
        Err(why) => Refreshed::Refused(why),
    })
}
