//! `GET /invite?token=` and `POST /invite`: the invited user sets their first password and is signed
//! in.

use actix_session::Session;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::SecretString;

use super::links::{gone, Form, LinkPasswordForm, TokenQuery};
use super::see_other;
use crate::accounts::{self, AccountError, AuthMethod, LinkPassword, NewSession};
use crate::auth::csrf::CsrfToken;
use crate::db::tokens::Purpose;
use crate::db::{self, users};
use crate::error::AppError;
use crate::state::{AppState, State};

const FORM: Form = Form {
    heading: "Welcome",
    intro: "Choose the password of your new account.",
    button: "Set password and sign in",
    action: "/invite",
};

pub async fn form(query: web::Query<TokenQuery>, csrf: CsrfToken, state: State) -> Result<HttpResponse, AppError> {
    let token = query.into_inner().token;
    let (t, now) = (token.clone(), state.now_ms());
    let user = db::run(&state.pool, move |conn| Ok(accounts::link_user(conn, &t, Purpose::Invitation, now))).await?;
    let user = user.map_err(gone)?;
    FORM.show(&csrf, token, user.username, state.config.password_min_length)
}

pub async fn submit(
    req: HttpRequest,
    form: web::Form<LinkPasswordForm>,
    session: Session,
    csrf: CsrfToken,
    state: State,
) -> Result<HttpResponse, AppError> {
    let LinkPasswordForm { token, new_password, confirm_password } = form.into_inner();
    let (t, now) = (token.clone(), state.now_ms());
    let user = db::run(&state.pool, move |conn| Ok(accounts::link_user(conn, &t, Purpose::Invitation, now)))
        .await?
        .map_err(gone)?;
    let min_length = state.config.password_min_length;
    if let Err(why) = accounts::check_new_password(&new_password, Some(&confirm_password), &user.username, min_length) {
        return FORM.again(&csrf, why, token, user.username, min_length);
    }
    let ip = state.client_ip(&req);
    let new_hash = state.hasher.hash(SecretString::from(new_password), &ip).await?;
    let change = LinkPassword { token, user_id: user.id.clone(), new_hash, ip: ip.clone(), now: state.now_ms() };
    sign_in_invited(&req, &session, &state, &user, change).await
}

/// Accepts the invitation and signs the user in, as the first admin's setup does: the session row is
/// created by the same transaction that spends the link and sets the password.
async fn sign_in_invited(
    req: &HttpRequest,
    session: &Session,
    state: &AppState,
    user: &users::User,
    change: LinkPassword,
) -> Result<HttpResponse, AppError> {
    let token = crate::session::prepare(req, session, &user.id)?;
    let user_agent = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let new_session = NewSession {
        token: token.row.clone(),
        ip: change.ip.clone(),
        user_agent,
        cloud: None,
        timeouts: state.config.timeouts,
        now: change.now,
        auth_method: AuthMethod::Password,
    };
    let accepted = db::run(&state.pool, move |conn| Ok(accounts::accept_invitation(conn, &change, &new_session)))
        .await
        .map_err(|e| crate::session::abandoned(session, e))?;
    match accepted {
        Ok(user) => {
            crate::session::hand_over(token);
            tracing::info!(username = %user.username, "invitation accepted; signed in");
            crate::metrics::sign_in(crate::metrics::SignIn::Success);
            let must_add = state.config.mfa.requires(user.role());
            Ok(see_other(if must_add { "/account/security" } else { "/" }))
        }
        Err(e) => {
            crate::session::abandon(session);
            Err(match e {
                AccountError::LinkGone | AccountError::Changed => gone(AccountError::LinkGone),
                other => other.into(),
            })
        }
    }
}
