use dashboard::db::sessions::NewSession;
use dashboard::db::users::{self, Role};
use dashboard::util::now_ms;
use diesel::prelude::*;

use crate::both_databases;
use crate::helpers::*;

both_databases!(
    a_user_gets_403_on_every_admin_route_and_keeps_their_session,
    the_admin_sessions_page_lists_every_live_session_with_a_summary,
    the_admin_sessions_page_filters_by_user_and_pages_by_50,
    an_admin_ends_one_session_and_all_of_a_users_sessions,
    ending_your_own_current_session_from_an_admin_page_asks_first,
    a_hostile_user_agent_is_escaped_on_the_admin_page,
    admins_create_users_with_the_password_policy,
    the_last_active_admin_can_be_neither_demoted_nor_disabled_from_the_page,
    a_demoted_admin_gets_403_on_the_next_request,
    disabling_a_user_ends_their_sessions_and_blocks_sign_in,
    the_users_page_shows_role_status_last_sign_in_and_live_sessions,
);

async fn admin_app(kind: DbKind) -> TestApp {
    let app = spawn_app(kind).await;
    app.create_user("root", Role::Admin).await;
    app.create_user("alice", Role::User).await;
    app
}

async fn a_user_gets_403_on_every_admin_route_and_keeps_their_session(kind: DbKind) {
    let app = admin_app(kind).await;
    app.login("alice", PASSWORD).await;
    for path in ["/admin/sessions", "/admin/users", "/admin/unknown"] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 403, "GET {path}");
        assert!(res.text().await.unwrap().contains("administrators"));
    }
    for path in [
        "/admin/sessions/x/revoke",
        "/admin/users",
        "/admin/users/root/role",
        "/admin/users/root/disable",
        "/admin/users/root/enable",
        "/admin/users/root/revoke-sessions",
    ] {
        let res = app.me().submit("/", path, &[("role", "user"), ("username", "eve"), ("password", PASSWORD)]).await;
        assert_eq!(res.status(), 403, "POST {path}");
    }
    assert_eq!(app.get("/").await.status(), 200, "the session stays valid");
    let root = app.with_db(|c| users::find_by_username(c, "root")).await.unwrap();
    assert_eq!(root.role(), Role::Admin);
    assert!(!root.is_disabled());
    assert_eq!(app.with_db(users::count).await, 2, "no user was created");
}

async fn the_admin_sessions_page_lists_every_live_session_with_a_summary(kind: DbKind) {
    let app = admin_app(kind).await;
    app.browser().login("alice", PASSWORD).await;
    app.browser().login("alice", PASSWORD).await;
    app.login("root", PASSWORD).await;
    let html = app.get("/admin/sessions").await.text().await.unwrap();
    assert!(html.contains(r#"<strong id="live-sessions">3</strong>"#), "{html}");
    assert!(html.contains(r#"<strong id="users-signed-in">2</strong>"#));
    assert_eq!(html.matches(r#"data-user="alice""#).count(), 2);
    assert_eq!(html.matches(r#"data-user="root""#).count(), 1);
    assert_eq!(html.matches(r#"data-current="true""#).count(), 1);
    // Newest activity first: root signed in last.
    assert!(html.find(r#"data-user="root""#).unwrap() < html.find(r#"data-user="alice""#).unwrap());
}

/// Inserts `n` live sessions for `user_id` with distinct last-seen times.
async fn seed_sessions(app: &TestApp, user_id: String, n: usize) {
    let now = now_ms();
    app.with_db(move |c| {
        c.transaction(|c| {
            (0..n).try_for_each(|i| {
                let (id, hash) = (format!("seed{i:04}"), format!("hash{i:04}"));
                dashboard::db::sessions::insert(
                    c,
                    &NewSession {
                        id: &id,
                        token_hash: &hash,
                        user_id: &user_id,
                        data: "{}",
                        created_at: now - 10_000,
                        last_seen_at: now - 10_000 + i as i64,
                        idle_expires_at: now + 3_600_000,
                        absolute_expires_at: None,
                        ip: "10.0.0.1",
                        user_agent: "seed",
                        cloud_token: None,
                        cloud_role: None,
                        cloud_expires_at: None,
                        auth_method: "password",
                        authenticated_with: "password",
                        authenticated_at: now,
                        csrf_token: "",
                        dbsc_challenge: None,
                    },
                )
                .map(drop)
            })
        })
    })
    .await;
}

async fn the_admin_sessions_page_filters_by_user_and_pages_by_50(kind: DbKind) {
    let app = admin_app(kind).await;
    let alice = app.with_db(|c| users::find_by_username(c, "alice")).await.unwrap();
    seed_sessions(&app, alice.id, 120).await;
    app.login("root", PASSWORD).await;

    let html = app.get("/admin/sessions?user=alice").await.text().await.unwrap();
    assert!(html.contains(r#"<strong id="live-sessions">121</strong>"#));
    assert_eq!(html.matches("<tr data-session-id=").count(), 50);
    assert_eq!(html.matches(r#"data-user="alice""#).count(), 50);
    assert!(html.contains("seed0119") && !html.contains("seed0069"), "newest first");

    let mut seen = 0;
    let mut page = html;
    let mut pages = 1;
    loop {
        seen += page.matches("<tr data-session-id=").count();
        let Some(start) = page.find(r#"<a rel="next" href=""#) else { break };
        let rest = &page[start + 20..];
        let href = rest[..rest.find('"').unwrap()].replace("&amp;", "&");
        page = app.get(&href).await.text().await.unwrap();
        pages += 1;
    }
    assert_eq!((seen, pages), (120, 3), "every session once, in pages of 50");
    assert!(page.contains("seed0000"));

    let all = app.get("/admin/sessions").await.text().await.unwrap();
    assert!(all.contains(r#"data-user="root""#), "unfiltered shows root too");
    let unknown = app.get("/admin/sessions?user=nobody").await;
    assert_eq!(unknown.status(), 200);
    assert!(unknown.text().await.unwrap().contains("There is no user by that name."));
    assert_eq!(app.get("/admin/sessions?after=garbage").await.status(), 400);
}

async fn an_admin_ends_one_session_and_all_of_a_users_sessions(kind: DbKind) {
    let app = admin_app(kind).await;
    let (a1, a2) = (app.browser(), app.browser());
    a1.login("alice", PASSWORD).await;
    a2.login("alice", PASSWORD).await;
    app.login("root", PASSWORD).await;
    let a1_id: String = {
        // a1's own page marks a1's session as the current one.
        let html = a1.get("/account/sessions").await.text().await.unwrap();
        let row = html.split("<tr ").find(|r| r.contains(r#"data-current="true""#)).unwrap();
        let start = row.find(r#"data-session-id=""#).unwrap() + 17;
        row[start..start + row[start..].find('"').unwrap()].to_owned()
    };
    let res = app.me().submit("/admin/sessions", &format!("/admin/sessions/{a1_id}/revoke"), &[]).await;
    assert_eq!(res.status(), 303);
    assert!(app.get(&location(&res)).await.text().await.unwrap().contains("The session was ended."));
    assert_eq!(a1.get("/").await.status(), 303);
    assert_eq!(a2.get("/").await.status(), 200);
    assert_eq!(app.me().submit("/admin/sessions", "/admin/sessions/no-such/revoke", &[]).await.status(), 404);

    let res = app.me().submit("/admin/users", "/admin/users/alice/revoke-sessions", &[]).await;
    assert_eq!(res.status(), 303);
    assert!(app.get(&location(&res)).await.text().await.unwrap().contains("Ended 1 session."));
    assert_eq!(a2.get("/").await.status(), 303);
    assert_eq!(app.get("/").await.status(), 200, "the admin's own session is untouched");
    assert_eq!(app.me().submit("/admin/users", "/admin/users/nobody/revoke-sessions", &[]).await.status(), 404);
}

async fn ending_your_own_current_session_from_an_admin_page_asks_first(kind: DbKind) {
    let app = admin_app(kind).await;
    app.login("root", PASSWORD).await;
    let html = app.get("/admin/sessions").await.text().await.unwrap();
    let start = html.find(r#"data-session-id=""#).unwrap() + 17;
    let my_id = html[start..start + html[start..].find('"').unwrap()].to_owned();

    let res = app.me().submit("/admin/sessions", &format!("/admin/sessions/{my_id}/revoke"), &[]).await;
    assert_eq!(res.status(), 200);
    let confirm = res.text().await.unwrap();
    assert!(confirm.contains("Are you sure?") && confirm.contains(r#"name="confirm" value="yes""#));
    assert_eq!(app.get("/").await.status(), 200, "nothing ended yet");

    let res = app.me().submit("/admin/users", "/admin/users/root/revoke-sessions", &[]).await;
    assert!(res.text().await.unwrap().contains("Are you sure?"));
    assert_eq!(app.get("/").await.status(), 200);

    let res =
        app.me().submit("/admin/sessions", &format!("/admin/sessions/{my_id}/revoke"), &[("confirm", "yes")]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login");
    assert_eq!(app.get("/").await.status(), 303, "signed out after confirming");
}

async fn a_hostile_user_agent_is_escaped_on_the_admin_page(kind: DbKind) {
    let app = admin_app(kind).await;
    let evil = "<img src=x onerror=alert(1)>\"'";
    let browser = app.browser();
    let token = csrf_from(&browser.get("/login").await.text().await.unwrap());
    browser
        .client
        .post(browser.url("/login"))
        .header("user-agent", evil)
        .form(&[("username", "alice"), ("password", PASSWORD), ("csrf_token", &token)])
        .send()
        .await
        .unwrap();
    app.login("root", PASSWORD).await;
    let html = app.get("/admin/sessions").await.text().await.unwrap();
    assert!(!html.contains("<img src=x"), "{html}");
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;") || html.contains("&#60;img src=x onerror=alert(1)&#62;"),
        "{html}"
    );
    let mine = browser.get("/account/sessions").await.text().await.unwrap();
    assert!(!mine.contains("<img src=x"));
}

async fn admins_create_users_with_the_password_policy(kind: DbKind) {
    let app = admin_app(kind).await;
    app.login("root", PASSWORD).await;
    let res = app
        .me()
        .submit("/admin/users", "/admin/users", &[("username", "carol"), ("password", PASSWORD), ("role", "admin")])
        .await;
    assert_eq!(res.status(), 303);
    assert!(app.get(&location(&res)).await.text().await.unwrap().contains("The user was created."));
    let carol = app.with_db(|c| users::find_by_username(c, "carol")).await.unwrap();
    assert_eq!(carol.role(), Role::Admin);
    assert_eq!(app.browser().login("carol", PASSWORD).await.status(), 303);

    for (name, password, role, status, why) in [
        ("carol", PASSWORD, "user", 409, "is taken"),
        ("dave", "short", "user", 400, "at least 15"),
        ("dave", "dave dave dave dave dave", "user", 400, "username"),
        ("bad name", PASSWORD, "user", 400, "username may hold only"),
        ("dave", PASSWORD, "root", 400, "Choose the role"),
    ] {
        let res = app
            .me()
            .submit("/admin/users", "/admin/users", &[("username", name), ("password", password), ("role", role)])
            .await;
        assert_eq!(res.status(), status, "{name} {role}");
        assert!(res.text().await.unwrap().contains(why), "{why}");
    }
    assert_eq!(app.with_db(users::count).await, 3);
}

async fn the_last_active_admin_can_be_neither_demoted_nor_disabled_from_the_page(kind: DbKind) {
    let app = admin_app(kind).await;
    app.login("root", PASSWORD).await;
    let res = app.me().submit("/admin/users", "/admin/users/root/role", &[("role", "user")]).await;
    assert_eq!(res.status(), 409);
    assert!(res.text().await.unwrap().contains("The last active administrator"));
    let res = app.me().submit("/admin/users", "/admin/users/root/disable", &[("confirm", "yes")]).await;
    assert_eq!(res.status(), 409);
    let root = app.with_db(|c| users::find_by_username(c, "root")).await.unwrap();
    assert_eq!((root.role(), root.is_disabled()), (Role::Admin, false));
    let page = app.get("/admin/users").await.text().await.unwrap();
    assert!(!page.contains("/admin/users/root/disable"), "Disable is not offered for the last active admin");
    assert!(page.contains("/admin/users/alice/disable"), "but for everyone else");
    app.create_user("second", Role::Admin).await;
    let page = app.get("/admin/users").await.text().await.unwrap();
    assert!(page.contains("/admin/users/root/disable"), "with a second admin it is offered again");
}

async fn a_demoted_admin_gets_403_on_the_next_request(kind: DbKind) {
    let app = admin_app(kind).await;
    app.create_user("second", Role::Admin).await;
    let second = app.browser();
    second.login("second", PASSWORD).await;
    assert_eq!(second.get("/admin/users").await.status(), 200);

    app.login("root", PASSWORD).await;
    let res = app.me().submit("/admin/users", "/admin/users/second/role", &[("role", "user")]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(second.get("/admin/users").await.status(), 403, "no new sign-in needed");
    assert_eq!(second.get("/").await.status(), 200, "and still signed in");

    let res = app.me().submit("/admin/users", "/admin/users/second/role", &[("role", "admin")]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(second.get("/admin/users").await.status(), 200);
}

async fn disabling_a_user_ends_their_sessions_and_blocks_sign_in(kind: DbKind) {
    let app = admin_app(kind).await;
    let alice = app.browser();
    alice.login("alice", PASSWORD).await;
    app.login("root", PASSWORD).await;
    let res = app.me().submit("/admin/users", "/admin/users/alice/disable", &[]).await;
    assert_eq!(res.status(), 303);
    assert!(app.get(&location(&res)).await.text().await.unwrap().contains("disabled and 1 session ended"));
    assert_eq!(alice.get("/").await.status(), 303);
    assert_eq!(app.browser().login("alice", PASSWORD).await.status(), 401);

    let res = app.me().submit("/admin/users", "/admin/users/alice/enable", &[]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(app.browser().login("alice", PASSWORD).await.status(), 303);
    assert_eq!(app.me().submit("/admin/users", "/admin/users/nobody/disable", &[]).await.status(), 404);
}

async fn the_users_page_shows_role_status_last_sign_in_and_live_sessions(kind: DbKind) {
    let app = admin_app(kind).await;
    app.browser().login("alice", PASSWORD).await;
    app.browser().login("alice", PASSWORD).await;
    app.login("root", PASSWORD).await;
    let html = app.get("/admin/users").await.text().await.unwrap();
    let row = |name: &str| {
        let start = html.find(&format!(r#"<tr data-user="{name}">"#)).unwrap();
        html[start..start + html[start..].find("</tr>").unwrap()].to_owned()
    };
    let alice = row("alice");
    assert!(alice.contains(r#"<option value="user" selected>"#), "{alice}");
    assert!(alice.contains(">active<") && alice.contains(" UTC") && alice.contains(">2</a>"), "{alice}");
    assert!(row("root").contains("<span class=\"badge\">you</span>"));
}
