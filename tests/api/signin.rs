//! The sign-in pipeline's rules across its steps: locks that grow until a success and that an
//! administrator (or the command line) can end, one counter policy for every step (the username's
//! and the address's), and a pending sign-in that belongs to the browser that typed the password.

use std::time::Duration;

use dashboard::db::schema::pending_sign_ins;
use dashboard::db::throttle;
use dashboard::db::users::Role;
use diesel::prelude::*;

use crate::both_databases;
use crate::cli::{dashboard as run_cli, ok};
use crate::helpers::*;
use crate::reauth::details_of;
use crate::second_factors::{code, enrol, next_step};

both_databases!(
    each_further_lock_lasts_twice_the_one_before_until_a_success,
    an_admin_sees_a_lock_and_ends_it,
    the_command_line_ends_a_lock,
    the_second_step_counts_on_the_username_and_the_address,
    a_pending_sign_in_copied_into_another_browser_finishes_nothing,
);

const WRONG: &str = "not-the-password-at-all";

/// Fails alice's password `n` times from `b`; returns the last answer.
async fn fail_times(b: &Browser, n: u32) -> reqwest::Response {
    let mut last = None;
    for _ in 0..n {
        last = Some(b.login("alice", WRONG).await);
    }
    last.unwrap()
}

/// The `Retry-After` of a locked answer, in seconds.
fn retry_after(res: &reqwest::Response) -> i64 {
    res.headers()["retry-after"].to_str().unwrap().parse().unwrap()
}

/// The lock on alice's name as the answer to one more attempt (right password or not) shows it,
/// in whole minutes (the clock runs on while the test does).
async fn locked_for(b: &Browser) -> i64 {
    let res = b.login("alice", PASSWORD).await;
    assert_eq!(res.status(), 429, "locked");
    (retry_after(&res) + 59) / 60
}

async fn each_further_lock_lasts_twice_the_one_before_until_a_success(kind: DbKind) {
    let app = spawn_app_with(TestDb::new(kind), |s| s.sign_in.max_failures = 2).await;
    app.create_user("alice", Role::User).await;
    let me = app.me();
    let minute = 60;
    let mut expected = Vec::new();
    for lock in [15, 30, 60, 120] {
        fail_times(&me, 2).await;
        assert_eq!(locked_for(&me).await, lock, "lock of {lock} minutes");
        expected.push(format!("username, for {}", if lock < 60 { format!("{lock} minutes") } else { hours(lock) }));
        app.clock.advance(Duration::from_secs((lock * minute + 1) as u64));
    }
    assert_eq!(details_of(&app, "locked_out").await, expected, "each lockout event names its length");
    // A success resets the growth: the next lock is the first one's length again.
    assert_eq!(location(&me.login("alice", PASSWORD).await), "/");
    me.logout().await;
    fail_times(&me, 2).await;
    assert_eq!(locked_for(&me).await, 15);
}

fn hours(minutes: i64) -> String {
    match minutes / 60 {
        1 => "1 hour".to_owned(),
        n => format!("{n} hours"),
    }
}

async fn an_admin_sees_a_lock_and_ends_it(kind: DbKind) {
    let app = spawn_app_with(TestDb::new(kind), |s| s.sign_in.max_failures = 2).await;
    app.create_user("root", Role::Admin).await;
    app.create_user("alice", Role::User).await;
    let alice = app.browser();
    fail_times(&alice, 2).await;
    locked_for(&alice).await;

    let admin = app.me();
    admin.login("root", PASSWORD).await;
    let page = admin.get("/admin/users").await.text().await.unwrap();
    let row = &page[page.find("data-user=\"alice\"").unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("data-locked-until=") && row.contains("locked until"), "{row}");
    assert!(row.contains("action=\"/admin/users/alice/unlock\""), "an unlock button: {row}");
    let root_row = &page[page.find("data-user=\"root\"").unwrap()..];
    assert!(!root_row[..root_row.find("</tr>").unwrap()].contains("/unlock"), "no button without a lock");

    // Ending it is a sensitive action, like every admin action.
    app.clock.advance(Duration::from_secs(16 * 60));
    fail_times(&alice, 2).await; // locked again, for 30 minutes this time
    let res = admin.submit("/admin/users", "/admin/users/alice/unlock", &[]).await;
    assert!(location(&res).starts_with("/reauth"), "{}", location(&res));
    let res = admin
        .submit("/reauth?next=%2Fadmin%2Fusers", "/reauth", &[("password", PASSWORD), ("next", "/admin/users")])
        .await;
    assert_eq!(location(&res), "/admin/users");
    let res = admin.submit("/admin/users", "/admin/users/alice/unlock", &[]).await;
    assert_eq!(location(&res), "/admin/users?done=unlocked");
    assert!(!admin.get("/admin/users").await.text().await.unwrap().contains("data-locked-until"));
    assert_eq!(details_of(&app, "unlocked").await, ["the lock ended"]);
    // alice signs in again, and her next lock is the shortest again.
    assert_eq!(location(&alice.login("alice", PASSWORD).await), "/");
    alice.logout().await;
    fail_times(&alice, 2).await;
    assert_eq!(locked_for(&alice).await, 15);
    // A name that is not a user's: 404.
    assert_eq!(admin.submit("/admin/users", "/admin/users/nobody/unlock", &[]).await.status(), 404);
}

async fn the_command_line_ends_a_lock(kind: DbKind) {
    let db = TestDb::new(kind);
    let app = spawn_app_with(db.clone(), |s| s.sign_in.max_failures = 2).await;
    app.create_user("alice", Role::User).await;
    let me = app.me();
    fail_times(&me, 2).await;
    locked_for(&me).await;
    let out = ok(run_cli(&db, &["user", "unlock", "ALICE"], None));
    assert!(out.contains("ended the lock on `alice`"), "{out}");
    assert_eq!(location(&me.login("alice", PASSWORD).await), "/");
    let out = ok(run_cli(&db, &["user", "unlock", "alice"], None));
    assert!(out.contains("was not locked"), "{out}");
    let out = run_cli(&db, &["user", "unlock", "nobody"], None);
    assert!(out.code != 0 && out.stderr.contains("no user named"), "{}", out.stderr);
}

/// alice with the app on, signed out, and her secret.
async fn alice_with_the_app(app: &TestApp) -> Vec<u8> {
    app.create_user("alice", Role::User).await;
    let me = app.me();
    me.login("alice", PASSWORD).await;
    let (secret, _) = enrol(app, &me).await;
    me.logout().await;
    next_step(app);
    secret
}

async fn failures(app: &TestApp, key: String) -> i32 {
    app.with_db(move |c| throttle::failures(c, &key)).await
}

async fn the_second_step_counts_on_the_username_and_the_address(kind: DbKind) {
    let app = spawn_app(kind).await;
    let secret = alice_with_the_app(&app).await;
    let me = app.me();
    assert_eq!(location(&me.login("alice", PASSWORD).await), "/login/mfa");
    let (user, address) = (throttle::user_key("alice"), throttle::ip_key("127.0.0.1"));
    let address_before = failures(&app, address.clone()).await;
    let res = me.submit("/login/mfa", "/login/mfa", &[("code", "000000")]).await;
    assert_eq!(res.status(), 401);
    assert_eq!(failures(&app, user.clone()).await, 1, "the username's counter");
    assert_eq!(failures(&app, address.clone()).await, address_before + 1, "and the address's");
    // A right code resets the username's and gives the address's attempt back.
    let res = me.submit("/login/mfa", "/login/mfa", &[("code", &code(&app, &secret, 0))]).await;
    assert_eq!(location(&res), "/");
    assert_eq!(failures(&app, user).await, 0);
    assert_eq!(failures(&app, address).await, address_before + 1, "the wrong code still counts there");
}

async fn a_pending_sign_in_copied_into_another_browser_finishes_nothing(kind: DbKind) {
    let app = spawn_app(kind).await;
    let secret = alice_with_the_app(&app).await;
    let me = app.me();
    assert_eq!(location(&me.login("alice", PASSWORD).await), "/login/mfa");
    let pending = me.cookie("dashboard_signin").expect("a pending sign-in cookie");

    // Another browser, with its own visitor cookie (and so its own form token), gets the copy.
    let thief = app.browser();
    thief.get("/login").await;
    thief.set_cookie("dashboard_signin", &pending);
    assert_eq!(location(&thief.get("/login/mfa").await), "/login", "no second step there");
    let res = thief.submit("/login", "/login/mfa", &[("code", &code(&app, &secret, 0))]).await;
    assert_eq!(location(&res), "/login");
    let token = thief_csrf(&thief).await;
    let res = thief
        .client
        .post(thief.url("/login/mfa/passkey/start"))
        .header("X-CSRF-Token", token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_ne!(res.status(), 200, "nor a passkey ceremony for it");
    assert_eq!(app.session_rows().await, 0, "nobody is signed in");
    let rows: i64 = app.with_db(|c| pending_sign_ins::table.count().get_result(c)).await;
    assert_eq!(rows, 1, "the copy did not end the browser's own pending sign-in");

    // The browser that typed the password finishes it.
    let res = me.submit("/login/mfa", "/login/mfa", &[("code", &code(&app, &secret, 0))]).await;
    assert_eq!(location(&res), "/");
    assert_eq!(app.session_rows().await, 1);
}

async fn thief_csrf(b: &Browser) -> String {
    csrf_from(&b.get("/login").await.text().await.unwrap())
}
