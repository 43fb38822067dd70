use dashboard::db::users::Role;

use crate::both_databases;
use crate::helpers::*;

both_databases!(
    every_protected_path_redirects_to_login_whatever_the_method,
    a_signed_in_user_gets_an_html_404_for_an_unknown_path,
    health_and_readiness_answer_without_a_session,
    error_pages_show_no_internals_and_carry_security_headers,
    an_oversize_form_is_refused_and_the_server_keeps_serving,
    the_navigation_is_two_menus_and_marks_the_current_page,
);

async fn the_navigation_is_two_menus_and_marks_the_current_page(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("root", Role::Admin).await;
    app.create_user("alice", Role::User).await;
    let alice = app.browser();
    alice.login("alice", PASSWORD).await;
    let page = alice.get("/account/sessions").await.text().await.unwrap();
    assert_eq!(page.matches("<details class=\"menu\">").count(), 1, "a user has one menu: their own pages");
    assert!(page.contains("href=\"/account/sessions\" aria-current=\"page\">My sessions</a>"));
    assert_eq!(page.matches("aria-current").count(), 1, "only the current page is marked");
    assert!(!page.contains("href=\"/admin\""), "no admin links for a user");
    app.login("root", PASSWORD).await;
    let page = app.get("/admin/users").await.text().await.unwrap();
    assert_eq!(page.matches("<details class=\"menu\">").count(), 2, "an admin also has the admin menu");
    assert!(page.contains("<summary class=\"current\">Admin</summary>"), "the group of the current page is marked");
    assert!(page.contains("href=\"/admin/users\" aria-current=\"page\">Users</a>"));
    assert!(
        page.contains("<title>Users · Dashboard</title>") && page.contains("<h1>Users</h1>"),
        "named as in the menu"
    );
}

async fn every_protected_path_redirects_to_login_whatever_the_method(kind: DbKind) {
    let app = spawn_app(kind).await;
    for path in ["/", "/logout", "/account/sessions", "/admin/sessions", "/cloud/ping", "/no/such/page"] {
        for method in [reqwest::Method::GET, reqwest::Method::POST, reqwest::Method::DELETE] {
            let res = app.client.request(method.clone(), app.url(path)).send().await.unwrap();
            assert_eq!(res.status(), 303, "{method} {path}");
            let expected =
                format!("/login?next={}", url::form_urlencoded::byte_serialize(path.as_bytes()).collect::<String>());
            assert_eq!(location(&res), expected);
        }
    }
}

async fn a_signed_in_user_gets_an_html_404_for_an_unknown_path(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    app.login("alice", PASSWORD).await;
    let res = app.get("/no/such/page").await;
    assert_eq!(res.status(), 404);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(res.text().await.unwrap().contains("Page not found"));
}

async fn health_and_readiness_answer_without_a_session(kind: DbKind) {
    let app = spawn_app(kind).await;
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "ok");
    assert_eq!(app.get("/readyz").await.status(), 200);
    let css = app.get("/static/style.css").await;
    assert_eq!(css.status(), 200);
    assert!(css.headers()["content-type"].to_str().unwrap().starts_with("text/css"));
    assert_eq!(app.get("/static/missing.css").await.status(), 404);
    for icon in ["/favicon.ico", "/static/favicon.svg"] {
        let res = app.get(icon).await;
        assert_eq!(res.status(), 200, "{icon}: browsers ask for it on every first visit");
        assert_eq!(res.headers()["content-type"], "image/svg+xml");
    }
}

async fn error_pages_show_no_internals_and_carry_security_headers(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    app.login("alice", PASSWORD).await;
    // A malformed form body (actix's own error) still becomes an HTML page.
    let token = csrf_from(&app.get("/").await.text().await.unwrap());
    let res = app
        .client
        .post(app.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf_token={token}&username=%ZZ"))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    assert!(status == 400 || status == 401, "{status}");
    for res in [res, app.get("/no/such/page").await, app.get("/static/missing.css").await] {
        let headers = res.headers().clone();
        assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
        assert!(headers["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
        assert_eq!(headers["x-content-type-options"], "nosniff");
        let body = res.text().await.unwrap();
        for leak in ["diesel", "panicked", "/src/", "SELECT", "actix"] {
            assert!(!body.contains(leak), "{leak} in {body}");
        }
    }
}

async fn an_oversize_form_is_refused_and_the_server_keeps_serving(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let token = csrf_from(&app.get("/login").await.text().await.unwrap());
    let huge = "x".repeat(1024 * 1024);
    let res = app
        .client
        .post(app.url("/login"))
        .form(&[("csrf_token", token.as_str()), ("username", "alice"), ("password", huge.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(app.login("alice", PASSWORD).await.status(), 303);
}
