use dashboard::accounts::{self, Actor};
use dashboard::db::users::Role;

use crate::both_databases;
use crate::helpers::*;

both_databases!(
    signing_in_lands_on_the_dashboard,
    a_wrong_password_and_an_unknown_user_get_the_same_401,
    a_disabled_user_gets_the_same_401,
    next_is_followed_only_for_local_paths,
    a_post_without_a_valid_csrf_token_is_refused,
    a_csrf_token_from_another_visitor_is_refused,
    a_session_keeps_its_own_csrf_token_in_its_row,
    a_cross_site_post_is_refused,
    credentials_in_the_query_string_do_not_sign_in,
    usernames_are_case_insensitive,
    the_session_cookie_never_appears_in_a_page,
);

async fn signing_in_lands_on_the_dashboard(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::Admin).await;

    let res = app.login("alice", PASSWORD).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/");

    let res = app.get("/").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let html = res.text().await.unwrap();
    assert!(html.contains(r#"<dd id="username">alice</dd>"#), "{html}");
    assert!(html.contains(r#"<dd id="role">admin</dd>"#));
    assert!(html.contains("Expires if idle"));
    assert!(html.contains("Not configured"), "cloud status shown");
}

async fn a_wrong_password_and_an_unknown_user_get_the_same_401(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;

    let wrong = app.login("alice", "not the right password at all").await;
    let wrong_status = wrong.status();
    let wrong_body = wrong.text().await.unwrap().replace("alice", "NAME");
    let unknown = app.login("mallory", "not the right password at all").await;
    let unknown_status = unknown.status();
    let unknown_body = unknown.text().await.unwrap().replace("mallory", "NAME");

    assert_eq!(wrong_status, 401);
    assert_eq!(unknown_status, 401);
    assert!(wrong_body.contains("Invalid username or password."));
    assert_eq!(wrong_body, unknown_body);
    assert_eq!(app.session_rows().await, 0);
}

async fn a_disabled_user_gets_the_same_401(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    app.with_db(|c| Ok(accounts::disable(c, "alice", Actor::Cli).unwrap())).await;

    let res = app.login("alice", PASSWORD).await;
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("Invalid username or password."));
    assert_eq!(app.session_rows().await, 0);
}

async fn next_is_followed_only_for_local_paths(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    for (next, expected) in [
        ("/account/sessions?x=1", "/account/sessions?x=1"),
        ("//evil.example", "/"),
        ("https://evil.example", "/"),
        ("/\\evil.example", "/"),
        ("/\tevil", "/"),
        ("", "/"),
    ] {
        let browser = app.browser();
        let res =
            browser.submit("/login", "/login", &[("username", "alice"), ("password", PASSWORD), ("next", next)]).await;
        assert_eq!(res.status(), 303, "next={next:?}");
        assert_eq!(location(&res), expected, "next={next:?}");
    }
    // The form carries only a local `next` through.
    let html = app.get("/login?next=%2F%2Fevil.example").await.text().await.unwrap();
    assert!(!html.contains("evil.example"));
    let html = app.get("/login?next=%2Fadmin%2Fusers").await.text().await.unwrap();
    assert!(html.contains(r#"name="next" value="/admin/users""#), "{html}");
}

async fn a_post_without_a_valid_csrf_token_is_refused(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    app.get("/login").await; // gets the pre-session cookie

    for token in [None, Some(""), Some("forged")] {
        let mut form = vec![("username", "alice"), ("password", PASSWORD)];
        if let Some(t) = token {
            form.push(("csrf_token", t));
        }
        let res = app.client.post(app.url("/login")).form(&form).send().await.unwrap();
        assert_eq!(res.status(), 403, "token {token:?}");
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    }
    assert_eq!(app.session_rows().await, 0, "visiting public pages never creates a row");

    // Signed in, a POST without a token changes nothing either: the session survives.
    app.login("alice", PASSWORD).await;
    let res = app.client.post(app.url("/logout")).form(&[("x", "y")]).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(app.get("/").await.status(), 200);
    assert_eq!(app.session_rows().await, 1);
}

async fn a_csrf_token_from_another_visitor_is_refused(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let attacker = app.browser();
    let their_token = csrf_from(&attacker.get("/login").await.text().await.unwrap());

    app.get("/login").await;
    let res = app
        .client
        .post(app.url("/login"))
        .form(&[("username", "alice"), ("password", PASSWORD), ("csrf_token", &their_token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    // A token issued before sign-in does not work for the signed-in session either.
    let before = csrf_from(&app.get("/login").await.text().await.unwrap());
    app.login("alice", PASSWORD).await;
    let res = app.client.post(app.url("/logout")).form(&[("csrf_token", &before)]).send().await.unwrap();
    assert_eq!(res.status(), 403);
}

async fn a_session_keeps_its_own_csrf_token_in_its_row(kind: DbKind) {
    use diesel::{QueryDsl, RunQueryDsl};
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let one = app.browser();
    one.login("alice", PASSWORD).await;
    let token = csrf_from(&one.get("/").await.text().await.unwrap());
    assert_eq!(token, csrf_from(&one.get("/account/sessions").await.text().await.unwrap()), "one token per session");
    let kept: Vec<String> = app
        .with_db(|c| dashboard::db::schema::sessions::table.select(dashboard::db::schema::sessions::csrf_token).load(c))
        .await;
    assert_eq!(kept, std::slice::from_ref(&token), "kept with the session's row");

    // Another session of the same user has another token; neither works for the other.
    let two = app.browser();
    two.login("alice", PASSWORD).await;
    let theirs = csrf_from(&two.get("/").await.text().await.unwrap());
    assert_ne!(theirs, token);
    let res = two.client.post(app.url("/logout")).form(&[("csrf_token", &token)]).send().await.unwrap();
    assert_eq!(res.status(), 403);

    // The session's token needs no visitor cookie: a browser holding only the session cookie can use it.
    let bare = app.browser();
    bare.set_session_cookie(&one.session_cookie().unwrap());
    let res = bare.client.post(app.url("/logout")).form(&[("csrf_token", &token)]).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login");
    assert_eq!(app.session_rows().await, 1, "only the other session is left");
}

async fn a_cross_site_post_is_refused(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let token = csrf_from(&app.get("/login").await.text().await.unwrap());
    let form = [("username", "alice"), ("password", PASSWORD), ("csrf_token", token.as_str())];
    for (name, value) in [("origin", "https://evil.example"), ("sec-fetch-site", "cross-site")] {
        let res = app.client.post(app.url("/login")).header(name, value).form(&form).send().await.unwrap();
        assert_eq!(res.status(), 403, "{name}: {value}");
    }
    let res = app.client.post(app.url("/login")).header("origin", &app.address).form(&form).send().await.unwrap();
    assert_eq!(res.status(), 303, "our own origin is fine");
}

async fn credentials_in_the_query_string_do_not_sign_in(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let res = app.get(&format!("/login?username=alice&password={PASSWORD}")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.get("/").await.status(), 303);
    assert_eq!(app.session_rows().await, 0);
}

async fn usernames_are_case_insensitive(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    assert_eq!(app.login(" Alice ", PASSWORD).await.status(), 303);
}

async fn the_session_cookie_never_appears_in_a_page(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    app.login("alice", PASSWORD).await;
    let cookie = app.me().session_cookie().expect("session cookie");
    // What a page could leak is the token inside the cookie, or the hash the row is found by.
    let token = app.session_token(&cookie);
    let hash = dashboard::util::sha256_hex(&token);
    let found = hash.clone();
    let rows: i64 = app
        .with_db(move |c| {
            use dashboard::db::schema::sessions;
            use diesel::prelude::*;
            sessions::table.filter(sessions::token_hash.eq(found)).count().get_result(c)
        })
        .await;
    assert_eq!(rows, 1, "the token opened from the cookie is the one the session row is found by");
    for page in ["/", "/account/sessions", "/account/password", "/account/security"] {
        let html = app.get(page).await.text().await.unwrap();
        for (what, secret) in [("cookie", &cookie), ("token", &token), ("token hash", &hash)] {
            assert!(!html.contains(secret.as_str()), "{page} shows the session {what}");
        }
    }
}
