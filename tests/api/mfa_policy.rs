//! The `DASHBOARD_MFA` policy, what administrators and the command line can do about second
//! factors, `/reauth` with the app, and the audit events of all of it. On SQLite and PostgreSQL.

use dashboard::config::MfaPolicy;
use dashboard::db::events::{label, KINDS};
use dashboard::db::users::Role;

use crate::both_databases;
use crate::cli::{dashboard, fails, ok};
use crate::helpers::*;
use crate::reauth::details_of;
use crate::second_factors::{add_passkey, code, enrol, next_step};

both_databases!(
    admins_without_a_factor_are_sent_to_the_security_page_until_they_add_one,
    required_for_everyone_and_a_passkey_counts,
    the_first_admin_under_required_for_admins_is_led_to_the_security_page,
    an_admin_sees_each_users_factors_and_resets_them,
    the_command_line_lists_and_resets_factors,
    reauth_with_the_app_needs_the_password_and_a_fresh_code,
    every_second_factor_event_is_recorded_and_shown_in_words,
);

fn policy(p: MfaPolicy) -> impl FnOnce(&mut dashboard::config::Settings) {
    move |s| s.sign_in.mfa = p
}

async fn admins_without_a_factor_are_sent_to_the_security_page_until_they_add_one(kind: DbKind) {
    let app = spawn_app_with(TestDb::new(kind), policy(MfaPolicy::RequiredForAdmins)).await;
    app.create_user("root", Role::Admin).await;
    app.create_user("alice", Role::User).await;
    let (root, alice) = (app.me(), app.browser());
    root.login("root", PASSWORD).await;
    alice.login("alice", PASSWORD).await;
    for page in ["/", "/admin/users", "/account/sessions", "/nowhere"] {
        assert_eq!(location(&root.get(page).await), "/account/security", "{page}");
    }
    let res = root.submit("/account/security", "/admin/users", &[("username", "x"), ("role", "user")]).await;
    assert_eq!(location(&res), "/account/security", "actions too");
    let page = root.get("/account/security").await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Your account must have a second factor."));
    assert_eq!(root.get("/account/totp").await.status(), 200);
    assert_eq!(root.get("/reauth").await.status(), 200);
    assert_eq!(alice.get("/").await.status(), 200, "users may go on without one");
    enrol(&app, &root).await;
    assert_eq!(root.get("/admin/users").await.status(), 200, "free once the app is on");
    assert_eq!(location(&root.logout().await), "/login");
}

async fn required_for_everyone_and_a_passkey_counts(kind: DbKind) {
    let app = spawn_app_with(TestDb::new(kind), policy(MfaPolicy::Required)).await;
    let alice = app.create_user("alice", Role::User).await;
    let me = app.me();
    me.login("alice", PASSWORD).await;
    assert_eq!(location(&me.get("/").await), "/account/security");
    add_passkey(&app, &alice.id, "pk", "Laptop").await;
    assert_eq!(me.get("/").await.status(), 200);
}

async fn the_first_admin_under_required_for_admins_is_led_to_the_security_page(kind: DbKind) {
    let app = spawn_app_with(TestDb::new(kind), policy(MfaPolicy::RequiredForAdmins)).await;
    let url = app.setup_url.clone().unwrap();
    let path = link_path(&url);
    let token = url.split("token=").nth(1).unwrap().to_owned();
    let fields =
        [("token", token.as_str()), ("username", "root"), ("password", PASSWORD), ("confirm_password", PASSWORD)];
    let res = app.me().submit(&path, "/setup", &fields).await;
    assert_eq!(location(&res), "/account/security");
}

/// The `<tr data-user="NAME">` row of the users page.
fn row(html: &str, name: &str) -> String {
    let start = html.find(&format!(r#"<tr data-user="{name}">"#)).unwrap();
    html[start..start + html[start..].find("</tr>").unwrap()].to_owned()
}

async fn an_admin_sees_each_users_factors_and_resets_them(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("root", Role::Admin).await;
    let alice = app.create_user("alice", Role::User).await;
    app.create_user("bob", Role::User).await;
    let (root, al) = (app.me(), app.browser());
    root.login("root", PASSWORD).await;
    al.login("alice", PASSWORD).await;
    enrol(&app, &al).await;
    add_passkey(&app, &alice.id, "pk", "Phone").await;
    let html = root.get("/admin/users").await.text().await.unwrap();
    assert!(row(&html, "alice").contains(r#"data-mfa="totp passkey""#), "{html}");
    assert!(row(&html, "bob").contains(r#"data-mfa="none""#));
    assert!(row(&html, "alice").contains(r#"action="/admin/users/alice/reset-mfa""#));
    assert!(!row(&html, "bob").contains("reset-mfa"), "nothing to reset");

    let res = root.submit("/admin/users", "/admin/users/alice/reset-mfa", &[]).await;
    assert_eq!(location(&res), "/admin/users?done=factors-reset&n=1");
    assert_eq!(al.get("/").await.status(), 303, "her sessions ended");
    let html = root.get("/admin/users").await.text().await.unwrap();
    assert!(row(&html, "alice").contains(r#"data-mfa="none""#));
    assert_eq!(location(&al.login("alice", PASSWORD).await), "/", "the password alone signs her in again");
    let reset = details_of(&app, "second_factors_reset").await;
    assert_eq!(reset, ["removed the authenticator app and 1 passkey; ended 1 session"]);
    // Their own: asked first.
    let res = root.submit("/admin/users", "/admin/users/root/reset-mfa", &[]).await;
    assert!(res.text().await.unwrap().contains("Remove my second factors"));
    assert_eq!(root.submit("/admin/users", "/admin/users/nobody/reset-mfa", &[]).await.status(), 404);
}

async fn the_command_line_lists_and_resets_factors(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let me = app.me();
    me.login("alice", PASSWORD).await;
    enrol(&app, &me).await;
    let list = ok(dashboard(&app.db, &["user", "list"], None));
    assert!(list.lines().any(|l| l.starts_with("alice\tuser\tactive\t") && l.ends_with("\ttotp")), "{list}");
    let out = ok(dashboard(&app.db, &["user", "reset-mfa", "alice"], None));
    assert_eq!(out.trim(), "removed the second factors of `alice` (totp); ended 1 session");
    assert!(ok(dashboard(&app.db, &["user", "list"], None)).lines().any(|l| l.ends_with("\tnone")));
    assert_eq!(me.get("/").await.status(), 303);
    fails(dashboard(&app.db, &["user", "reset-mfa", "nobody"], None), "no user named");
    let reset = details_of(&app, "second_factors_reset").await;
    assert_eq!(reset, ["removed the authenticator app; ended 1 session"]);
}

async fn reauth_with_the_app_needs_the_password_and_a_fresh_code(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let me = app.me();
    me.login("alice", PASSWORD).await;
    let (secret, res) = enrol(&app, &me).await;
    let codes = crate::second_factors::recovery_codes_in(&res.text().await.unwrap());
    app.clock.advance(std::time::Duration::from_secs(16 * 60));
    let page = me.get("/reauth?next=%2Faccount%2Fsecurity").await.text().await.unwrap();
    assert!(page.contains("name=\"code\""), "the app is asked for");
    let c = code(&app, &secret, 0);
    let res = me.submit("/reauth", "/reauth", &[("password", PASSWORD), ("code", "123456")]).await;
    assert_eq!(res.status(), 401);
    let res = me.submit("/reauth", "/reauth", &[("password", "wrong wrong wrong"), ("code", &c)]).await;
    assert_eq!(res.status(), 401);
    let res =
        me.submit("/reauth", "/reauth", &[("password", PASSWORD), ("code", &c), ("next", "/account/security")]).await;
    assert_eq!(location(&res), "/account/security");
    assert_eq!(details_of(&app, "reauthenticated").await, ["with password and authenticator app"]);
    assert_eq!(details_of(&app, "reauth_failed").await, ["wrong or used code", "wrong password"]);
    // The same code again, later: refused. A recovery code does, once.
    app.clock.advance(std::time::Duration::from_secs(16 * 60));
    next_step(&app);
    let res = me.submit("/reauth", "/reauth", &[("password", PASSWORD), ("code", &c)]).await;
    assert_eq!(res.status(), 401);
    let res = me.submit("/reauth", "/reauth", &[("password", PASSWORD), ("code", &codes[0])]).await;
    assert_eq!(location(&res), "/");
    assert_eq!(details_of(&app, "recovery_code_used").await, ["9 recovery codes left"]);
    app.clock.advance(std::time::Duration::from_secs(16 * 60));
    let res = me.submit("/reauth", "/reauth", &[("password", PASSWORD), ("code", &codes[0])]).await;
    assert_eq!(res.status(), 401);
}

async fn every_second_factor_event_is_recorded_and_shown_in_words(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("root", Role::Admin).await;
    let root = app.me();
    root.login("root", PASSWORD).await;
    let (secret, res) = enrol(&app, &root).await; // second_factor_added, recovery_codes_created
    let codes = crate::second_factors::recovery_codes_in(&res.text().await.unwrap());
    root.logout().await;
    next_step(&app);
    root.login("root", PASSWORD).await;
    root.submit("/login/mfa", "/login/mfa", &[("code", "000000")]).await; // second_factor_failed
    root.submit("/login/mfa", "/login/mfa", &[("code", &codes[0])]).await; // recovery_code_used
    app.clock.advance(std::time::Duration::from_secs(16 * 60));
    root.submit("/reauth", "/reauth", &[("password", "nope nope nope")]).await; // reauth_failed
    let c = code(&app, &secret, 0);
    root.submit("/reauth", "/reauth", &[("password", PASSWORD), ("code", &c)]).await; // reauthenticated
    root.submit("/account/security", "/account/totp/disable", &[]).await; // second_factor_removed
    root.submit("/admin/users", "/admin/users/root/reset-mfa", &[("confirm", "yes")]).await; // second_factors_reset
    root.login("root", PASSWORD).await;
    let html = root.get("/admin/events").await.text().await.unwrap();
    let at = |kind| KINDS.iter().position(|k| *k == kind).unwrap();
    let new = &KINDS[at("second_factor_added")..=at("second_factors_reset")];
    assert_eq!(new.len(), 8);
    for kind in new {
        let cell = format!("data-kind=\"{kind}\">{}</td>", label(kind));
        assert!(html.contains(&cell), "{kind} is recorded and shown as `{}`", label(kind));
    }
}
