//! Names in URLs: every name or id a page puts into a URL is percent-encoded, the
//! "end all sessions of this user" button shows only for an existing user, and usernames made only
//! of dots are refused wherever a name is set.

use std::io::Write;
use std::process::{Command, Stdio};

use dashboard::db::users::{self, Role};

use crate::both_databases;
use crate::helpers::*;

both_databases!(
    a_user_filter_with_url_characters_never_becomes_a_form_action,
    names_from_before_the_rule_are_encoded_in_every_url_and_stay_manageable,
    names_made_only_of_dots_are_refused_everywhere_names_are_set,
);

async fn admin_app(kind: DbKind) -> TestApp {
    let app = spawn_app(kind).await;
    app.create_user("root", Role::Admin).await;
    app.create_user("dave", Role::User).await;
    app.login("root", PASSWORD).await;
    app
}

async fn a_user_filter_with_url_characters_never_becomes_a_form_action(kind: DbKind) {
    let app = admin_app(kind).await;
    let html = app.get("/admin/sessions?user=dave/disable%23").await.text().await.unwrap();
    assert!(!html.contains(r#"action="/admin/users/dave/disable#/revoke-sessions""#), "{html}");
    assert!(!html.contains("revoke-sessions"), "no such user: no button to end their sessions");
    assert!(html.contains("There is no user by that name."));
    assert!(html.contains(r#"value="dave/disable#""#), "the filter field keeps what was typed (escaped)");

    let html = app.get("/admin/sessions?user=dave").await.text().await.unwrap();
    assert!(html.contains(r#"action="/admin/users/dave/revoke-sessions""#), "{html}");
}

async fn names_from_before_the_rule_are_encoded_in_every_url_and_stay_manageable(kind: DbKind) {
    let app = admin_app(kind).await;
    // A row written before names were restricted (straight into the table, past the rule).
    app.create_user("x#y/z?a&b", Role::User).await;
    let html = app.get("/admin/users").await.text().await.unwrap();
    for url in [
        r#"action="/admin/users/x%23y%2Fz%3Fa%26b/role""#,
        r#"action="/admin/users/x%23y%2Fz%3Fa%26b/disable""#,
        r#"action="/admin/users/x%23y%2Fz%3Fa%26b/revoke-sessions""#,
        r#"href="/admin/sessions?user=x%23y%2Fz%3Fa%26b""#,
    ] {
        assert!(html.contains(url), "{url} in {html}");
    }
    assert!(!html.contains("/admin/users/x#y"), "never raw");
    // The encoded action reaches that user, and no other.
    let res = app.me().submit("/admin/users", "/admin/users/x%23y%2Fz%3Fa%26b/disable", &[]).await;
    assert_eq!(res.status(), 303);
    let user = app.with_db(|c| users::find_by_username(c, "x#y/z?a&b")).await.unwrap();
    assert!(user.is_disabled(), "the encoded name names the user");
    let dave = app.with_db(|c| users::find_by_username(c, "dave")).await.unwrap();
    assert!(!dave.is_disabled());
    // The confirmation page of one's own sessions carries an encoded action too (built in Rust).
    let html = app.me().submit("/admin/users", "/admin/users/root/revoke-sessions", &[]).await.text().await.unwrap();
    assert!(html.contains(r#"action="/admin/users/root/revoke-sessions""#), "{html}");
}

async fn names_made_only_of_dots_are_refused_everywhere_names_are_set(kind: DbKind) {
    // First-admin setup.
    let app = spawn_app(kind).await;
    let url = app.setup_url.clone().unwrap();
    let path = link_path(&url);
    let token = url.split("token=").nth(1).unwrap().to_owned();
    for name in [".", "..", "..."] {
        let fields =
            [("token", token.as_str()), ("username", name), ("password", PASSWORD), ("confirm_password", PASSWORD)];
        let res = app.me().submit(&path, "/setup", &fields).await;
        assert_eq!(res.status(), 400, "{name}");
        assert!(res.text().await.unwrap().contains("not only dots"), "{name}");
    }
    assert_eq!(app.with_db(users::count).await, 0);

    // An admin creating a user.
    app.create_user("root", Role::Admin).await;
    app.login("root", PASSWORD).await;
    for name in [".", "..", "....", " .. "] {
        let fields = [("username", name), ("password", PASSWORD), ("role", "user")];
        let res = app.me().submit("/admin/users", "/admin/users", &fields).await;
        assert_eq!(res.status(), 400, "{name}");
        assert!(res.text().await.unwrap().contains("not only dots"), "{name}");
    }
    let fields = [("username", "..x"), ("password", PASSWORD), ("role", "user")];
    assert_eq!(app.me().submit("/admin/users", "/admin/users", &fields).await.status(), 303, "dots and more are fine");

    // The command line.
    for name in ["..", "."] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dashboard"))
            .args(["user", "add", name, "--password-stdin"])
            .current_dir(tempfile::tempdir().unwrap().path())
            .env("DATABASE_URL", &app.db.url)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_ne!(out.status.code(), Some(0), "{name}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("not only dots"), "{name}");
    }
    assert_eq!(app.with_db(users::count).await, 2, "root and ..x");
}
