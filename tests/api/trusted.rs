//! Trusted browsers: *Trust this browser* at the second step skips the second factor at later
//! sign-ins on that browser (never the password), until it expires, is forgotten, or the password
//! changes, the factors are reset or the user is disabled — also while a sign-in is in flight.

use std::time::Duration;

use dashboard::db::schema::{sessions, trusted_browsers};
use dashboard::db::users::Role;
use diesel::prelude::*;

use crate::both_databases;
use crate::helpers::*;
use crate::reauth::details_of;
use crate::second_factors::{code, enrol, next_step};

both_databases!(
    a_trusted_browser_skips_the_second_factor_but_never_the_password,
    forgetting_a_password_change_a_reset_or_a_disable_ends_trust,
    trust_ended_while_a_sign_in_is_in_flight_asks_for_the_second_factor,
    trust_runs_out_and_can_be_turned_off,
);

/// `name` with the app on (enrolled through the pages), signed out; returns the secret.
async fn with_the_app(app: &TestApp, name: &str, role: Role) -> Vec<u8> {
    app.create_user(name, role).await;
    let b = app.browser();
    b.login(name, PASSWORD).await;
    let (secret, _) = enrol(app, &b).await;
    b.logout().await;
    next_step(app);
    secret
}

/// Signs `name` in on `b` with a code, ticking *Trust this browser*.
async fn sign_in_trusting(app: &TestApp, b: &Browser, name: &str, secret: &[u8]) {
    assert_eq!(location(&b.login(name, PASSWORD).await), "/login/mfa");
    let page = b.get("/login/mfa").await.text().await.unwrap();
    assert!(page.contains("id=\"trust-browser\"") && page.contains("Trust this browser for 30 days"), "{page}");
    let res = b.submit("/login/mfa", "/login/mfa", &[("code", &code(app, secret, 0)), ("trust_browser", "on")]).await;
    assert_eq!(location(&res), "/");
    next_step(app);
}

async fn methods(app: &TestApp) -> Vec<String> {
    app.with_db(|c| sessions::table.order(sessions::created_at).select(sessions::auth_method).load(c)).await
}

async fn trusted_rows(app: &TestApp) -> i64 {
    app.with_db(|c| trusted_browsers::table.count().get_result(c)).await
}

async fn a_trusted_browser_skips_the_second_factor_but_never_the_password(kind: DbKind) {
    let app = spawn_app(kind).await;
    let secret = with_the_app(&app, "alice", Role::User).await;
    let me = app.me();
    sign_in_trusting(&app, &me, "alice", &secret).await;
    assert!(me.cookie("dashboard_trusted").is_some(), "the browser got its cookie");
    assert_eq!(details_of(&app, "browser_trusted").await, ["for 30 days"]);
    let page = me.get("/account/security").await.text().await.unwrap();
    assert_eq!(page.matches("data-trusted-browser-id=").count(), 1, "listed on the security page");
    me.logout().await;

    // The password is still asked; the second factor is not.
    assert_eq!(me.login("alice", "a wrong password here").await.status(), 401);
    assert_eq!(location(&me.login("alice", PASSWORD).await), "/");
    assert_eq!(me.get("/").await.status(), 200);
    assert_eq!(methods(&app).await.last().unwrap(), "trusted_browser");
    assert_eq!(details_of(&app, "trusted_browser_used").await, ["the second factor was skipped"]);
    // A sensitive action still wants the factor: the skip did not prove it.
    let res = me.submit("/account/security", "/account/recovery-codes", &[]).await;
    assert!(location(&res).starts_with("/reauth"), "{}", location(&res));
    me.logout().await;

    // Another browser is asked; and the cookie is alice's trust only, not bob's.
    let other = app.browser();
    assert_eq!(location(&other.login("alice", PASSWORD).await), "/login/mfa");
    with_the_app(&app, "bob", Role::User).await;
    assert_eq!(location(&me.login("bob", PASSWORD).await), "/login/mfa");
}

async fn forgetting_a_password_change_a_reset_or_a_disable_ends_trust(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("root", Role::Admin).await;
    let secret = with_the_app(&app, "alice", Role::User).await;
    let me = app.me();

    // Forget this one: the next sign-in asks for the factor again.
    sign_in_trusting(&app, &me, "alice", &secret).await;
    let page = me.get("/account/security").await.text().await.unwrap();
    let marker = "data-trusted-browser-id=\"";
    let start = page.find(marker).unwrap() + marker.len();
    let id = &page[start..start + page[start..].find('"').unwrap()];
    let res = me.submit("/account/security", &format!("/account/trusted-browsers/{id}/forget"), &[]).await;
    assert_eq!(location(&res), "/account/security?done=browser-forgotten");
    let res = me.submit("/account/security", &format!("/account/trusted-browsers/{id}/forget"), &[]).await;
    assert_eq!(res.status(), 404, "forgotten already");
    assert_eq!(trusted_rows(&app).await, 0);
    me.logout().await;
    assert_eq!(location(&me.login("alice", PASSWORD).await), "/login/mfa");

    // Forget all.
    let res =
        me.submit("/login/mfa", "/login/mfa", &[("code", &code(&app, &secret, 0)), ("trust_browser", "on")]).await;
    assert_eq!(location(&res), "/");
    next_step(&app);
    let res = me.submit("/account/security", "/account/trusted-browsers/forget-all", &[]).await;
    assert_eq!(location(&res), "/account/security?done=browsers-forgotten&n=1");
    assert_eq!(trusted_rows(&app).await, 0);
    me.logout().await;

    // A password change (by the command line here, like an admin's) ends it.
    sign_in_trusting(&app, &me, "alice", &secret).await;
    let pool = app.app_state().pool.clone();
    let hash = password_hash().to_owned();
    tokio::task::spawn_blocking(move || {
        dashboard::accounts::set_password(&mut pool.get().unwrap(), "alice", &hash, dashboard::accounts::Actor::Cli)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(trusted_rows(&app).await, 0, "a password change ends trust");
    assert_eq!(location(&me.login("alice", PASSWORD).await), "/login/mfa");

    // An admin's disable ends it too.
    let res =
        me.submit("/login/mfa", "/login/mfa", &[("code", &code(&app, &secret, 0)), ("trust_browser", "on")]).await;
    assert_eq!(location(&res), "/");
    next_step(&app);
    assert_eq!(trusted_rows(&app).await, 1);
    let admin = app.browser();
    admin.login("root", PASSWORD).await;
    admin.submit("/admin/users", "/admin/users/alice/disable", &[]).await;
    assert_eq!(trusted_rows(&app).await, 0, "a disable ends trust");
    admin.submit("/admin/users", "/admin/users/alice/enable", &[]).await;

    // And an admin's reset of the factors.
    let me = app.browser();
    assert_eq!(location(&me.login("alice", PASSWORD).await), "/login/mfa");
    let res =
        me.submit("/login/mfa", "/login/mfa", &[("code", &code(&app, &secret, 0)), ("trust_browser", "on")]).await;
    assert_eq!(location(&res), "/");
    assert_eq!(trusted_rows(&app).await, 1);
    admin.submit("/admin/users", "/admin/users/alice/reset-mfa", &[]).await;
    assert_eq!(trusted_rows(&app).await, 0, "a factor reset ends trust");
}

async fn trust_ended_while_a_sign_in_is_in_flight_asks_for_the_second_factor(kind: DbKind) {
    let app = spawn_app(kind).await;
    let secret = with_the_app(&app, "alice", Role::User).await;
    let (me, elsewhere) = (app.me(), app.browser());
    sign_in_trusting(&app, &me, "alice", &secret).await;
    me.logout().await;
    assert_eq!(location(&elsewhere.login("alice", PASSWORD).await), "/login/mfa");
    let res = elsewhere.submit("/login/mfa", "/login/mfa", &[("code", &code(&app, &secret, 0))]).await;
    assert_eq!(location(&res), "/");
    let sessions_before = app.session_rows().await;

    // The trusted browser's sign-in is held with its password checked; meanwhile alice forgets
    // every trusted browser from her other session.
    let mut held = app.app_state().trusted_sign_in_hold.hold_next();
    let sign_in = me.submit_in_background("/login", "/login", &[("username", "alice"), ("password", PASSWORD)]).await;
    held.reached().await;
    let res = elsewhere.submit("/account/security", "/account/trusted-browsers/forget-all", &[]).await;
    assert_eq!(location(&res), "/account/security?done=browsers-forgotten&n=1");
    held.release();
    let res = sign_in.await.unwrap();
    assert_eq!(location(&res), "/login/mfa", "the second factor is asked after all");
    assert_eq!(app.session_rows().await, sessions_before, "no session was made from the ended trust");
    assert!(details_of(&app, "trusted_browser_used").await.is_empty());
}

async fn trust_runs_out_and_can_be_turned_off(kind: DbKind) {
    let app = spawn_app(kind).await;
    let secret = with_the_app(&app, "alice", Role::User).await;
    let me = app.me();
    sign_in_trusting(&app, &me, "alice", &secret).await;
    me.logout().await;
    app.clock.advance(Duration::from_secs(30 * 86_400 + 1));
    assert_eq!(location(&me.login("alice", PASSWORD).await), "/login/mfa", "30 days later it is over");

    let app = spawn_app_with(TestDb::new(kind), |s| s.sign_in.trust_browser_days = 0).await;
    let secret = with_the_app(&app, "alice", Role::User).await;
    let me = app.me();
    assert_eq!(location(&me.login("alice", PASSWORD).await), "/login/mfa");
    let page = me.get("/login/mfa").await.text().await.unwrap();
    assert!(!page.contains("trust-browser"), "not offered");
    let res =
        me.submit("/login/mfa", "/login/mfa", &[("code", &code(&app, &secret, 0)), ("trust_browser", "on")]).await;
    assert_eq!(location(&res), "/");
    assert!(me.cookie("dashboard_trusted").is_none());
    assert_eq!(trusted_rows(&app).await, 0);
}
