//! Signing in, in one place. Every way to begin a sign-in (a password, a passkey alone) and every
//! second step (an app code, a recovery code, a passkey) goes through here, and every one of them
//! ends in the same completion ([`complete`]): the cloud token, the session row with the per-user
//! cap and the new-device check, the counters, the event, the metrics. The answer is an
//! [`Outcome`], which the handlers turn into a page or a JSON answer; nothing here writes HTTP.
//!
//! One failed-attempt policy holds for every step: an attempt is reserved on the username's and the
//! address's counters before anything is checked ([`crate::auth::attempts`]), a failure keeps it,
//! a success gives it back (and resets the username's, with the growth of its locks); a lock is
//! answered as [`Outcome::Locked`] wherever it is met, and ends a pending sign-in.

mod complete;
mod passkey;
mod password;
pub mod pending;
mod second_step;
mod sign_out;
pub mod trust;

pub use complete::{complete, Completed, Done, Who};
pub use passkey::with_passkey;
pub use password::with_password;
pub use pending::PendingSignIn;
pub use second_step::{with_code, with_second_passkey};
pub use sign_out::sign_out;

use actix_session::{Session, SessionExt};
use actix_web::cookie::Cookie;
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};

use crate::auth::csrf::CsrfToken;
use crate::error::AppError;
use crate::state::State;

/// The request a sign-in runs in: the app, the request (its user agent, the session middleware's
/// state), the client's address, and the browser it is bound to.
pub struct Visit {
    pub state: State,
    pub req: HttpRequest,
    pub session: Session,
    pub ip: String,
    /// A hash of the browser's CSRF token (derived from its visitor cookie): what the pending
    /// sign-in and the passkey ceremonies of this browser are bound to.
    pub browser: String,
    pub csrf: CsrfToken,
}

impl FromRequest for Visit {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let visit = (|| {
            let state = req
                .app_data::<State>()
                .cloned()
                .ok_or_else(|| AppError::Internal(anyhow::anyhow!("app state missing")))?;
            let csrf = req
                .extensions()
                .get::<CsrfToken>()
                .cloned()
                .ok_or_else(|| AppError::Internal(anyhow::anyhow!("CSRF middleware not installed")))?;
            Ok(Visit {
                ip: state.client_ip(req),
                browser: crate::auth::ceremonies::binding(&csrf),
                session: req.get_session(),
                req: req.clone(),
                state,
                csrf,
            })
        })();
        std::future::ready(visit)
    }
}

/// How a sign-in step ended.
#[derive(Debug)]
pub enum Outcome {
    /// Signed in (the session cookie goes with the answer): on to `next`; with the trusted-browser
    /// cookie to set when the person asked to trust this browser.
    SignedIn {
        next: String,
        trusted: Option<Cookie<'static>>,
    },
    /// The first step passed and a second factor is needed: the pending sign-in's cookie, then
    /// `/login/mfa`.
    SecondStep {
        cookie: Cookie<'static>,
    },
    /// A counter is locked until then (epoch ms): nothing was checked, or this failure locked it.
    /// A pending sign-in is over.
    Locked {
        until: i64,
    },
    Refused(Refused),
}

/// Why a step did not sign in (the audit log has the details; the person is told less).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Wrong credentials, an unknown or disabled account, one that changed meanwhile, or cloud
    /// access required and unavailable: the one answer for all of them.
    Invalid,
    /// A passkey answer to a ceremony that expired, was used, or is another browser's.
    CeremonyGone,
    /// The second factor was not right; the pending sign-in goes on.
    WrongFactor,
    /// There is no pending sign-in for this browser (none, expired, used, the account changed):
    /// start again at `/login`.
    StartAgain,
}
