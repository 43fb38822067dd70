//! End to end in a real browser: Chromium driven over WebDriver (chromedriver), both from Debian's
//! packages. Screenshots of each page go to `target/screenshots/` so a failure can be seen, and
//! replace the README's in `docs/screenshots/` whenever the page looks different (see [`shot`]), so
//! those cannot drift from the pages.
//!
//! Reported as ignored when Chromium or chromedriver was not installed as the tests were built (see
//! `build.rs`), unless `DASHBOARD_REQUIRE_BROWSER=1` (set by `.ci/run`), which makes a missing browser
//! a failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use dashboard::db::users::Role;
use fantoccini::{Client, ClientBuilder, Locator};

use crate::helpers::*;

pub struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn find_chromedriver() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("chromedriver")).find(|p| p.is_file())
}

fn find_chromium() -> Option<&'static str> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

pub async fn start_browser() -> (Driver, Client) {
    // Only built to run when they were there (or required): their absence now is a failure.
    let Some(driver) = find_chromedriver() else {
        panic!("chromedriver is not installed: apt-get install chromium-driver");
    };
    let Some(chromium) = find_chromium() else {
        panic!("chromium is not installed: apt-get install chromium");
    };
    // reqwest and fantoccini bring different rustls back ends; choose one for the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver(child);
    let user_data = tempfile::tempdir().unwrap().keep();
    let caps = serde_json::json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1280,900",
                format!("--user-data-dir={}", user_data.display()),
            ]
        }
    });
    let caps = caps.as_object().unwrap().clone();
    for _ in 0..50 {
        match ClientBuilder::rustls()
            .expect("rustls")
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => return (driver, client),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    panic!("chromedriver did not accept a session");
}

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Saves a screenshot to `target/screenshots/`, and to `docs/screenshots/` (the README's) when the page
/// looks different from the picture there: another size, or more than [`CHANGED`] of its pixels.
/// Times and random session ids differ on every run and stay well under that, so a run that changes
/// no page leaves the tree clean; one that changes a page (a new column, a new style) refreshes its
/// picture, to be committed with the change. `DASHBOARD_UPDATE_DOCS=1` rewrites them all.
pub async fn shot(client: &Client, name: &str) {
    accessible(client, name).await;
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), &png).unwrap();
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    let committed = docs.join(format!("{name}.png"));
    let force = std::env::var("DASHBOARD_UPDATE_DOCS").is_ok_and(|v| v == "1");
    let changed = std::fs::read(&committed).map_or(1.0, |old| changed_fraction(&old, &png));
    if force || changed > CHANGED {
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(&committed, &png).unwrap();
        println!("docs/screenshots/{name}.png refreshed ({:.1} % of its pixels changed)", changed * 100.0);
    }
}

/// The WCAG 2.2 A and AA rules axe-core checks (its tags).
const WCAG_TAGS: [&str; 6] = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"];

/// Runs axe-core (installed by `npm ci` in `tests/browser/`) on the page and fails on any violation of
/// impact *serious* or *critical*, naming the rule and the elements. Every picture of the tour passes
/// here first, so every page is checked at each width it is shown at.
async fn accessible(client: &Client, page: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/node_modules/axe-core/axe.min.js");
    let source = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("axe-core is not installed ({e}): run `npm ci` in tests/browser (Debian package npm)")
    });
    // WebDriver runs scripts outside the page's Content-Security-Policy, which stays as served.
    client.execute(&format!("{source}\nreturn true;"), vec![]).await.expect("load axe-core");
    let script = "const done = arguments[arguments.length - 1]; \
        axe.run(document, { runOnly: { type: 'tag', values: arguments[0] } }).then(r => done(r.violations \
          .filter(v => v.impact === 'serious' || v.impact === 'critical') \
          .map(v => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map(n => n.target.join(' ')).join(', ')})`)), \
          e => done([`axe failed: ${e}`]));";
    let found = client.execute_async(script, vec![serde_json::json!(WCAG_TAGS)]).await.expect("run axe-core");
    let found: Vec<String> = serde_json::from_value(found).expect("a list of violations");
    assert!(found.is_empty(), "{page}: accessibility violations (WCAG 2.2 A/AA):\n{}", found.join("\n"));
}

/// The share of pixels that must change for a picture in `docs/screenshots/` to be replaced.
const CHANGED: f64 = 0.03;

/// The share of pixels that differ between two PNGs (1.0 when their sizes or formats differ).
fn changed_fraction(a: &[u8], b: &[u8]) -> f64 {
    fn decode(bytes: &[u8]) -> Option<(png::OutputInfo, Vec<u8>)> {
        let mut reader = png::Decoder::new(bytes).read_info().ok()?;
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).ok()?;
        buf.truncate(info.buffer_size());
        Some((info, buf))
    }
    let (Some((ia, pa)), Some((ib, pb))) = (decode(a), decode(b)) else { return 1.0 };
    if (ia.width, ia.height, ia.color_type, ia.bit_depth) != (ib.width, ib.height, ib.color_type, ib.bit_depth) {
        return 1.0;
    }
    let per_pixel = ia.color_type.samples() * if ia.bit_depth == png::BitDepth::Sixteen { 2 } else { 1 };
    let pixels = pa.len() / per_pixel;
    let differing = pa.chunks(per_pixel).zip(pb.chunks(per_pixel)).filter(|(x, y)| x != y).count();
    differing as f64 / pixels.max(1) as f64
}

/// Opens the header's menu `menu` (a `<details>`) and follows its link `link`.
pub async fn follow(client: &Client, menu: &str, link: &str) {
    let summary = format!("//nav//summary[normalize-space()='{menu}']");
    client.find(Locator::XPath(&summary)).await.unwrap().click().await.unwrap();
    client.find(Locator::LinkText(link)).await.unwrap().click().await.unwrap();
}

/// Presses Tab until the element with id `id` has the focus (at most 20 times): what a keyboard user does.
async fn tab_to(client: &Client, id: &str) {
    for _ in 0..20 {
        let focused = client.active_element().await.unwrap();
        if focused.attr("id").await.unwrap().as_deref() == Some(id) {
            return;
        }
        focused.send_keys("\u{E004}").await.unwrap();
    }
    panic!("Tab never reaches #{id}");
}

/// The header's height over one line of its text: about 1 while it stays on one line.
async fn header_lines(client: &Client) -> f64 {
    let script = "const h = document.querySelector('.topbar'); const s = getComputedStyle(h); \
                  const inner = h.clientHeight - parseFloat(s.paddingTop) - parseFloat(s.paddingBottom); \
                  return inner / parseFloat(getComputedStyle(document.body).lineHeight);";
    client.execute(script, vec![]).await.unwrap().as_f64().unwrap()
}

/// How many lines the first `h1` of the page takes.
async fn heading_lines(client: &Client) -> f64 {
    let script = "const h = document.querySelector('h1'); \
                  return h.getBoundingClientRect().height / parseFloat(getComputedStyle(h).lineHeight);";
    client.execute(script, vec![]).await.unwrap().as_f64().unwrap()
}

async fn path_of(client: &Client) -> String {
    let url = client.current_url().await.unwrap();
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

pub async fn wait_for_path(client: &Client, want: &str) {
    for _ in 0..50 {
        if path_of(client).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(path_of(client).await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    all(not(dashboard_test_browser), dashboard_no_chromedriver),
    ignore = "chromedriver is not installed (Debian package chromium-driver; see tests/api/browser.rs)"
)]
#[cfg_attr(
    all(not(dashboard_test_browser), not(dashboard_no_chromedriver)),
    ignore = "chromium is not installed (Debian package chromium; see tests/api/browser.rs)"
)]
async fn a_person_signs_in_looks_around_and_signs_out_in_a_real_browser() {
    let (_driver, client) = start_browser().await;

    // A new installation: the setup page, whose heading fits on one line at desktop width.
    let fresh = spawn_app(DbKind::Sqlite).await;
    client.goto(fresh.setup_url.as_deref().expect("a setup URL")).await.unwrap();
    assert!(heading_lines(&client).await < 1.5, "the setup heading wraps");
    shot(&client, "setup").await;

    let app = spawn_app(DbKind::Sqlite).await;
    app.create_user("ada", Role::Admin).await;
    app.create_user("grace", Role::User).await;
    // Some company on the session pages.
    let other = app.browser_as(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    );
    other.login("grace", PASSWORD).await;
    app.browser_as("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0")
        .login("ada", PASSWORD)
        .await;

    // A day of sign-ins for the overview's charts: a working day's rhythm, a burst of failures
    // ending in a lockout, two new devices.
    let now = dashboard::util::now_ms();
    let mut day = Vec::new();
    for hours_ago in 0..24i64 {
        let at = now - hours_ago * 3_600_000 - 60_000;
        let busy = [2, 3, 5, 8, 11, 9, 7, 10, 12, 9, 6, 4, 2, 1, 0, 0, 1, 0, 0, 1, 2, 3, 2, 1][hours_ago as usize];
        day.extend((0..busy).map(|i| ("sign_in", at - i * 1000)));
        day.extend((0..busy / 4).map(|i| ("sign_in_failed", at - i * 1000 - 500)));
    }
    day.extend((0..6).map(|i| ("sign_in_failed", now - 5 * 3_600_000 - i * 1000)));
    day.extend([("locked_out", now - 5 * 3_600_000), ("new_device_sign_in", now - 9 * 3_600_000)]);
    day.push(("new_device_sign_in", now - 15 * 3_600_000));
    crate::overview::seed_events(&app, day).await;

    let result = async {
        // Opening the dashboard sends the browser to sign in.
        client.goto(&app.url("/")).await.unwrap();
        wait_for_path(&client, "/login?next=%2F").await;
        shot(&client, "login").await;

        client.find(Locator::Id("username")).await.unwrap().send_keys("ada").await.unwrap();
        client.find(Locator::Id("password")).await.unwrap().send_keys(PASSWORD).await.unwrap();
        client.find(Locator::Css("form[action='/login'] button[type=submit]")).await.unwrap().click().await.unwrap();
        wait_for_path(&client, "/").await;
        let who = client.find(Locator::Id("username")).await.unwrap().text().await.unwrap();
        assert_eq!(who, "ada");
        shot(&client, "dashboard").await;

        follow(&client, "My account", "My sessions").await;
        wait_for_path(&client, "/account/sessions").await;
        let current = client.find_all(Locator::Css("tr[data-current='true']")).await.unwrap();
        assert_eq!(current.len(), 1);
        shot(&client, "my-sessions").await;

        for (menu, link, path, name) in [
            ("My account", "Password", "/account/password", "password"),
            ("Admin", "Overview", "/admin", "admin-overview"),
            ("Admin", "Active sessions", "/admin/sessions", "admin-sessions"),
            ("Admin", "Users", "/admin/users", "admin-users"),
            ("Admin", "Audit log", "/admin/events", "admin-events"),
        ] {
            follow(&client, menu, link).await;
            wait_for_path(&client, path).await;
            if path == "/account/password" {
                assert!(heading_lines(&client).await < 1.5, "the password heading wraps");
            }
            shot(&client, name).await;
        }

        // Narrow screens: 360 px wide.
        client.set_window_size(360, 800).await.unwrap();
        client.goto(&app.url("/admin/sessions")).await.unwrap();
        shot(&client, "admin-sessions-narrow").await;
        let lines = header_lines(&client).await;
        assert!(lines < 1.8, "the header is one line at 360 px ({lines:.2} lines)");
        client.goto(&app.url("/admin")).await.unwrap();
        shot(&client, "admin-overview-narrow").await;
        client.set_window_size(1280, 900).await.unwrap();

        // Sign out through the header's button.
        client.find(Locator::Css("form[action='/logout'] button")).await.unwrap().click().await.unwrap();
        wait_for_path(&client, "/login").await;

        // A page behind the guard sends the browser back to sign in.
        client.goto(&app.url("/account/sessions")).await.unwrap();
        wait_for_path(&client, "/login?next=%2Faccount%2Fsessions").await;

        // Signed in again with the keyboard only (Tab to the fields, Enter to send), then the session
        // expires: the login page says so.
        tab_to(&client, "username").await;
        client.active_element().await.unwrap().send_keys("ada").await.unwrap();
        tab_to(&client, "password").await;
        client.active_element().await.unwrap().send_keys(&format!("{PASSWORD}\u{E007}")).await.unwrap();
        wait_for_path(&client, "/account/sessions").await;
        app.expire_all_sessions().await;
        client.refresh().await.unwrap();
        wait_for_path(&client, "/login?next=%2Faccount%2Fsessions").await;
        let notice = client.find(Locator::Css(".notice")).await.unwrap().text().await.unwrap();
        assert!(notice.contains("Your session has expired"), "{notice}");
        shot(&client, "login-expired").await;
    }
    .await;
    client.close().await.unwrap();
    result
}
