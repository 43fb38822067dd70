//! New-device notices: a sign-in from a device and network the user has not used in 90 days is
//! recorded and shown to the user's other live sessions until dismissed.

use std::sync::Arc;
use std::time::Duration;

use dashboard::db::schema::auth_events;
use dashboard::db::users::Role;
use diesel::prelude::*;

use crate::both_databases;
use crate::helpers::*;

both_databases!(
    the_first_sign_in_is_not_new_and_a_new_device_notifies_the_other_sessions_until_dismissed,
    the_same_browser_on_the_same_network_is_known_and_another_network_or_90_days_is_not,
    ending_the_new_session_or_all_others_removes_their_notices,
);

const FIREFOX_LINUX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const CHROME_WINDOWS: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";

/// A browser with this user agent, whose requests come through a trusted proxy from `ip`.
fn browser_from(app: &TestApp, user_agent: &str, ip: &str) -> Browser {
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", ip.parse().unwrap());
    let client = reqwest::Client::builder()
        .user_agent(user_agent)
        .default_headers(headers)
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Browser { client, jar, address: app.address.clone() }
}

async fn app_behind_a_proxy(kind: DbKind) -> TestApp {
    let app = spawn_app_with(TestDb::new(kind), |s| s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await;
    app.create_user("alice", Role::User).await;
    app
}

async fn new_device_events(app: &TestApp) -> Vec<String> {
    app.with_db(|c| {
        auth_events::table
            .filter(auth_events::kind.eq("new_device_sign_in"))
            .order(auth_events::at)
            .select(auth_events::detail)
            .load(c)
    })
    .await
}

async fn page(b: &Browser) -> String {
    let res = b.get("/").await;
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

fn has_notice(html: &str) -> bool {
    html.contains("id=\"new-device-notice\"")
}

async fn the_first_sign_in_is_not_new_and_a_new_device_notifies_the_other_sessions_until_dismissed(kind: DbKind) {
    let app = app_behind_a_proxy(kind).await;
    let laptop = browser_from(&app, FIREFOX_LINUX, "203.0.113.7");
    assert_eq!(laptop.login("alice", PASSWORD).await.status(), 303);
    assert!(!has_notice(&page(&laptop).await), "the first sign-in ever is not new");
    assert!(new_device_events(&app).await.is_empty());

    let stranger = browser_from(&app, CHROME_WINDOWS, "198.51.100.23");
    assert_eq!(stranger.login("alice", PASSWORD).await.status(), 303);
    assert_eq!(new_device_events(&app).await, ["Chrome on Windows from 198.51.100.0/24"]);
    assert!(!has_notice(&page(&stranger).await), "the new session itself gets no notice");

    // The other session sees what, where and when, with the buttons, on every page until dismissed.
    let html = page(&laptop).await;
    assert!(has_notice(&html));
    let stranger_id: String = app
        .with_db(|c| {
            use dashboard::db::schema::sessions;
            sessions::table.filter(sessions::user_agent.eq(CHROME_WINDOWS)).select(sessions::id).first(c)
        })
        .await;
    assert!(html.contains("<strong>Chrome on Windows</strong> from 198.51.100.23, "), "{html}");
    assert!(html.contains(&format!("action=\"/account/sessions/{stranger_id}/revoke\"")), "end that session");
    assert!(html.contains("href=\"/account/password\">Change your password"));
    assert!(has_notice(&laptop.get("/account/sessions").await.text().await.unwrap()), "shown on the next pages too");

    // Dismissing needs the CSRF token; a dismissal of older notices leaves this one.
    let res = laptop.client.post(laptop.url("/account/notices/dismiss")).form(&[("seen", "0")]).send().await.unwrap();
    assert_eq!(res.status(), 403);
    let res = laptop.submit("/", "/account/notices/dismiss", &[("seen", "0")]).await;
    assert_eq!(res.status(), 303);
    assert!(has_notice(&page(&laptop).await), "a notice newer than the page's stays");
    let seen = {
        let marker = "name=\"seen\" value=\"";
        let start = html.find(marker).unwrap() + marker.len();
        html[start..start + html[start..].find('"').unwrap()].to_owned()
    };
    let res = laptop
        .client
        .post(laptop.url("/account/notices/dismiss"))
        .header("referer", laptop.url("/account/sessions"))
        .form(&[("seen", seen.as_str()), ("csrf_token", &csrf_from(&html))])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/account/sessions", "back to the page it was dismissed on");
    assert!(!has_notice(&page(&laptop).await), "dismissed");
    assert!(!has_notice(&page(&laptop).await), "and stays dismissed");
    assert!(!has_notice(&page(&stranger).await));
}

async fn the_same_browser_on_the_same_network_is_known_and_another_network_or_90_days_is_not(kind: DbKind) {
    let app = app_behind_a_proxy(kind).await;
    let first = browser_from(&app, FIREFOX_LINUX, "203.0.113.7");
    first.login("alice", PASSWORD).await;
    // Another address of the same /24, another Firefox version on Linux: the same device.
    let newer = FIREFOX_LINUX.replace("128.0", "131.0");
    browser_from(&app, &newer, "203.0.113.200").login("alice", PASSWORD).await;
    assert!(new_device_events(&app).await.is_empty());
    assert!(!has_notice(&page(&first).await));

    // The same browser from another network is new; so is an IPv6 address.
    browser_from(&app, FIREFOX_LINUX, "203.0.114.7").login("alice", PASSWORD).await;
    browser_from(&app, FIREFOX_LINUX, "2001:db8:1:2::7").login("alice", PASSWORD).await;
    browser_from(&app, FIREFOX_LINUX, "2001:db8:1:2:ffff::1").login("alice", PASSWORD).await; // same /64
    assert_eq!(
        new_device_events(&app).await,
        ["Firefox on Linux from 203.0.114.0/24", "Firefox on Linux from 2001:db8:1:2::/64"]
    );
    let html = page(&first).await;
    assert_eq!(html.matches("data-notice-session=").count(), 2, "both notices, one element");
    assert_eq!(html.matches("id=\"new-device-notice\"").count(), 1);

    // 91 days later (every session long expired), the first network is new again.
    app.clock.advance(Duration::from_secs(91 * 24 * 3600));
    browser_from(&app, FIREFOX_LINUX, "203.0.113.7").login("alice", PASSWORD).await;
    assert_eq!(new_device_events(&app).await.len(), 3);
    // … and the housekeeping forgets devices not seen in 90 days.
    let rows = || app.with_db(|c| dashboard::db::schema::known_devices::table.count().get_result::<i64>(c));
    assert_eq!(rows().await, 3);
    app.with_db(|c| {
        use dashboard::db::schema::known_devices;
        let long_ago = dashboard::util::now_ms() - 91 * 24 * 3_600_000;
        diesel::update(known_devices::table.filter(known_devices::network.ne("203.0.113.0/24")))
            .set(known_devices::last_seen.eq(long_ago))
            .execute(c)
    })
    .await;
    let retention = dashboard::session::pruner::Retention { events: None, throttle_window: Duration::from_secs(60) };
    app.with_db(move |c| Ok(dashboard::session::pruner::prune_housekeeping(c, retention, || {}).unwrap())).await;
    assert_eq!(rows().await, 1);
}

async fn ending_the_new_session_or_all_others_removes_their_notices(kind: DbKind) {
    let app = app_behind_a_proxy(kind).await;
    let laptop = browser_from(&app, FIREFOX_LINUX, "203.0.113.7");
    laptop.login("alice", PASSWORD).await;
    let stranger = browser_from(&app, CHROME_WINDOWS, "198.51.100.23");
    stranger.login("alice", PASSWORD).await;
    let html = page(&laptop).await;
    let marker = "data-notice-session=\"";
    let start = html.find(marker).unwrap() + marker.len();
    let id = html[start..start + html[start..].find('"').unwrap()].to_owned();
    let res = laptop.submit("/", &format!("/account/sessions/{id}/revoke"), &[]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(stranger.get("/").await.status(), 303, "that session is over");
    assert!(!has_notice(&page(&laptop).await), "and its notice gone");

    // Ending all other sessions ends what every notice was about: they go too.
    browser_from(&app, CHROME_WINDOWS, "192.0.2.1").login("alice", PASSWORD).await;
    assert!(has_notice(&page(&laptop).await));
    assert_eq!(laptop.submit("/", "/account/sessions/revoke-others", &[]).await.status(), 303);
    assert!(!has_notice(&page(&laptop).await));
}
