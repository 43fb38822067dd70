//! `GET /setup?token=T` and `POST /setup`: create the first admin, once, with the token printed at
//! start. There is no default account.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use secrecy::SecretString;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{refuse, render, see_other, Layout};
use crate::accounts::{self, AccountError, AuthMethod, SETUP_TOKEN};
use crate::auth::csrf::CsrfToken;
use crate::db::{self, settings, users, Pool};
use crate::error::AppError;
use crate::signin::{self, Completed, Visit, Who};
use crate::state::State;

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    layout: Layout,
    token: String,
    username: String,
    min_length: usize,
}

#[derive(Deserialize)]
pub struct SetupQuery {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize)]
pub struct SetupForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm_password: String,
}

/// Setup is open while no user exists and `token` is the stored one.
async fn check_open(pool: &Pool, token: String) -> Result<(), AppError> {
    let (count, stored) = db::run(pool, |conn| Ok((users::count(conn)?, settings::get(conn, SETUP_TOKEN)?))).await?;
    if count > 0 {
        return Err(AppError::NotFound);
    }
    match stored {
        Some(stored) if bool::from(stored.as_bytes().ct_eq(token.as_bytes())) => Ok(()),
        _ => Err(AppError::Forbidden(
            "This setup link is not valid. Use the link the server printed when it started.".into(),
        )),
    }
}

pub async fn form(query: web::Query<SetupQuery>, csrf: CsrfToken, state: State) -> Result<HttpResponse, AppError> {
    let token = query.into_inner().token;
    check_open(&state.pool, token.clone()).await?;
    let page = SetupPage {
        layout: Layout::new(None, &csrf),
        token,
        username: String::new(),
        min_length: state.config.password_min_length,
    };
    render(StatusCode::OK, &page)
}

pub async fn submit(visit: Visit, form: web::Form<SetupForm>) -> Result<HttpResponse, AppError> {
    let state = &visit.state;
    let SetupForm { token, username, password, confirm_password } = form.into_inner();
    check_open(&state.pool, token.clone()).await?;
    let min_length = state.config.password_min_length;
    let again = |message: String, username: String| {
        let token = token.clone();
        refuse(StatusCode::BAD_REQUEST, Layout::new(None, &visit.csrf), message, |layout| SetupPage {
            layout,
            token,
            username,
            min_length,
        })
    };
    let name = match accounts::valid_username(&username) {
        Ok(name) => name,
        Err(why) => return again(why.to_string(), username),
    };
    if let Err(why) = accounts::check_new_password(&password, Some(&confirm_password), &name, min_length) {
        return again(why.to_string(), name);
    }
    let hash = state.hasher.hash(SecretString::from(password), &visit.ip).await?;
    // The first admin is signed in by the same transaction that creates them.
    let admin_id = users::new_id();
    let who = Who { id: &admin_id, username: &name, role: users::Role::Admin };
    let (spent, new_name, new_id) = (token.clone(), name.clone(), admin_id.clone());
    let completed = signin::complete(&visit, who, AuthMethod::Password, move |conn, session| {
        Ok(accounts::set_up_first_admin(conn, &spent, &new_id, &new_name, &hash, &session)?.into())
    })
    .await?;
    match completed {
        Completed::SignedIn(done) => {
            tracing::info!(username = %done.user.username, client_ip = %visit.ip, "first admin created through /setup");
            // When admins must have a second factor, straight to adding one.
            let must_add = state.config.mfa.requires(users::Role::Admin);
            Ok(see_other(if must_add { "/account/security" } else { "/" }))
        }
        Completed::Refused(AccountError::NameTaken(_) | AccountError::SetupClosed) => Err(AppError::NotFound),
        Completed::Refused(other) => Err(other.into()),
        // Cloud access is required and did not answer: nothing was spent; trying again may work.
        Completed::CloudUnavailable => Err(AppError::Busy),
    }
}
