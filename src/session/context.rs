//! What the session store and the rest of a request tell each other, as typed values.
//!
//! actix-session's `SessionStore` sees only a map of strings and a key, never the request. Rather
//! than smuggle typed values through that map under magic keys, each request of the session scope
//! runs inside [`scope`], which gives it one [`RequestSession`] slot (a task-local: the store's
//! `load` and `save` run inside the same future as the handler, in the session middleware):
//!
//! - `load` puts the [`CurrentUser`] it read there, and the guard moves it into the request;
//! - `load` notes when the cookie (it decrypted with our key, or the store would not be asked) named
//!   a session that has expired or was ended, for the sign-in page's notice;
//! - a handler that started or renewed a session (through the accounts service, which wrote the row
//!   in its own transaction) leaves the new token there for `save` to hand to the cookie.

use std::cell::RefCell;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use secrecy::SecretString;

use super::CurrentUser;

/// What the store's `load` found for this request. Moved once per request, from the store to the
/// guard: boxing the live session would cost an allocation on every signed-in request instead.
#[derive(Debug, Default)]
#[allow(clippy::large_enum_variant)]
pub enum Loaded {
    /// No session cookie of ours (an anonymous visitor), or `load` was not asked.
    #[default]
    Nothing,
    /// A live session.
    Live(CurrentUser),
    /// The cookie was ours but named a session that expired or was ended.
    Ended,
    /// The session could not be read: the database is unavailable.
    Unavailable,
}

#[derive(Default)]
pub struct RequestSession {
    loaded: Loaded,
    issued: Option<SecretString>,
}

tokio::task_local! {
    static REQUEST: RefCell<RequestSession>;
}

/// Middleware around the session middleware: gives the request its slot.
pub async fn scope(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    REQUEST.scope(RefCell::new(RequestSession::default()), next.call(req)).await
}

fn with<T>(f: impl FnOnce(&mut RequestSession) -> T) -> Option<T> {
    REQUEST.try_with(|slot| f(&mut slot.borrow_mut())).ok()
}

/// For the store's `load`: what it found.
pub(super) fn set_loaded(loaded: Loaded) {
    with(|s| s.loaded = loaded);
}

/// For the guard: what `load` found, taken once.
pub fn take_loaded() -> Loaded {
    with(|s| std::mem::take(&mut s.loaded)).unwrap_or_default()
}

/// For a handler: the token of the session row it just created or rotated; `save` gives it to the
/// cookie.
pub(super) fn set_issued(token: SecretString) {
    with(|s| s.issued = Some(token));
}

/// For the store's `save`: the token a handler issued in this request, if any.
pub(super) fn take_issued() -> Option<SecretString> {
    with(|s| s.issued.take()).flatten()
}
