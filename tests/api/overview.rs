//! `GET /admin`, the overview: counts per hour from seeded events, live sessions by role, the
//! charts' accessibility (title, description, data table), and admins only.

use dashboard::db::events::HOUR_MS;
use dashboard::db::schema::auth_events;
use dashboard::db::users::Role;
use diesel::prelude::*;

use crate::both_databases;
use crate::helpers::*;

both_databases!(
    the_overview_counts_seeded_events_per_hour_and_live_sessions_by_role,
    the_overview_is_for_admins_only_and_its_charts_are_accessible_svg,
);

/// Inserts audit events of these kinds at these times straight into the table.
pub async fn seed_events(app: &TestApp, events: Vec<(&'static str, i64)>) {
    app.with_db(move |c| {
        for (i, (kind, at)) in events.into_iter().enumerate() {
            diesel::insert_into(auth_events::table)
                .values((
                    auth_events::id.eq(format!("seed-{i}-{at}")),
                    auth_events::at.eq(at),
                    auth_events::kind.eq(kind),
                    auth_events::username.eq("someone"),
                    auth_events::detail.eq(""),
                ))
                .execute(c)?;
        }
        Ok(())
    })
    .await
}

/// Moves the app's clock to the middle of an hour (forward, less than an hour), so that the test and
/// the page agree on the 24 one-hour buckets; returns the first bucket's start.
fn mid_hour_window(app: &TestApp) -> i64 {
    let now = app.clock.now_ms();
    let to_mid = (HOUR_MS / 2 - now.rem_euclid(HOUR_MS)).rem_euclid(HOUR_MS);
    app.clock.advance(std::time::Duration::from_millis(to_mid as u64));
    let now = app.clock.now_ms();
    (now.div_euclid(HOUR_MS) - 23) * HOUR_MS
}

/// `HH:00–HH:00` of the hour starting at `at`, as the data tables name it.
fn hour_name(at: i64) -> String {
    let hh: u8 = dashboard::util::format_ms(at)[11..13].parse().unwrap();
    format!("{hh:02}:00–{:02}:00", (hh + 1) % 24)
}

/// The text of the element with this id (the number in `<strong id="…">N</strong>`).
fn text_of(html: &str, id: &str) -> String {
    let start = html.find(&format!("id=\"{id}\">")).unwrap_or_else(|| panic!("no #{id}")) + id.len() + 6;
    html[start..start + html[start..].find('<').unwrap()].to_owned()
}

/// The part of the page holding one chart (its figure).
fn figure<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html.find(&format!("<figure class=\"card chart-card\" id=\"{id}\">")).expect("the chart");
    &html[start..start + html[start..].find("</figure>").unwrap()]
}

async fn the_overview_counts_seeded_events_per_hour_and_live_sessions_by_role(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("root", Role::Admin).await;
    app.create_user("bob", Role::User).await;
    let start = mid_hour_window(&app);
    let h = |hour: i64, minute: i64| start + hour * HOUR_MS + minute * 60_000;
    let mut seeded = vec![
        // Outside the window on either side: not counted.
        ("sign_in", start - 1),
        ("sign_in", start + 24 * HOUR_MS),
        // Other kinds: not on these charts.
        ("sign_out", h(3, 5)),
        ("session_expired", h(3, 6)),
        // The first hour's first millisecond counts.
        ("sign_in_failed", start),
        ("locked_out", h(10, 59)),
        ("new_device_sign_in", h(10, 0)),
        ("new_device_sign_in", h(20, 30)),
    ];
    seeded.extend([("sign_in", h(3, 0)), ("sign_in", h(3, 30)), ("sign_in", h(3, 59))]);
    seeded.extend([("sign_in_failed", h(3, 10)), ("sign_in_failed", h(3, 20))]);
    // A wrong second factor is a failed sign-in too.
    seeded.push(("second_factor_failed", h(3, 40)));
    seed_events(&app, seeded).await;

    // Sessions now: one admin, two of bob's (two browsers), and an expired one that does not count.
    app.login("root", PASSWORD).await;
    app.browser().login("bob", PASSWORD).await;
    app.browser().login("bob", PASSWORD).await;
    let page = app.get("/admin").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();

    assert_eq!(text_of(&html, "live-total"), "3");
    assert_eq!(text_of(&html, "live-admin"), "1");
    assert_eq!(text_of(&html, "live-user"), "2");
    // The three real sign-ins happened now (somewhere in the last two hours of the window).
    assert_eq!(text_of(&html, "total-sign_in"), "6", "3 seeded in hour 3 + 3 real ones");
    assert_eq!(text_of(&html, "total-sign_in_failed"), "4", "3 wrong passwords and 1 wrong second factor");
    assert_eq!(text_of(&html, "total-locked_out"), "1");
    assert_eq!(text_of(&html, "total-new_device_sign_in"), "2");

    let sign_ins = figure(&html, "chart-sign-ins");
    let row = |hour: i64, cells: &[(&str, u32)]| {
        let mut row = format!("<tr><th scope=\"row\">{}</th>", hour_name(h(hour, 0)));
        for (label, n) in cells {
            row.push_str(&format!("<td data-label=\"{label}\">{n}</td>"));
        }
        row + "</tr>"
    };
    assert!(sign_ins.contains(&row(3, &[("Sign-ins", 3), ("Failed sign-ins", 3)])), "hour 3 in the table");
    assert!(sign_ins.contains(&row(0, &[("Sign-ins", 0), ("Failed sign-ins", 1)])), "hour 0 in the table");
    assert!(sign_ins.contains(&row(10, &[("Sign-ins", 0), ("Failed sign-ins", 0)])));
    assert_eq!(sign_ins.matches("<tr><th scope=\"row\">").count(), 24, "one row per hour");
    assert!(sign_ins.contains(&format!("<title>{}: 3 sign-ins</title>", hour_name(h(3, 0)))), "a bar per count");
    let alerts = figure(&html, "chart-alerts");
    assert!(alerts.contains(&row(10, &[("Lockouts", 1), ("New-device sign-ins", 1)])));
    assert!(alerts.contains(&row(20, &[("Lockouts", 0), ("New-device sign-ins", 1)])));
    let sessions = figure(&html, "chart-sessions");
    assert!(sessions.contains("<tr><th scope=\"row\">admins</th><td data-label=\"Live sessions\">1</td></tr>"));
    assert!(sessions.contains("<tr><th scope=\"row\">users</th><td data-label=\"Live sessions\">2</td></tr>"));

    // An expired session is not live.
    app.with_db(|c| {
        use dashboard::db::schema::sessions;
        let one: String = sessions::table
            .inner_join(dashboard::db::schema::users::table)
            .filter(dashboard::db::schema::users::username.eq("bob"))
            .select(sessions::id)
            .first(c)?;
        diesel::update(sessions::table.find(one)).set(sessions::idle_expires_at.eq(0)).execute(c)
    })
    .await;
    let html = app.get("/admin").await.text().await.unwrap();
    assert_eq!(text_of(&html, "live-user"), "1");
}

async fn the_overview_is_for_admins_only_and_its_charts_are_accessible_svg(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("root", Role::Admin).await;
    app.create_user("bob", Role::User).await;
    let bob = app.browser();
    bob.login("bob", PASSWORD).await;
    let res = bob.get("/admin").await;
    assert_eq!(res.status(), 403);
    assert!(!bob.get("/").await.text().await.unwrap().contains("href=\"/admin\""), "no link for users");
    assert_eq!(bob.get("/").await.status(), 200, "the session stays valid");

    app.login("root", PASSWORD).await;
    let home = app.get("/").await.text().await.unwrap();
    assert!(home.contains("<a href=\"/admin\">Overview</a>"), "the navigation links it for admins");
    let res = app.get("/admin").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let html = res.text().await.unwrap();
    for id in ["chart-sessions", "chart-sign-ins", "chart-alerts"] {
        let chart = figure(&html, id);
        assert!(
            chart.contains("<svg class=\"chart\" viewBox=\"0 0 480 230\" role=\"img\""),
            "{id}: scales to the page"
        );
        assert!(chart.contains(&format!("aria-labelledby=\"{id}-title {id}-desc\"")), "{id}");
        assert!(chart.contains(&format!("<title id=\"{id}-title\">")), "{id}: a title");
        assert!(chart.contains(&format!("<desc id=\"{id}-desc\">")), "{id}: a description");
        assert!(chart.contains("<details>") && chart.contains("<summary>Data table</summary>"), "{id}: a table");
        assert!(chart.contains("<table>") && chart.contains("<th scope=\"col\">"), "{id}");
    }
    // The CSP allows no inline styles or scripts: the page has none.
    assert!(!html.contains("style=") && !html.contains("<script>"), "no inline style or script");
}
