//! `/admin/sessions`: every live session, newest activity first, with totals, a user filter and
//! keyset pages; end one session.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{confirm_page, ConfirmForm, END_MY_SESSION, PAGE_SIZE};
use crate::accounts::{self, Actor, Ending};
use crate::auth::csrf::CsrfToken;
use crate::auth::CurrentUser;
use crate::db::sessions::Cursor;
use crate::db::{self, sessions, users};
use crate::error::AppError;
use crate::routes::filters::{self, path};
use crate::routes::views::SessionView;
use crate::routes::{parse_cursor, render, see_other, Done, Layout, Page};
use crate::state::State;

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

pub async fn list(
    user: CurrentUser,
    csrf: CsrfToken,
    query: web::Query<SessionsQuery>,
    done: web::Query<Done>,
    state: State,
) -> Result<HttpResponse, AppError> {
    let SessionsQuery { user: filter, after } = query.into_inner();
    let filter = filter.map(|f| f.trim().to_lowercase()).filter(|f| !f.is_empty());
    let after = parse_cursor(after.as_deref(), Cursor::parse)?;
    let (name, cursor, now) = (filter.clone(), after.clone(), state.now_ms());
    let (summary, rows, known_user) = db::run(&state.pool, move |conn| {
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
    let page = Page::from_rows(rows, PAGE_SIZE as usize, |(r, _)| {
        Cursor { last_seen_at: r.last_seen_at, id: r.id.clone() }.encode()
    });
    let sessions = page.items.iter().map(|(row, name)| SessionView::new(row, name, &user.session_id, now)).collect();
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
        next_cursor: page.next_cursor,
        page_size: PAGE_SIZE,
    };
    render(StatusCode::OK, &page)
}

/// Ends one session; the admin's own asks first.
pub async fn revoke(
    user: CurrentUser,
    csrf: CsrfToken,
    id: web::Path<String>,
    form: web::Form<ConfirmForm>,
    state: State,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    if id == user.session_id && !form.confirmed() {
        return confirm_page(user, &csrf, &form, path(&["admin", "sessions", &id, "revoke"]), END_MY_SESSION);
    }
    let (target, admin) = (id.clone(), user.username.clone());
    db::run(&state.pool, move |conn| Ok(accounts::end_session(conn, &target, Ending::Any(Actor::Admin(&admin)))))
        .await??;
    tracing::info!(admin = %user.username, session = %user.session_id, ended = %id, "admin ended a session");
    Ok(see_other(if id == user.session_id { "/login" } else { "/admin/sessions?done=session-ended" }))
}
