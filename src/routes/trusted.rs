//! Trusted browsers on `/account/security`: the list, *Forget* and *Forget all*.

use actix_web::{web, HttpResponse};

use super::security::own_of;
use super::see_other;
use crate::accounts::{self, AccountError};
use crate::auth::CurrentUser;
use crate::db::{self, trusted::TrustedBrowser};
use crate::error::AppError;
use crate::state::{ClientIp, State};
use crate::util::format_ms;

/// A trusted browser as the security page shows it.
pub struct TrustedView {
    pub id: String,
    /// The browser in words ("Firefox on Linux"), as it was when trusted.
    pub device: String,
    pub added: String,
    pub last_used: String,
    pub expires: String,
}

impl From<TrustedBrowser> for TrustedView {
    fn from(t: TrustedBrowser) -> Self {
        TrustedView {
            id: t.id,
            device: crate::user_agent::device_summary(&t.user_agent),
            added: format_ms(t.created_at),
            last_used: t.last_used_at.map_or_else(|| "never".to_owned(), format_ms),
            expires: format_ms(t.expires_at),
        }
    }
}

/// `POST /account/trusted-browsers/{id}/forget`: another user's id, or one gone, is a `404`.
pub async fn forget(
    ip: ClientIp,
    user: CurrentUser,
    id: web::Path<String>,
    state: State,
) -> Result<HttpResponse, AppError> {
    let (who, id, now) = (user.clone(), id.into_inner(), state.now_ms());
    let forgotten =
        db::run(&state.pool, move |conn| Ok(accounts::forget_trusted_browser(conn, &own_of(&who, &ip.0, now), &id)))
            .await?;
    match forgotten {
        Ok(()) => {
            tracing::info!(username = %user.username, session = %user.session_id, "a trusted browser was forgotten");
            Ok(see_other("/account/security?done=browser-forgotten"))
        }
        Err(AccountError::NothingToRemove(_)) => Err(AppError::NotFound),
        Err(e) => Err(e.into()),
    }
}

/// `POST /account/trusted-browsers/forget-all`.
pub async fn forget_all(ip: ClientIp, user: CurrentUser, state: State) -> Result<HttpResponse, AppError> {
    let (who, now) = (user.clone(), state.now_ms());
    let n =
        db::run(&state.pool, move |conn| Ok(accounts::forget_all_trusted_browsers(conn, &own_of(&who, &ip.0, now))))
            .await??;
    tracing::info!(username = %user.username, session = %user.session_id, n, "every trusted browser was forgotten");
    Ok(see_other(&format!("/account/security?done=browsers-forgotten&n={n}")))
}
