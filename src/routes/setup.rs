//! `GET /setup?token=T` and `POST /setup`: create the first admin, once, with the token printed at
//! start. There is no default account.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use diesel::Connection as _;
use secrecy::SecretString;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{render, see_other, Layout};
use crate::auth::client_ip;
use crate::auth::csrf::CsrfToken;
use crate::auth::password::{check_policy, Hasher};
use crate::db::events::{self, NewEvent};
use crate::db::{self, settings, users, Pool};
use crate::error::AppError;
use crate::startup::AppConfig;

/// The `app_settings` name of the one-time setup token.
pub const SETUP_TOKEN: &str = "setup_token";

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

pub async fn form(
    query: web::Query<SetupQuery>,
    csrf: CsrfToken,
    pool: web::Data<Pool>,
    config: web::Data<AppConfig>,
) -> Result<HttpResponse, AppError> {
    let token = query.into_inner().token;
    check_open(&pool, token.clone()).await?;
    let page = SetupPage {
        layout: Layout::new(None, &csrf),
        token,
        username: String::new(),
        min_length: config.password_min_length,
    };
    render(StatusCode::OK, &page)
}

#[allow(clippy::too_many_arguments)]
pub async fn submit(
    req: HttpRequest,
    form: web::Form<SetupForm>,
    session: Session,
    csrf: CsrfToken,
    pool: web::Data<Pool>,
    hasher: web::Data<Hasher>,
    config: web::Data<AppConfig>,
) -> Result<HttpResponse, AppError> {
    let SetupForm { token, username, password, confirm_password } = form.into_inner();
    check_open(&pool, token.clone()).await?;
    let refuse = |message: String, username: String| {
        let mut layout = Layout::new(None, &csrf);
        layout.error = Some(message);
        let page = SetupPage { layout, token: token.clone(), username, min_length: config.password_min_length };
        render(StatusCode::BAD_REQUEST, &page)
    };
    let name = match users::normalize_username(&username) {
        Ok(name) => name,
        Err(why) => return refuse(why.into(), username),
    };
    if let Err(why) = check_policy(&password, &name, config.password_min_length) {
        return refuse(why, name);
    }
    if password != confirm_password {
        return refuse("The two passwords do not match.".into(), name);
    }
    let hash = hasher.hash(SecretString::from(password), &client_ip(&req, &config.trusted_proxies)).await?;
    let (spent_token, new_name) = (token.clone(), name.clone());
    // Spending the token is the transaction's first statement (a write), so two concurrent setups
    // cannot both create an admin, and SQLite never has to upgrade a read lock.
    let ip = client_ip(&req, &config.trusted_proxies);
    let event = NewEvent::new("first_admin_created").user(&name).ip(&ip);
    let created = db::run(&pool, move |conn| {
        Ok(conn.transaction(|conn| {
            if !settings::take(conn, SETUP_TOKEN, &spent_token)? {
                return Ok::<_, diesel::result::Error>(None);
            }
            let admin = users::create(conn, &new_name, &hash, users::Role::Admin)?;
            events::record(conn, &event)?;
            Ok(Some(admin))
        })?)
    })
    .await?;
    let Some(admin) = created else {
        return Err(AppError::NotFound);
    };
    tracing::info!(username = %admin.username, client_ip = %ip, "first admin created through /setup");
    crate::session::begin(&req, &session, &admin.id, &ip)?;
    Ok(see_other("/"))
}
