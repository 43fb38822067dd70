//! What the session store and the rest of a request tell each other, as typed values.
//!
//! actix-session's `SessionStore` sees only a map of strings and a key, never the request. Rather
//! than smuggle typed values through that map under magic keys, each request of the session scope
//! runs inside [`scope`], which gives it one [`RequestSession`] slot (a task-local: the store's
//! `load` and `save` run inside the same future as the handler, in the session middleware):
//!
//! - `load` puts the [`LiveSession`] it read there, and the guard moves it into the request;
//! - `load` notes when the cookie (it decrypted with our key, or the store would not be asked) named
//!   a session that has expired or was ended, for the sign-in page's notice;
//! - a handler that started or renewed a session (through the accounts service, which wrote the row
//!   in its own transaction) leaves the new token there for `save` to hand to the cookie.

use std::cell::RefCell;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use secrecy::SecretString;

use super::LiveSession;

#[derive(Default)]
pub struct RequestSession {
    loaded: Option<LiveSession>,
    named_ended_session: bool,
    database_unavailable: bool,
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

/// For the store's `load`: the live session it found.
pub(super) fn set_loaded(live: LiveSession) {
    with(|s| s.loaded = Some(live));
}

/// For the store's `load`: the cookie named a session that is no longer live.
pub(super) fn set_named_ended_session() {
    with(|s| s.named_ended_session = true);
}

/// For the guard: the live session `load` found, taken once.
pub fn take_loaded() -> Option<LiveSession> {
    with(|s| s.loaded.take()).flatten()
}

/// True when this request's cookie was ours but named a session that expired or was ended.
pub fn named_ended_session() -> bool {
    with(|s| s.named_ended_session).unwrap_or(false)
}

/// For the store's `load`: the session could not be read because the database is unavailable.
pub(super) fn set_database_unavailable() {
    with(|s| s.database_unavailable = true);
}

/// True when this request's session could not be read: the database is unavailable.
pub fn database_unavailable() -> bool {
    with(|s| s.database_unavailable).unwrap_or(false)
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
