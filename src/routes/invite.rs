//! `GET /invite?token=` and `POST /invite`: the invited user sets their first password and is signed
//! in.

use actix_web::{web, HttpResponse};
use secrecy::SecretString;

use super::links::{gone, Form, LinkPasswordForm, TokenQuery};
use super::see_other;
use crate::accounts::{self, AccountError, AuthMethod, LinkPassword};
use crate::auth::csrf::CsrfToken;
use crate::db;
use crate::db::tokens::Purpose;
use crate::error::AppError;
use crate::signin::{self, Completed, Visit};
use crate::state::State;

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

pub async fn submit(visit: Visit, form: web::Form<LinkPasswordForm>) -> Result<HttpResponse, AppError> {
    let state = &visit.state;
    let LinkPasswordForm { token, new_password, confirm_password } = form.into_inner();
    let (t, now) = (token.clone(), state.now_ms());
    let user = db::run(&state.pool, move |conn| Ok(accounts::link_user(conn, &t, Purpose::Invitation, now)))
        .await?
        .map_err(gone)?;
    let min_length = state.config.password_min_length;
    if let Err(why) = accounts::check_new_password(&new_password, Some(&confirm_password), &user.username, min_length) {
        return FORM.again(&visit.csrf, why, token, user.username, min_length);
    }
    let new_hash = state.hasher.hash(SecretString::from(new_password), &visit.ip).await?;
    let change = LinkPassword { token, user_id: user.id.clone(), new_hash, ip: visit.ip.clone(), now: state.now_ms() };
    // The session row is created by the same transaction that spends the link and sets the
    // password, as the first admin's setup does.
    let completed = signin::complete(&visit, &user, AuthMethod::Password, move |conn, session| {
        Ok(accounts::accept_invitation(conn, &change, &session)?.into())
    })
    .await?;
    match completed {
        Completed::SignedIn(done) => {
            tracing::info!(username = %done.user.username, "invitation accepted; signed in");
            let must_add = state.config.mfa.requires(done.user.role());
            Ok(see_other(if must_add { "/account/security" } else { "/" }))
        }
        Completed::Refused(AccountError::LinkGone | AccountError::Changed) => Err(gone(AccountError::LinkGone)),
        Completed::Refused(other) => Err(other.into()),
        // Cloud access is required and did not answer: nothing was spent; trying again may work.
        Completed::CloudUnavailable => Err(AppError::Busy),
    }
}
