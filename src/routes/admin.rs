//! `/admin/…`: every live session, and user management. The `/admin` scope's middleware lets only
//! admins in; the role is read from the database on every request.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use secrecy::SecretString;
use serde::Deserialize;

use super::filters::{self, path};
use super::views::SessionView;
use super::{render, see_other, Done, Layout};
use crate::auth::csrf::CsrfToken;
use crate::auth::password::{check_policy, Hasher};
use crate::auth::CurrentUser;
use crate::db::events::{self, NewEvent};
use crate::db::sessions::Cursor;
use crate::db::users::{AdminGuarded, Role};
use crate::db::{self, sessions, users, Pool};
use crate::error::AppError;
use crate::startup::AppConfig;
use crate::util::{format_ms, now_ms};

/// Sessions per page on the admin sessions page.
pub const PAGE_SIZE: i64 = 50;

#[derive(Template)]
#[template(path = "admin_sessions.html")]
struct SessionsPage {
    layout: Layout,
    live_sessions: i64,
    users_signed_in: i64,
    filter: String,
    /// Whether `filter` names an existing user (only then is there an "end all sessions" button).
    known_user: bool,
    sessions: Vec<SessionView>,
    paged: bool,
    next_cursor: Option<String>,
    page_size: i64,
}

#[derive(Deserialize)]
pub struct SessionsQuery {
    user: Option<String>,
    after: Option<String>,
}

pub async fn sessions(
    user: CurrentUser,
    csrf: CsrfToken,
    query: web::Query<SessionsQuery>,
    done: web::Query<Done>,
    pool: web::Data<Pool>,
) -> Result<HttpResponse, AppError> {
    let SessionsQuery { user: filter, after } = query.into_inner();
    let filter = filter.map(|f| f.trim().to_lowercase()).filter(|f| !f.is_empty());
    let after = match after.as_deref().filter(|a| !a.is_empty()) {
        Some(raw) => {
            Some(Cursor::parse(raw).ok_or_else(|| AppError::BadRequest("That page link is not valid.".into()))?)
        }
        None => None,
    };
    let (name, cursor) = (filter.clone(), after.clone());
    let (summary, rows, known_user) = db::run(&pool, move |conn| {
        let now = now_ms();
        let summary = sessions::live_summary(conn, now)?;
        let user_id = match &name {
            Some(name) => match users::find_by_username(conn, name)? {
                Some(u) => Some(u.id),
                None => return Ok((summary, Vec::new(), false)),
            },
            None => None,
        };
        let rows = sessions::list_live_page(conn, now, user_id.as_deref(), cursor.as_ref(), PAGE_SIZE + 1)?;
        Ok((summary, rows, true))
    })
    .await?;
    let has_more = rows.len() as i64 > PAGE_SIZE;
    let shown = &rows[..rows.len().min(PAGE_SIZE as usize)];
    let next_cursor = has_more
        .then(|| shown.last().map(|(r, _)| Cursor { last_seen_at: r.last_seen_at, id: r.id.clone() }.encode()))
        .flatten();
    let sessions = shown.iter().map(|(row, name)| SessionView::new(row, name, &user.session_id)).collect();
    let mut layout = Layout::new(Some(user), &csrf);
    layout.success = done.message();
    if !known_user {
        layout.error = Some("There is no user by that name.".into());
    }
    let page = SessionsPage {
        layout,
        live_sessions: summary.0,
        users_signed_in: summary.1,
        known_user: known_user && filter.is_some(),
        filter: filter.unwrap_or_default(),
        sessions,
        paged: after.is_some(),
        next_cursor,
        page_size: PAGE_SIZE,
    };
    render(StatusCode::OK, &page)
}

/// Fields of the forms that may need a confirmation first.
#[derive(Deserialize, Default)]
pub struct ConfirmForm {
    confirm: Option<String>,
    return_to: Option<String>,
}

impl ConfirmForm {
    fn confirmed(&self) -> bool {
        self.confirm.as_deref() == Some("yes")
    }

    fn back(&self) -> &'static str {
        if self.return_to.as_deref() == Some("sessions") {
            "/admin/sessions"
        } else {
            "/admin/users"
        }
    }
}

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage {
    layout: Layout,
    message: String,
    action: String,
    button: &'static str,
    cancel: &'static str,
    fields: Vec<(&'static str, String)>,
}

fn confirm_page(
    user: CurrentUser,
    csrf: &CsrfToken,
    message: &str,
    action: String,
    button: &'static str,
    form: &ConfirmForm,
) -> Result<HttpResponse, AppError> {
    let fields = form.return_to.clone().map(|r| vec![("return_to", r)]).unwrap_or_default();
    let page = ConfirmPage {
        layout: Layout::new(Some(user), csrf),
        message: message.to_owned(),
        action,
        button,
        cancel: form.back(),
        fields,
    };
    render(StatusCode::OK, &page)
}

pub async fn revoke_session(
    user: CurrentUser,
    csrf: CsrfToken,
    id: web::Path<String>,
    form: web::Form<ConfirmForm>,
    pool: web::Data<Pool>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    if id == user.session_id && !form.confirmed() {
        let action = path(&["admin", "sessions", &id, "revoke"]);
        return confirm_page(
            user,
            &csrf,
            "This is the session you are using: ending it signs you out.",
            action,
            "End my session",
            &form,
        );
    }
    let (target, admin) = (id.clone(), user.username.clone());
    let ended = db::run(&pool, move |conn| {
        let Some(owner) = sessions::owner_name(conn, &target)? else { return Ok(0) };
        let ended = sessions::delete_by_id(conn, &target)?;
        if ended == 1 {
            events::record(conn, &NewEvent::new("session_ended").user(owner).actor(admin).session(&target))?;
        }
        Ok(ended)
    })
    .await?;
    if ended == 0 {
        return Err(AppError::NotFound);
    }
    tracing::info!(admin = %user.username, session = %user.session_id, ended = %id, "admin ended a session");
    Ok(see_other(if id == user.session_id { "/login" } else { "/admin/sessions?done=session-ended" }))
}

pub async fn revoke_user_sessions(
    user: CurrentUser,
    csrf: CsrfToken,
    name: web::Path<String>,
    form: web::Form<ConfirmForm>,
    pool: web::Data<Pool>,
) -> Result<HttpResponse, AppError> {
    let name = name.into_inner();
    if name == user.username && !form.confirmed() {
        let action = path(&["admin", "users", &name, "revoke-sessions"]);
        return confirm_page(
            user,
            &csrf,
            "These are your own sessions, including the one you are using: ending them signs you out.",
            action,
            "End all my sessions",
            &form,
        );
    }
    let (target, admin) = (name.clone(), user.username.clone());
    let ended = db::run(&pool, move |conn| {
        let Some(u) = users::find_by_username(conn, &target)? else { return Ok(None) };
        let ended = sessions::delete_for_user(conn, &u.id)?;
        let event =
            NewEvent::new("session_ended").user(&u.username).actor(admin).detail(format!("all {ended} sessions"));
        events::record(conn, &event)?;
        Ok(Some(ended))
    })
    .await?
    .ok_or(AppError::NotFound)?;
    tracing::info!(admin = %user.username, session = %user.session_id, user = %name, ended, "admin ended a user's sessions");
    if name == user.username {
        return Ok(see_other("/login"));
    }
    Ok(see_other(&format!("{}?done=user-sessions-ended&n={ended}", form.back())))
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    layout: Layout,
    users: Vec<UserView>,
    new_username: String,
    min_length: usize,
}

struct UserView {
    username: String,
    role: String,
    status: &'static str,
    last_login: String,
    live_sessions: i64,
    is_me: bool,
}

async fn users_page(
    status: StatusCode,
    user: CurrentUser,
    csrf: &CsrfToken,
    pool: &Pool,
    config: &AppConfig,
    message: (Option<String>, Option<String>),
    new_username: String,
) -> Result<HttpResponse, AppError> {
    let (all, counts) = db::run(pool, |conn| {
        let counts: HashMap<String, i64> = sessions::live_counts_by_user(conn, now_ms())?.into_iter().collect();
        Ok((users::list(conn)?, counts))
    })
    .await?;
    let users = all
        .iter()
        .map(|u| UserView {
            username: u.username.clone(),
            role: u.role.clone(),
            status: u.status(),
            last_login: u.last_login_at.map_or_else(|| "never".to_owned(), format_ms),
            live_sessions: counts.get(&u.id).copied().unwrap_or(0),
            is_me: u.id == user.user_id,
        })
        .collect();
    let mut layout = Layout::new(Some(user), csrf);
    (layout.success, layout.error) = message;
    render(status, &UsersPage { layout, users, new_username, min_length: config.password_min_length })
}

pub async fn users(
    user: CurrentUser,
    csrf: CsrfToken,
    done: web::Query<Done>,
    pool: web::Data<Pool>,
    config: web::Data<AppConfig>,
) -> Result<HttpResponse, AppError> {
    users_page(StatusCode::OK, user, &csrf, &pool, &config, (done.message(), None), String::new()).await
}

#[derive(Deserialize)]
pub struct CreateUserForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    role: String,
}

pub async fn create_user(
    user: CurrentUser,
    csrf: CsrfToken,
    form: web::Form<CreateUserForm>,
    pool: web::Data<Pool>,
    hasher: web::Data<Hasher>,
    config: web::Data<AppConfig>,
) -> Result<HttpResponse, AppError> {
    let CreateUserForm { username, password, role } = form.into_inner();
    let shown: String = username.trim().chars().take(64).collect();
    let refuse = |status: StatusCode, message: String, user: CurrentUser| {
        users_page(status, user, &csrf, &pool, &config, (None, Some(message)), shown.clone())
    };
    let name = match users::normalize_username(&username) {
        Ok(name) => name,
        Err(why) => return refuse(StatusCode::BAD_REQUEST, why.into(), user).await,
    };
    let Some(role) = Role::parse(&role) else {
        return refuse(StatusCode::BAD_REQUEST, "Choose the role admin or user.".into(), user).await;
    };
    if let Err(why) = check_policy(&password, &name, config.password_min_length) {
        return refuse(StatusCode::BAD_REQUEST, why, user).await;
    }
    // Signed in, so the admin (not an address) is what shares the hashing capacity here.
    let hash = hasher.hash(SecretString::from(password), &format!("admin:{}", user.username)).await?;
    let (new_name, admin) = (name.clone(), user.username.clone());
    let created = db::run(&pool, move |conn| match users::create(conn, &new_name, &hash, role) {
        Ok(_) => {
            events::record(conn, &NewEvent::new("user_created").user(&new_name).actor(admin).detail(role.as_str()))?;
            Ok(true)
        }
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
        Err(e) => Err(e.into()),
    })
    .await?;
    if !created {
        return refuse(StatusCode::CONFLICT, format!("The username “{name}” is taken."), user).await;
    }
    tracing::info!(admin = %user.username, session = %user.session_id, user = %name, role = %role, "admin created a user");
    Ok(see_other("/admin/users?done=user-created"))
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
    pool: web::Data<Pool>,
    config: web::Data<AppConfig>,
) -> Result<HttpResponse, AppError> {
    let name = name.into_inner();
    let role = Role::parse(&form.role).ok_or_else(|| AppError::BadRequest("Choose the role admin or user.".into()))?;
    let (target, admin) = (name.clone(), user.username.clone());
    let outcome = db::run(&pool, move |conn| {
        let outcome = users::set_role(conn, &target, role)?;
        if outcome == AdminGuarded::Done {
            events::record(conn, &NewEvent::new("role_changed").user(&target).actor(admin).detail(role.as_str()))?;
        }
        Ok(outcome)
    })
    .await?;
    match outcome {
        AdminGuarded::Done => {
            tracing::info!(admin = %user.username, session = %user.session_id, user = %name, role = %role, "admin changed a role");
            let demoted_self = name == user.username && role != Role::Admin;
            Ok(see_other(if demoted_self { "/" } else { "/admin/users?done=role-changed" }))
        }
        AdminGuarded::NotFound => Err(AppError::NotFound),
        AdminGuarded::LastActiveAdmin => last_admin(user, &csrf, &pool, &config).await,
    }
}

async fn last_admin(
    user: CurrentUser,
    csrf: &CsrfToken,
    pool: &Pool,
    config: &AppConfig,
) -> Result<HttpResponse, AppError> {
    let message =
        "The last active administrator can be neither demoted nor disabled. Make another user an admin first.";
    users_page(StatusCode::CONFLICT, user, csrf, pool, config, (None, Some(message.into())), String::new()).await
}

pub async fn disable(
    user: CurrentUser,
    csrf: CsrfToken,
    name: web::Path<String>,
    form: web::Form<ConfirmForm>,
    pool: web::Data<Pool>,
    config: web::Data<AppConfig>,
) -> Result<HttpResponse, AppError> {
    let name = name.into_inner();
    if name == user.username && !form.confirmed() {
        let action = path(&["admin", "users", &name, "disable"]);
        return confirm_page(
            user,
            &csrf,
            "Disabling your own account signs you out and blocks your sign-in.",
            action,
            "Disable my account",
            &form,
        );
    }
    let (target, admin) = (name.clone(), user.username.clone());
    let outcome = db::run(&pool, move |conn| {
        let outcome = users::set_disabled(conn, &target, true)?;
        let ended = match (&outcome, users::find_by_username(conn, &target)?) {
            (AdminGuarded::Done, Some(u)) => {
                let ended = sessions::delete_for_user(conn, &u.id)?;
                let event =
                    NewEvent::new("user_disabled").user(&target).actor(admin).detail(format!("ended {ended} sessions"));
                events::record(conn, &event)?;
                ended
            }
            _ => 0,
        };
        Ok((outcome, ended))
    })
    .await?;
    match outcome {
        (AdminGuarded::Done, ended) => {
            tracing::info!(admin = %user.username, session = %user.session_id, user = %name, ended, "admin disabled a user");
            if name == user.username {
                return Ok(see_other("/login"));
            }
            Ok(see_other(&format!("/admin/users?done=user-disabled&n={ended}")))
        }
        (AdminGuarded::NotFound, _) => Err(AppError::NotFound),
        (AdminGuarded::LastActiveAdmin, _) => last_admin(user, &csrf, &pool, &config).await,
    }
}

pub async fn enable(
    user: CurrentUser,
    name: web::Path<String>,
    pool: web::Data<Pool>,
) -> Result<HttpResponse, AppError> {
    let name = name.into_inner();
    let (target, admin) = (name.clone(), user.username.clone());
    let outcome = db::run(&pool, move |conn| {
        let outcome = users::set_disabled(conn, &target, false)?;
        if outcome == AdminGuarded::Done {
            events::record(conn, &NewEvent::new("user_enabled").user(&target).actor(admin))?;
        }
        Ok(outcome)
    })
    .await?;
    match outcome {
        AdminGuarded::NotFound => Err(AppError::NotFound),
        _ => {
            tracing::info!(admin = %user.username, session = %user.session_id, user = %name, "admin enabled a user");
            Ok(see_other("/admin/users?done=user-enabled"))
        }
    }
}

#[derive(Template)]
#[template(path = "admin_events.html")]
struct EventsPage {
    layout: Layout,
    user_filter: String,
    kind_filter: String,
    kinds: &'static [&'static str],
    events: Vec<EventView>,
    paged: bool,
    next_cursor: Option<String>,
}

struct EventView {
    at: String,
    kind: String,
    username: String,
    actor: String,
    client_ip: String,
    session_id: String,
    detail: String,
}

#[derive(Deserialize)]
pub struct EventsQuery {
    user: Option<String>,
    kind: Option<String>,
    after: Option<String>,
}

/// The audit log, newest first, filtered by user and kind, in keyset pages of 50.
pub async fn events(
    user: CurrentUser,
    csrf: CsrfToken,
    query: web::Query<EventsQuery>,
    pool: web::Data<Pool>,
) -> Result<HttpResponse, AppError> {
    let EventsQuery { user: name, kind, after } = query.into_inner();
    let name = name.map(|n| n.trim().to_lowercase()).filter(|n| !n.is_empty());
    let kind = kind.filter(|k| !k.is_empty());
    if let Some(k) = &kind {
        if !events::KINDS.contains(&k.as_str()) {
            return Err(AppError::BadRequest("There is no such kind of event.".into()));
        }
    }
    let after = match after.as_deref().filter(|a| !a.is_empty()) {
        Some(raw) => {
            Some(events::parse_cursor(raw).ok_or_else(|| AppError::BadRequest("That page link is not valid.".into()))?)
        }
        None => None,
    };
    let (n, k, a) = (name.clone(), kind.clone(), after.clone());
    let rows =
        db::run(&pool, move |conn| Ok(events::list(conn, n.as_deref(), k.as_deref(), a.as_ref(), PAGE_SIZE + 1)?))
            .await?;
    let has_more = rows.len() as i64 > PAGE_SIZE;
    let shown = &rows[..rows.len().min(PAGE_SIZE as usize)];
    let next_cursor = has_more.then(|| shown.last().map(|e| format!("{}.{}", e.at, e.id))).flatten();
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let events = shown
        .iter()
        .map(|e| EventView {
            at: format_ms(e.at),
            kind: e.kind.clone(),
            username: dash(&e.username),
            actor: dash(&e.actor),
            client_ip: dash(&e.client_ip),
            session_id: dash(&e.session_id),
            detail: e.detail.clone(),
        })
        .collect();
    let page = EventsPage {
        layout: Layout::new(Some(user), &csrf),
        user_filter: name.unwrap_or_default(),
        kind_filter: kind.unwrap_or_default(),
        kinds: events::KINDS,
        events,
        paged: after.is_some(),
        next_cursor,
    };
    render(StatusCode::OK, &page)
}
