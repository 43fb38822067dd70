//! `/admin/users`: every user with role, status, last sign-in and live sessions; create users,
//! change roles, disable and enable, end a user's sessions.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use secrecy::SecretString;
use serde::Deserialize;

use super::{confirm_page, ConfirmForm, DISABLE_MY_ACCOUNT, END_ALL_MY_SESSIONS, RESET_MY_FACTORS};
use crate::accounts::{self, AccountError, Actor};
use crate::auth::csrf::CsrfToken;
use crate::auth::CurrentUser;
use crate::db::users::Role;
use crate::db::{self, sessions, throttle, users};
use crate::error::AppError;
use crate::routes::filters::{self, path};
use crate::routes::{render, see_other, Done, Layout};
use crate::state::State;
use crate::util::format_ms;

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    layout: Layout,
    users: Vec<UserView>,
    new_username: String,
    min_length: usize,
    /// Second factors are on (`DASHBOARD_MFA` is not `off`).
    mfa_on: bool,
    /// SMTP is configured: a user can be invited by mail (an address and no password).
    mail_on: bool,
}

struct UserView {
    username: String,
    role: String,
    status: &'static str,
    last_login: String,
    live_sessions: i64,
    is_me: bool,
    /// The only active admin: disabling them would leave no one to administer, so it is not offered
    /// (the service refuses it anyway).
    last_admin: bool,
    /// `totp passkey`, `totp`, `passkey` or `none`.
    mfa: String,
    /// The address, or empty.
    email: String,
    /// When the lock failed sign-ins put on the user ends, if one is running.
    locked_until: Option<String>,
}

/// The users page, with a message: a success after a redirect, or the refusal of what was just
/// submitted (then `status` says why and the form keeps the name that was typed).
async fn users_page(
    state: &State,
    status: StatusCode,
    user: CurrentUser,
    csrf: &CsrfToken,
    (success, error): (Option<String>, Option<String>),
    new_username: String,
) -> Result<HttpResponse, AppError> {
    let now = state.now_ms();
    let (all, counts, factors, locks) = db::run(&state.pool, move |conn| {
        let counts: HashMap<String, i64> = sessions::live_counts_by_user(conn, now)?.into_iter().collect();
        let all = users::list(conn)?;
        let keys: Vec<String> = all.iter().map(|u| throttle::user_key(&u.username)).collect();
        let locks: HashMap<String, i64> = throttle::locks(conn, &keys, now)?.into_iter().collect();
        Ok((all, counts, crate::db::factors::factors_by_user(conn)?, locks))
    })
    .await?;
    let active_admins = all.iter().filter(|u| u.role == "admin" && !u.is_disabled()).count();
    let users = all
        .iter()
        .map(|u| UserView {
            username: u.username.clone(),
            role: u.role.clone(),
            status: u.status(),
            last_login: u.last_login_at.map_or_else(|| "never".to_owned(), format_ms),
            live_sessions: counts.get(&u.id).copied().unwrap_or(0),
            is_me: u.id == user.user_id,
            last_admin: active_admins == 1 && u.role == "admin" && !u.is_disabled(),
            mfa: factors.get(&u.id).copied().unwrap_or_default().names(),
            email: u.email.clone().unwrap_or_default(),
            locked_until: locks.get(&throttle::user_key(&u.username)).copied().map(format_ms),
        })
        .collect();
    let mut layout = Layout::new(Some(user), csrf);
    (layout.success, layout.error) = (success, error);
    let mfa_on = state.config.mfa.enabled();
    let (min_length, mail_on) = (state.config.password_min_length, state.mail.on);
    render(status, &UsersPage { layout, users, new_username, min_length, mfa_on, mail_on })
}

/// The users page again with a refusal.
async fn refused(
    state: &State,
    user: CurrentUser,
    csrf: &CsrfToken,
    refusal: AccountError,
    new_username: String,
) -> Result<HttpResponse, AppError> {
    let (status, message) = match refusal {
        AccountError::NameTaken(name) => (StatusCode::CONFLICT, format!("The username “{name}” is taken.")),
        AccountError::LastActiveAdmin(..) => (
            StatusCode::CONFLICT,
            "The last active administrator can be neither demoted nor disabled. Make another user an admin first."
                .to_owned(),
        ),
        AccountError::InvalidName(why) => (StatusCode::BAD_REQUEST, why.to_owned()),
        AccountError::Policy(why) => (StatusCode::BAD_REQUEST, why),
        AccountError::InvalidEmail(why) => (StatusCode::BAD_REQUEST, why.to_owned()),
        AccountError::EmailTaken(_) => (StatusCode::CONFLICT, "That email address belongs to another user.".to_owned()),
        other => return Err(other.into()),
    };
    users_page(state, status, user, csrf, (None, Some(message)), new_username).await
}

pub async fn list(
    user: CurrentUser,
    csrf: CsrfToken,
    done: web::Query<Done>,
    state: State,
) -> Result<HttpResponse, AppError> {
    users_page(&state, StatusCode::OK, user, &csrf, (done.message(), None), String::new()).await
}

#[derive(Deserialize)]
pub struct CreateUserForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    role: String,
    /// Optional; with no password, the user is invited by mail to choose one.
    #[serde(default)]
    email: String,
}

pub async fn create(
    user: CurrentUser,
    csrf: CsrfToken,
    form: web::Form<CreateUserForm>,
    state: State,
) -> Result<HttpResponse, AppError> {
    let CreateUserForm { username, password, role, email } = form.into_inner();
    let shown: String = username.trim().chars().take(64).collect();
    let name = match accounts::valid_username(&username) {
        Ok(name) => name,
        Err(refusal) => return refused(&state, user, &csrf, refusal, shown).await,
    };
    let Some(role) = Role::parse(&role) else {
        let message = Some("Choose the role admin or user.".to_owned());
        return users_page(&state, StatusCode::BAD_REQUEST, user, &csrf, (None, message), shown).await;
    };
    let email = match accounts::valid_email(&email) {
        Ok(email) => email,
        Err(refusal) => return refused(&state, user, &csrf, refusal, shown).await,
    };
    if password.is_empty() && email.is_some() {
        return invite(state, user, csrf, name, role, email, shown).await;
    }
    if let Err(refusal) = accounts::check_new_password(&password, None, &name, state.config.password_min_length) {
        return refused(&state, user, &csrf, refusal, shown).await;
    }
    // Signed in, so the admin (not an address) is what shares the hashing capacity here.
    let hash = state.hasher.hash(SecretString::from(password), &format!("admin:{}", user.username)).await?;
    let (new_name, admin) = (name.clone(), user.username.clone());
    let created = db::run(&state.pool, move |conn| {
        Ok(accounts::create_user_with_email(conn, &new_name, &hash, role, email.as_deref(), Actor::Admin(&admin)))
    })
    .await?;
    if let Err(refusal) = created {
        return refused(&state, user, &csrf, refusal, shown).await;
    }
    tracing::info!(admin = %user.username, session = %user.session_id, user = %name, role = %role, "admin created a user");
    Ok(see_other("/admin/users?done=user-created"))
}

/// Creates the user without a password and mails them an invitation to choose one.
async fn invite(
    state: State,
    user: CurrentUser,
    csrf: CsrfToken,
    name: String,
    role: Role,
    email: Option<String>,
    shown: String,
) -> Result<HttpResponse, AppError> {
    if !state.mail.on {
        let message = "Mail is not configured (DASHBOARD_SMTP_URL): give a password, or make an invitation link \
                       with `dashboard user invite`."
            .to_owned();
        return users_page(&state, StatusCode::BAD_REQUEST, user, &csrf, (None, Some(message)), shown).await;
    }
    // A password nobody knows, hashed like any other: a sign-in attempt on an invited account costs
    // the same time as on any account.
    let unknown = SecretString::from(crate::util::random_b64(32));
    let unusable = state.hasher.hash(unknown, &format!("admin:{}", user.username)).await?;
    let link = state.mail.new_link();
    let (new_name, admin, now) = (name.clone(), user.username.clone(), state.now_ms());
    let invited = db::run(&state.pool, move |conn| {
        let invitation = accounts::NewInvitation {
            username: &new_name,
            role,
            email: email.as_deref(),
            unusable_hash: &unusable,
            link: accounts::NewLink::of(&link, true, now),
        };
        Ok(accounts::invite_new_user(conn, &invitation, Actor::Admin(&admin)))
    })
    .await?;
    if let Err(refusal) = invited {
        return refused(&state, user, &csrf, refusal, shown).await;
    }
    tracing::info!(admin = %user.username, session = %user.session_id, user = %name, role = %role, "admin invited a user");
    Ok(see_other("/admin/users?done=user-invited"))
}

#[derive(Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    role: String,
}

pub async fn set_role(
    user: CurrentUser,
    csrf: CsrfToken,
    name: web::Path<String>,
    form: web::Form<RoleForm>,
    state: State,
) -> Result<HttpResponse, AppError> {
    let name = name.into_inner();
    let role = Role::parse(&form.role).ok_or_else(|| AppError::BadRequest("Choose the role admin or user.".into()))?;
    let (target, admin) = (name.clone(), user.username.clone());
    let changed =
        db::run(&state.pool, move |conn| Ok(accounts::set_role(conn, &target, role, Actor::Admin(&admin)))).await?;
    if let Err(refusal) = changed {
        return refused(&state, user, &csrf, refusal, String::new()).await;
    }
    tracing::info!(admin = %user.username, session = %user.session_id, user = %name, role = %role, "admin changed a role");
    let demoted_self = name == user.username && role != Role::Admin;
    Ok(see_other(if demoted_self { "/" } else { "/admin/users?done=role-changed" }))
}

pub async fn disable(
    user: CurrentUser,
    csrf: CsrfToken,
    name: web::Path<String>,
    form: web::Form<ConfirmForm>,
    state: State,
) -> Result<HttpResponse, AppError> {
    let name = name.into_inner();
    if name == user.username && !form.confirmed() {
        return confirm_page(user, &csrf, &form, path(&["admin", "users", &name, "disable"]), DISABLE_MY_ACCOUNT);
    }
    let (target, admin) = (name.clone(), user.username.clone());
    let ended =
        match db::run(&state.pool, move |conn| Ok(accounts::disable(conn, &target, Actor::Admin(&admin)))).await? {
            Ok(ended) => ended,
            Err(refusal) => return refused(&state, user, &csrf, refusal, String::new()).await,
        };
    tracing::info!(admin = %user.username, session = %user.session_id, user = %name, ended, "admin disabled a user");
    if name == user.username {
        return Ok(see_other("/login"));
    }
    Ok(see_other(&format!("/admin/users?done=user-disabled&n={ended}")))
}

pub async fn enable(user: CurrentUser, name: web::Path<String>, state: State) -> Result<HttpResponse, AppError> {
    let name = name.into_inner();
    let (target, admin) = (name.clone(), user.username.clone());
    db::run(&state.pool, move |conn| Ok(accounts::enable(conn, &target, Actor::Admin(&admin)))).await??;
    tracing::info!(admin = %user.username, session = %user.session_id, user = %name, "admin enabled a user");
    Ok(see_other("/admin/users?done=user-enabled"))
}

/// Ends every session of a user; the admin's own asks first.
pub async fn revoke_sessions(
    user: CurrentUser,
    csrf: CsrfToken,
    name: web::Path<String>,
    form: web::Form<ConfirmForm>,
    state: State,
) -> Result<HttpResponse, AppError> {
    let name = name.into_inner();
    if name == user.username && !form.confirmed() {
        let action = path(&["admin", "users", &name, "revoke-sessions"]);
        return confirm_page(user, &csrf, &form, action, END_ALL_MY_SESSIONS);
    }
    let (target, admin) = (name.clone(), user.username.clone());
    let ended = db::run(&state.pool, move |conn| Ok(accounts::end_user_sessions(conn, &target, Actor::Admin(&admin))))
        .await??;
    tracing::info!(admin = %user.username, session = %user.session_id, user = %name, ended, "admin ended a user's sessions");
    if name == user.username {
        return Ok(see_other("/login"));
    }
    Ok(see_other(&format!("{}?done=user-sessions-ended&n={ended}", form.back())))
}

/// Ends the lock failed sign-ins put on a user (and forgets the failures and earlier locks).
pub async fn unlock(user: CurrentUser, name: web::Path<String>, state: State) -> Result<HttpResponse, AppError> {
    let (target, admin, now) = (name.into_inner(), user.username.clone(), state.now_ms());
    let name = target.clone();
    let was_locked =
        db::run(&state.pool, move |conn| Ok(accounts::unlock(conn, &target, Actor::Admin(&admin), now))).await??;
    tracing::info!(admin = %user.username, session = %user.session_id, user = %name, was_locked, "admin ended a user's lock");
    Ok(see_other("/admin/users?done=unlocked"))
}

/// Removes every second factor of a user and ends all their sessions (for someone who lost their
/// phone and codes); the admin's own asks first.
pub async fn reset_mfa(
    user: CurrentUser,
    csrf: CsrfToken,
    name: web::Path<String>,
    form: web::Form<ConfirmForm>,
    state: State,
) -> Result<HttpResponse, AppError> {
    let name = name.into_inner();
    if name == user.username && !form.confirmed() {
        return confirm_page(user, &csrf, &form, path(&["admin", "users", &name, "reset-mfa"]), RESET_MY_FACTORS);
    }
    let (target, admin) = (name.clone(), user.username.clone());
    let reset =
        db::run(&state.pool, move |conn| Ok(accounts::reset_second_factors(conn, &target, Actor::Admin(&admin))))
            .await??;
    tracing::info!(admin = %user.username, session = %user.session_id, user = %name, removed = %reset.removed.names(), ended = reset.sessions_ended, "admin reset a user's second factors");
    if name == user.username {
        return Ok(see_other("/login"));
    }
    Ok(see_other(&format!("/admin/users?done=factors-reset&n={}", reset.sessions_ended)))
}
