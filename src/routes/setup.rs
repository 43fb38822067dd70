//! `GET /setup?token=T` and `POST /setup`: create the first admin, once, with the token printed at
//! start. There is no default account.

use actix_session::Session;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use secrecy::SecretString;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{refuse, render, see_other, Layout};
use crate::accounts::{self, AccountError, NewSession, SETUP_TOKEN};
use crate::auth::csrf::CsrfToken;
use crate::db::{self, settings, users, Pool};
use crate::error::AppError;
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

pub async fn submit(
    req: HttpRequest,
    form: web::Form<SetupForm>,
    session: Session,
    csrf: CsrfToken,
    state: State,
) -> Result<HttpResponse, AppError> {
    let SetupForm { token, username, password, confirm_password } = form.into_inner();
    check_open(&state.pool, token.clone()).await?;
    let min_length = state.config.password_min_length;
    let again = |message: String, username: String| {
        let token = token.clone();
        refuse(StatusCode::BAD_REQUEST, Layout::new(None, &csrf), message, |layout| SetupPage {
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
    let hash = state.hasher.hash(SecretString::from(password), &state.client_ip(&req)).await?;
    // The first admin is signed in by the same transaction that creates them.
    let admin_id = users::new_id();
    let new_token = crate::session::prepare(&req, &session, &admin_id)?;
    let ip = state.client_ip(&req);
    let user_agent = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let new_session = NewSession {
        token: new_token.row.clone(),
        ip: ip.clone(),
        user_agent,
        cloud: None,
        timeouts: state.config.timeouts,
        now: state.now_ms(),
        auth_method: accounts::AuthMethod::Password,
    };
    let (spent, new_name) = (token.clone(), name.clone());
    let created = db::run(&state.pool, move |conn| {
        Ok(accounts::set_up_first_admin(conn, &spent, &admin_id, &new_name, &hash, &new_session))
    })
    .await
    .map_err(|e| crate::session::abandoned(&session, e))?;
    match created {
        Ok(admin) => {
            crate::session::hand_over(new_token);
            tracing::info!(username = %admin.username, client_ip = %ip, "first admin created through /setup");
            // When admins must have a second factor, straight to adding one.
            let must_add = state.config.mfa.requires(users::Role::Admin);
            Ok(see_other(if must_add { "/account/security" } else { "/" }))
        }
        Err(e) => {
            crate::session::abandon(&session);
            match e {
                AccountError::NameTaken(_) | AccountError::SetupClosed => Err(AppError::NotFound),
                other => Err(other.into()),
            }
        }
    }
}
