//! `GET /admin`: the overview — live sessions by role, and sign-ins, failures, lockouts and
//! new-device sign-ins per hour over the last 24 hours, as SVG charts with their data tables.
//!
//! Two bounded queries: live sessions grouped by role, and the events of four kinds in a 24-hour
//! window grouped per hour in the database (one `(kind, at)` index range per kind), so the page
//! costs the same on a log of a million events as on a small one.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use askama::Template;

use crate::auth::csrf::CsrfToken;
use crate::auth::CurrentUser;
use crate::db::events::{self, HOUR_MS};
use crate::db::{self, sessions};
use crate::error::AppError;
use crate::routes::charts::{self, Chart, Series};
use crate::routes::{render, Layout};
use crate::state::State;

/// The kinds the hourly charts count, in this order. The last, a wrong second factor, is counted
/// with the failed sign-ins (a failure of the second step is a failed sign-in too).
const KINDS: [&str; 5] = ["sign_in", "sign_in_failed", "locked_out", "new_device_sign_in", "second_factor_failed"];
const HOURS: usize = 24;

#[derive(Template)]
#[template(path = "admin_overview.html")]
struct OverviewPage {
    layout: Layout,
    /// (role, live sessions), admins first.
    by_role: Vec<(&'static str, i64)>,
    live_total: i64,
    /// Live sessions bound to a key of their browser.
    live_bound: i64,
    /// Totals over the 24 hours, per kind of [`KINDS`]: (kind, what is counted, count).
    totals: Vec<(&'static str, &'static str, i64)>,
    window: String,
    charts: Vec<Chart>,
}

pub async fn show(user: CurrentUser, csrf: CsrfToken, state: State) -> Result<HttpResponse, AppError> {
    let now = state.now_ms();
    // 24 one-hour buckets ending with the current hour (still filling).
    let start = (now.div_euclid(HOUR_MS) + 1 - HOURS as i64) * HOUR_MS;
    let (roles, live_bound, mut counts) = db::run(&state.pool, move |conn| {
        Ok((
            sessions::live_by_role(conn, now)?,
            sessions::dbsc::count_bound(conn, now)?,
            events::hourly_counts(conn, &KINDS, start, HOURS)?,
        ))
    })
    .await?;
    if let Some(second_step) = counts.pop() {
        counts[1].iter_mut().zip(second_step).for_each(|(failed, n)| *failed += n);
    }
    let by_role: Vec<(&'static str, i64)> = ["admin", "user"]
        .into_iter()
        .map(|role| (role, roles.iter().find(|(r, _)| r == role).map_or(0, |(_, n)| *n)))
        .collect();
    let live_total = by_role.iter().map(|(_, n)| n).sum();
    let hours: Vec<(String, String)> = (0..HOURS as i64)
        .map(|h| {
            let from = crate::util::format_ms(start + h * HOUR_MS);
            let hh = from.get(11..13).unwrap_or("").to_owned();
            let until = format!("{:02}", (hh.parse::<u8>().unwrap_or(0) + 1) % 24);
            (format!("{hh}h"), format!("{hh}:00–{until}:00"))
        })
        .collect();
    let series = |k: usize, name: &'static str, class: &'static str| Series { name, class, values: counts[k].clone() };
    let nouns = [("sign-in", "sign-ins"), ("failed sign-in", "failed sign-ins"), ("lockout", "lockouts")];
    let nouns = nouns.into_iter().chain([("new-device sign-in", "new-device sign-ins")]);
    let totals = KINDS
        .iter()
        .zip(nouns)
        .zip(&counts)
        .map(|((kind, (one, many)), per_hour)| {
            let n: i64 = per_hour.iter().sum();
            (*kind, if n == 1 { one } else { many }, n)
        })
        .collect::<Vec<_>>();
    let window =
        format!("{} to {}", crate::util::format_ms(start), crate::util::format_ms(start + HOURS as i64 * HOUR_MS));
    let live = |n: i64| crate::util::count(n as usize, "live session");
    let sum = |k: usize, noun: &str| crate::util::count(totals[k].2 as usize, noun);
    let charts = vec![
        charts::columns(
            "chart-sessions",
            "Live sessions by role".into(),
            format!("{} now: {} of admins, {} of users.", live(live_total), by_role[0].1, by_role[1].1),
            &by_role.iter().map(|(r, _)| (format!("{r}s"), format!("{r}s"))).collect::<Vec<_>>(),
            1,
            &[Series {
                name: "Live sessions",
                class: "bar-sessions",
                values: by_role.iter().map(|(_, n)| *n).collect(),
            }],
        )
        .with_category_heading("Role"),
        charts::columns(
            "chart-sign-ins",
            "Sign-ins and failed sign-ins per hour, last 24 hours".into(),
            format!("{} and {} from {window}, per hour.", sum(0, "sign-in"), sum(1, "failed sign-in")),
            &hours,
            4,
            &[series(0, "Sign-ins", "bar-sign-in"), series(1, "Failed sign-ins", "bar-failed")],
        )
        .with_category_heading("Hour (UTC)"),
        charts::columns(
            "chart-alerts",
            "Lockouts and new-device sign-ins per hour, last 24 hours".into(),
            format!("{} and {} from {window}, per hour.", sum(2, "lockout"), sum(3, "new-device sign-in")),
            &hours,
            4,
            &[series(2, "Lockouts", "bar-locked"), series(3, "New-device sign-ins", "bar-new-device")],
        )
        .with_category_heading("Hour (UTC)"),
    ];
    let page = OverviewPage {
        layout: Layout::new(Some(user), &csrf),
        by_role,
        live_total,
        live_bound,
        totals,
        window,
        charts,
    };
    render(StatusCode::OK, &page)
}
