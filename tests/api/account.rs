use dashboard::db::users::Role;

use crate::both_databases;
use crate::helpers::*;

both_databases!(
    my_sessions_lists_only_my_live_sessions_and_marks_the_current_one,
    ending_one_of_my_sessions_signs_that_browser_out,
    ending_all_other_sessions_keeps_the_current_one,
    another_users_session_id_is_a_404_and_changes_nothing,
    a_password_change_needs_the_current_password,
    a_password_change_ends_other_sessions_and_rotates_the_current_cookie,
    the_new_password_follows_the_policy,
    every_signed_in_page_has_the_navigation_and_no_token,
);

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

async fn my_sessions_lists_only_my_live_sessions_and_marks_the_current_one(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    app.create_user("bob", Role::User).await;
    app.browser_as(FIREFOX).login("alice", PASSWORD).await;
    app.login("alice", PASSWORD).await;
    app.browser().login("bob", PASSWORD).await;

    let html = app.get("/account/sessions").await.text().await.unwrap();
    assert_eq!(html.matches("<tr data-session-id=").count(), 2, "{html}");
    assert_eq!(html.matches(r#"data-current="true""#).count(), 1);
    assert!(html.contains(&format!(r#"<span title="{FIREFOX}">Firefox on Linux</span>"#)), "{html}");
    assert!(html.contains("127.0.0.1"));
    assert!(html.contains("End all other sessions"));
}

fn session_ids(html: &str) -> Vec<(String, bool)> {
    html.split("<tr data-session-id=\"")
        .skip(1)
        .map(|rest| {
            let id = rest[..rest.find('"').unwrap()].to_owned();
            let tag = &rest[..rest.find('>').unwrap()];
            (id, tag.contains(r#"data-current="true""#))
        })
        .collect()
}

async fn ending_one_of_my_sessions_signs_that_browser_out(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let other = app.browser();
    other.login("alice", PASSWORD).await;
    app.login("alice", PASSWORD).await;

    let html = app.get("/account/sessions").await.text().await.unwrap();
    let (other_id, _) = session_ids(&html).into_iter().find(|(_, current)| !current).unwrap();
    let res = app.me().submit("/account/sessions", &format!("/account/sessions/{other_id}/revoke"), &[]).await;
    assert_eq!(res.status(), 303);
    let page = app.get(&location(&res)).await.text().await.unwrap();
    assert!(page.contains("The session was ended."));
    assert_eq!(session_ids(&page).len(), 1);
    assert_eq!(other.get("/").await.status(), 303, "that browser is signed out");
    assert_eq!(app.get("/").await.status(), 200);
}

async fn ending_all_other_sessions_keeps_the_current_one(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let (b1, b2) = (app.browser(), app.browser());
    b1.login("alice", PASSWORD).await;
    b2.login("alice", PASSWORD).await;
    app.login("alice", PASSWORD).await;

    let res = app.me().submit("/account/sessions", "/account/sessions/revoke-others", &[]).await;
    assert_eq!(res.status(), 303);
    let page = app.get(&location(&res)).await.text().await.unwrap();
    assert!(page.contains("Ended 2 other sessions."), "{page}");
    assert_eq!(b1.get("/").await.status(), 303);
    assert_eq!(b2.get("/").await.status(), 303);
    assert_eq!(app.get("/").await.status(), 200);
    assert_eq!(app.session_rows().await, 1);
}

async fn another_users_session_id_is_a_404_and_changes_nothing(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    app.create_user("bob", Role::User).await;
    let bob = app.browser();
    bob.login("bob", PASSWORD).await;
    let bob_id = session_ids(&bob.get("/account/sessions").await.text().await.unwrap())[0].0.clone();
    app.login("alice", PASSWORD).await;

    let res = app.me().submit("/account/sessions", &format!("/account/sessions/{bob_id}/revoke"), &[]).await;
    assert_eq!(res.status(), 404);
    let res = app.me().submit("/account/sessions", "/account/sessions/no-such-id/revoke", &[]).await;
    assert_eq!(res.status(), 404);
    assert_eq!(bob.get("/").await.status(), 200, "bob is still signed in");
    assert_eq!(app.session_rows().await, 2);
}

async fn a_password_change_needs_the_current_password(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    app.login("alice", PASSWORD).await;
    let new = "an entirely new passphrase here";
    for current in ["", "not my current password"] {
        let res = app
            .me()
            .submit(
                "/account/password",
                "/account/password",
                &[("current_password", current), ("new_password", new), ("confirm_password", new)],
            )
            .await;
        assert_eq!(res.status(), 400);
        assert!(res.text().await.unwrap().contains("The current password is not right."));
    }
    assert_eq!(app.browser().login("alice", PASSWORD).await.status(), 303, "the old password still works");
    assert_eq!(app.browser().login("alice", new).await.status(), 401);
}

async fn a_password_change_ends_other_sessions_and_rotates_the_current_cookie(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let other = app.browser();
    other.login("alice", PASSWORD).await;
    app.login("alice", PASSWORD).await;
    let before = app.me().session_cookie().unwrap();
    let new = "an entirely new passphrase here";

    let res = app
        .me()
        .submit(
            "/account/password",
            "/account/password",
            &[("current_password", PASSWORD), ("new_password", new), ("confirm_password", new)],
        )
        .await;
    assert_eq!(res.status(), 303);
    let after = app.me().session_cookie().unwrap();
    assert_ne!(before, after, "the current session got a new token");
    let page = app.get(&location(&res)).await;
    assert_eq!(page.status(), 200, "still signed in");
    assert!(page.text().await.unwrap().contains("Your password was changed."));
    assert_eq!(other.get("/").await.status(), 303, "the other session ended");
    let replay = app.browser();
    replay.set_session_cookie(&before);
    assert_eq!(replay.get("/").await.status(), 303, "the old token is dead");
    assert_eq!(app.session_rows().await, 1);
    assert_eq!(app.browser().login("alice", new).await.status(), 303);
    assert_eq!(app.browser().login("alice", PASSWORD).await.status(), 401);
}

async fn the_new_password_follows_the_policy(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    app.login("alice", PASSWORD).await;
    for (new, confirm, why) in [
        ("too short", "too short", "at least 15"),
        ("alice alice alice alice", "alice alice alice alice", "username"),
        ("an entirely new passphrase", "a different confirmation", "do not match"),
    ] {
        let res = app
            .me()
            .submit(
                "/account/password",
                "/account/password",
                &[("current_password", PASSWORD), ("new_password", new), ("confirm_password", confirm)],
            )
            .await;
        assert_eq!(res.status(), 400);
        assert!(res.text().await.unwrap().contains(why), "{why}");
    }
}

async fn every_signed_in_page_has_the_navigation_and_no_token(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    app.login("alice", PASSWORD).await;
    let cookie = app.me().session_cookie().unwrap();
    for path in ["/", "/account/sessions", "/account/password"] {
        let res = app.get(path).await;
        assert_eq!(res.headers()["cache-control"], "no-store", "{path}");
        let html = res.text().await.unwrap();
        for link in ["href=\"/\"", "href=\"/account/sessions\"", "href=\"/account/password\"", "action=\"/logout\""] {
            assert!(html.contains(link), "{path} lacks {link}");
        }
        assert!(!html.contains("/admin/"), "no admin links for a user on {path}");
        assert!(!html.contains(&cookie));
    }
}
