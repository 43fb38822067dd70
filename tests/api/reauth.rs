//! Re-authentication before sensitive actions: the window, `/reauth`, and its share
//! of the username's lock. The window is moved with the app's clock, never by sleeping.

use std::time::Duration;

use dashboard::db::schema::auth_events;
use dashboard::db::users::Role;
use diesel::prelude::*;

use crate::both_databases;
use crate::helpers::*;

both_databases!(
    a_fresh_sign_in_may_act_and_each_sensitive_action_restarts_the_window,
    the_password_at_reauth_opens_the_window_and_leads_back_to_the_form,
    reauth_failures_count_towards_the_same_lock_as_sign_in,
    a_password_change_is_its_own_authentication,
    a_user_on_an_admin_action_gets_403_not_an_offer_to_authenticate,
);

const WINDOW: Duration = Duration::from_secs(15 * 60);

pub async fn event_kinds(app: &TestApp) -> Vec<String> {
    app.with_db(|c| auth_events::table.order(auth_events::at.asc()).select(auth_events::kind).load(c)).await
}

pub async fn details_of(app: &TestApp, kind: &'static str) -> Vec<String> {
    app.with_db(move |c| {
        auth_events::table
            .filter(auth_events::kind.eq(kind))
            .order(auth_events::at.asc())
            .select(auth_events::detail)
            .load(c)
    })
    .await
}

async fn revoke_others(b: &Browser) -> reqwest::Response {
    b.submit("/account/sessions", "/account/sessions/revoke-others", &[]).await
}

async fn a_fresh_sign_in_may_act_and_each_sensitive_action_restarts_the_window(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let me = app.me();
    me.login("alice", PASSWORD).await;
    let ten = Duration::from_secs(10 * 60);
    app.clock.advance(ten);
    assert!(location(&revoke_others(&me).await).starts_with("/account/sessions?done="), "inside the window");
    app.clock.advance(ten);
    // 20 minutes after signing in, 10 after the last sensitive action: still inside.
    assert!(location(&revoke_others(&me).await).starts_with("/account/sessions?done="), "the action restarted it");
    app.clock.advance(WINDOW);
    let res = revoke_others(&me).await;
    assert_eq!(location(&res), "/reauth?next=%2Faccount%2Fsessions");
    // Reading pages does not restart it.
    assert_eq!(me.get("/account/sessions").await.status(), 200);
    assert_eq!(location(&revoke_others(&me).await), "/reauth?next=%2Faccount%2Fsessions");
}

async fn the_password_at_reauth_opens_the_window_and_leads_back_to_the_form(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let (me, other) = (app.me(), app.browser());
    me.login("alice", PASSWORD).await;
    other.login("alice", PASSWORD).await;
    app.clock.advance(WINDOW);
    assert_eq!(location(&revoke_others(&me).await), "/reauth?next=%2Faccount%2Fsessions");
    assert_eq!(app.session_rows().await, 2, "nothing was done");

    let page = "/reauth?next=%2Faccount%2Fsessions";
    let wrong = me.submit(page, "/reauth", &[("password", "not the password"), ("next", "/account/sessions")]).await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.text().await.unwrap().contains("The password is not right."));
    let right = me.submit(page, "/reauth", &[("password", PASSWORD), ("next", "/account/sessions")]).await;
    assert_eq!((right.status().as_u16(), location(&right)), (303, "/account/sessions".to_owned()));
    assert!(location(&revoke_others(&me).await).starts_with("/account/sessions?done="));
    assert_eq!(app.session_rows().await, 1);
    assert_eq!(details_of(&app, "reauth_failed").await, ["wrong password"]);
    assert_eq!(details_of(&app, "reauthenticated").await, ["with password"]);

    // `next` must be a local path.
    app.clock.advance(WINDOW);
    let away = me.submit("/reauth", "/reauth", &[("password", PASSWORD), ("next", "//evil.example/")]).await;
    assert_eq!(location(&away), "/");
}

async fn reauth_failures_count_towards_the_same_lock_as_sign_in(kind: DbKind) {
    let app = spawn_app_with(TestDb::new(kind), |s| s.sign_in.max_failures = 3).await;
    app.create_user("alice", Role::User).await;
    let me = app.me();
    me.login("alice", PASSWORD).await;
    app.clock.advance(WINDOW);
    for _ in 0..2 {
        let res = me.submit("/reauth", "/reauth", &[("password", "wrong wrong wrong")]).await;
        assert_eq!(res.status(), 401);
    }
    // The third failure, at the sign-in form of another browser, locks the username.
    assert_eq!(app.browser().login("alice", "wrong wrong wrong").await.status(), 401);
    assert_eq!(app.browser().login("alice", PASSWORD).await.status(), 429, "locked for sign-in");
    let res = me.submit("/reauth", "/reauth", &[("password", PASSWORD)]).await;
    assert_eq!(res.status(), 429, "and for re-authentication");
    assert!(event_kinds(&app).await.contains(&"locked_out".to_owned()));
    assert_eq!(me.get("/").await.status(), 200, "the session itself stays");
}

async fn a_password_change_is_its_own_authentication(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let me = app.me();
    me.login("alice", PASSWORD).await;
    app.clock.advance(WINDOW);
    let new = "a new and rather long passphrase";
    let res = me
        .submit(
            "/account/password",
            "/account/password",
            &[("current_password", PASSWORD), ("new_password", new), ("confirm_password", new)],
        )
        .await;
    assert_eq!(location(&res), "/account/password?done=password-changed");
    // It restarted the window.
    assert!(location(&revoke_others(&me).await).starts_with("/account/sessions?done="));
}

async fn a_user_on_an_admin_action_gets_403_not_an_offer_to_authenticate(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let me = app.me();
    me.login("alice", PASSWORD).await;
    app.clock.advance(WINDOW);
    let res = me.submit("/", "/admin/users/alice/role", &[("role", "admin")]).await;
    assert_eq!(res.status(), 403);
}
