//! The end of every sign-in: what a session needs (the cloud token, the row with the cap and the
//! new-device check inside the accounts service's transaction), the cookie, the log and the metrics.

use actix_web::http::header;
use actix_web::HttpMessage;

use super::Visit;
use crate::accounts::{AccountError, AuthMethod, CloudGrant, NewSession};
use crate::db::events::{self, NewEvent};
use crate::db::users::{Role, User};
use crate::db::{self, DbConn};
use crate::error::AppError;
use crate::metrics::{self, SignIn};

/// What the completing transaction gives back: the user as it signed in and, after a recovery
/// code, how many are left.
pub struct Done {
    pub user: User,
    pub recovery_codes_left: Option<i64>,
}

impl From<User> for Done {
    fn from(user: User) -> Self {
        Done { user, recovery_codes_left: None }
    }
}

/// Who is signing in: the account, or the one its transaction is about to create (the first
/// admin).
#[derive(Clone, Copy)]
pub struct Who<'a> {
    pub id: &'a str,
    pub username: &'a str,
    pub role: Role,
}

impl<'a> From<&'a User> for Who<'a> {
    fn from(user: &'a User) -> Self {
        Who { id: &user.id, username: &user.username, role: user.role() }
    }
}

/// How a completion ended.
pub enum Completed {
    /// Signed in: the row is written and the response's cookie carries its token.
    SignedIn(Done),
    /// The transaction refused (the account, the pending sign-in, the code or the passkey changed
    /// meanwhile): nothing was written and the request is signed out.
    Refused(AccountError),
    /// Cloud access is required and could not be had (logged and recorded): nobody is signed in.
    CloudUnavailable,
}

/// Signs `user` in on this request with `method`: obtains the cloud token (when cloud access is
/// configured) only now that who it is has been proven, then runs `write` — one of the accounts
/// service's sign-in transactions, which re-checks what the proof relied on and creates the
/// session row from the [`NewSession`] it is given — and hands the new token to the cookie.
pub async fn complete<'a, F>(
    visit: &Visit,
    who: impl Into<Who<'a>>,
    method: AuthMethod,
    write: F,
) -> Result<Completed, AppError>
where
    F: FnOnce(&mut DbConn, NewSession) -> Result<Done, AccountError> + Send + 'static,
{
    let (state, user) = (&visit.state, who.into());
    let cloud_token = match state.cloud.as_ref() {
        None => None,
        Some(cloud) => match cloud.obtain(user.role).await {
            Ok(token) => Some(token),
            Err(e) if cloud.required => {
                tracing::warn!(username = %user.username, client_ip = %visit.ip, error = %e, "sign-in refused: cloud access unavailable");
                let event = NewEvent::new("sign_in_failed")
                    .user(user.username)
                    .ip(&visit.ip)
                    .detail("cloud access unavailable");
                events::log(&state.pool, event).await;
                metrics::sign_in(SignIn::Refused);
                return Ok(Completed::CloudUnavailable);
            }
            Err(e) => {
                tracing::warn!(username = %user.username, error = %e, "cloud access unavailable at sign-in; will retry");
                None
            }
        },
    };
    let token = crate::session::prepare(&visit.req, &visit.session, user.id)?;
    // Where sessions are device-bound, the browser is asked to register a key with the answer.
    let registration = crate::auth::dbsc::Registration::offer(state);
    let cloud = cloud_token.zip(state.cloud.as_ref()).map(|(t, cloud)| CloudGrant {
        sealed_token: cloud.seal(&token.row.public_id, &t.access_token),
        role: user.role.as_str().to_owned(),
        expires_at: t.expires_at,
    });
    let user_agent = visit.req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let session = NewSession {
        token: token.row.clone(),
        ip: visit.ip.clone(),
        user_agent: user_agent.to_owned(),
        cloud,
        timeouts: state.config.timeouts,
        now: state.now_ms(),
        auth_method: method,
        dbsc_challenge: registration.as_ref().map(|r| r.0.clone()),
    };
    let written = db::run(&state.pool, move |conn| Ok(write(conn, session)))
        .await
        .map_err(|e| crate::session::abandoned(&visit.session, e))?;
    match written {
        Ok(done) => {
            crate::session::hand_over(token);
            if let Some(registration) = registration {
                visit.req.extensions_mut().insert(registration);
            }
            tracing::info!(username = %done.user.username, client_ip = %visit.ip, method = method.as_str(), "sign-in succeeded");
            metrics::sign_in(SignIn::Success);
            Ok(Completed::SignedIn(done))
        }
        Err(AccountError::Database(e)) => {
            crate::session::abandon(&visit.session);
            Err(AppError::Internal(e.into()))
        }
        Err(refused) => {
            crate::session::abandon(&visit.session);
            tracing::warn!(username = %user.username, client_ip = %visit.ip, why = %refused, "sign-in refused at its completion");
            Ok(Completed::Refused(refused))
        }
    }
}
