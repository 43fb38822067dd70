//! `/admin/events`: the audit log, newest first, filtered by user and kind, in keyset pages.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::PAGE_SIZE;
use crate::auth::csrf::CsrfToken;
use crate::auth::CurrentUser;
use crate::db::{self, events};
use crate::error::AppError;
use crate::routes::filters;
use crate::routes::{parse_cursor, render, Layout, Page};
use crate::state::State;
use crate::util::format_ms;

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

pub async fn list(
    user: CurrentUser,
    csrf: CsrfToken,
    query: web::Query<EventsQuery>,
    state: State,
) -> Result<HttpResponse, AppError> {
    let EventsQuery { user: name, kind, after } = query.into_inner();
    let name = name.map(|n| n.trim().to_lowercase()).filter(|n| !n.is_empty());
    let kind = kind.filter(|k| !k.is_empty());
    if let Some(k) = &kind {
        if !events::KINDS.contains(&k.as_str()) {
            return Err(AppError::BadRequest("There is no such kind of event.".into()));
        }
    }
    let after = parse_cursor(after.as_deref(), events::parse_cursor)?;
    let (n, k, a) = (name.clone(), kind.clone(), after.clone());
    let rows = db::run(&state.pool, move |conn| {
        Ok(events::list(conn, n.as_deref(), k.as_deref(), a.as_ref(), PAGE_SIZE + 1)?)
    })
    .await?;
    let page = Page::from_rows(rows, PAGE_SIZE as usize, |e| format!("{}.{}", e.at, e.id));
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".into());
    let events = page
        .items
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
        next_cursor: page.next_cursor,
    };
    render(StatusCode::OK, &page)
}
