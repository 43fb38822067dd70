//! Checks generated from the route table (`dashboard::routes::ROUTES`): a route added to the table
//! is covered here without anyone remembering to list it.

use dashboard::db::schema::{auth_events, sessions};
use dashboard::db::users::Role;
use dashboard::routes::{Access, Sensitive, ROUTES};
use diesel::prelude::*;
use reqwest::Method;

use crate::both_databases;
use crate::helpers::*;

both_databases!(
    every_protected_route_of_the_table_redirects_to_login_without_a_session,
    every_unsafe_route_of_the_table_refuses_a_post_without_a_csrf_token,
    every_admin_route_of_the_table_is_forbidden_to_a_user,
    every_public_route_of_the_table_answers_without_a_session_and_makes_no_row,
    every_sensitive_route_of_the_table_redirects_to_reauth_without_a_recent_authentication,
);

/// A path for a route pattern, with sample values in its `{…}` segments.
pub fn sample_path(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|seg| match seg {
            "{id}" => "x",
            "{name}" => "root",
            "{file}" => "style.css",
            s if s.starts_with("{path") => "ping",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The methods to try on a route: its own, or several for a route that takes any.
fn methods(method: &str) -> Vec<Method> {
    match method {
        "*" => vec![Method::GET, Method::POST, Method::PUT, Method::DELETE],
        m => vec![Method::from_bytes(m.as_bytes()).unwrap()],
    }
}

fn is_unsafe(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

async fn every_protected_route_of_the_table_redirects_to_login_without_a_session(kind: DbKind) {
    let app = spawn_app(kind).await;
    let mut checked = 0;
    for route in ROUTES.iter().filter(|r| matches!(r.access, Access::SignedIn | Access::Admin)) {
        let path = sample_path(route.path);
        for method in methods(route.method) {
            let res = app.client.request(method.clone(), app.url(&path)).send().await.unwrap();
            assert_eq!(res.status(), 303, "{method} {path}");
            let next = url::form_urlencoded::byte_serialize(path.as_bytes()).collect::<String>();
            assert_eq!(location(&res), format!("/login?next={next}"), "{method} {path}");
            checked += 1;
        }
    }
    assert!(checked >= 20, "the table lists the protected routes ({checked})");
    assert_eq!(app.session_rows().await, 0);
}

async fn every_unsafe_route_of_the_table_refuses_a_post_without_a_csrf_token(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("root", Role::Admin).await;
    app.login("root", PASSWORD).await;
    let events = || app.with_db(|c| auth_events::table.count().get_result::<i64>(c));
    let (rows, before) = (app.session_rows().await, events().await);
    let mut checked = 0;
    for route in ROUTES.iter().filter(|r| r.access != Access::Open) {
        let path = sample_path(route.path);
        for method in methods(route.method).into_iter().filter(is_unsafe) {
            if route.signed {
                // Called by the browser itself with a signature instead of a token: unsigned, refused.
                let res = app.client.request(method.clone(), app.url(&path)).send().await.unwrap();
                // (404 where sessions are not device-bound: here, over plain http.)
                assert!(matches!(res.status().as_u16(), 400 | 404), "{method} {path} without a signature");
                continue;
            }
            let res = app
                .client
                .request(method.clone(), app.url(&path))
                .form(&[("username", "root"), ("password", PASSWORD), ("role", "user")])
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 403, "{method} {path} without a CSRF token");
            assert!(res.text().await.unwrap().contains("did not come from this site"), "{method} {path}");
            checked += 1;
        }
    }
    assert!(checked >= 12, "the table lists the unsafe routes ({checked})");
    assert_eq!(app.session_rows().await, rows, "no session changed");
    assert_eq!(events().await, before, "nothing was done");
    assert_eq!(app.get("/").await.status(), 200, "still signed in");
}

async fn every_admin_route_of_the_table_is_forbidden_to_a_user(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("root", Role::Admin).await;
    app.create_user("alice", Role::User).await;
    let alice = app.me();
    alice.login("alice", PASSWORD).await;
    let token = csrf_from(&alice.get("/").await.text().await.unwrap());
    for route in ROUTES.iter().filter(|r| r.access == Access::Admin) {
        let path = sample_path(route.path);
        for method in methods(route.method) {
            let res = alice
                .client
                .request(method.clone(), alice.url(&path))
                .form(&[("csrf_token", token.as_str()), ("role", "user")])
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 403, "{method} {path}");
        }
    }
    assert_eq!(alice.get("/").await.status(), 200, "the session stays valid");
    let roles: Vec<String> = {
        use dashboard::db::schema::users;
        app.with_db(|c| users::table.filter(users::username.eq("root")).select(users::role).load(c)).await
    };
    assert_eq!(roles, ["admin"], "nothing changed");
}

async fn every_public_route_of_the_table_answers_without_a_session_and_makes_no_row(kind: DbKind) {
    let app = spawn_app(kind).await;
    for route in ROUTES.iter().filter(|r| matches!(r.access, Access::Open | Access::Public) && r.method == "GET") {
        let path = sample_path(route.path);
        let res = app.get(&path).await;
        // `/setup` without its token is refused, but with a page, not a redirect; `/login/mfa`
        // without a pending sign-in goes back to the form — never the guard's redirect.
        if res.status() == 303 {
            assert_eq!((path.as_str(), location(&res).as_str()), ("/login/mfa", "/login"), "GET {path}");
        }
        assert!(res.status().as_u16() < 500, "GET {path}: {}", res.status());
    }
    assert_eq!(app.with_db(|c| sessions::table.count().get_result::<i64>(c)).await, 0);
}

async fn every_sensitive_route_of_the_table_redirects_to_reauth_without_a_recent_authentication(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("root", Role::Admin).await;
    app.login("root", PASSWORD).await;
    // Past the window (15 minutes by default), still well inside the idle timeout.
    app.clock.advance(std::time::Duration::from_secs(15 * 60 + 1));
    let token = csrf_from(&app.get("/").await.text().await.unwrap());
    let events = || app.with_db(|c| auth_events::table.count().get_result::<i64>(c));
    let (rows, before) = (app.session_rows().await, events().await);
    let mut checked = 0;
    for route in ROUTES {
        let Sensitive::Reauth(page) = route.sensitive else { continue };
        let path = sample_path(route.path);
        let res = app
            .client
            .post(app.url(&path))
            .form(&[("csrf_token", token.as_str()), ("username", "other"), ("password", PASSWORD), ("role", "user")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "POST {path}");
        let next = url::form_urlencoded::byte_serialize(page.as_bytes()).collect::<String>();
        assert_eq!(location(&res), format!("/reauth?next={next}"), "POST {path}");
        checked += 1;
    }
    assert!(checked >= 8, "the table marks the sensitive routes ({checked})");
    assert_eq!(app.session_rows().await, rows, "no session changed");
    assert_eq!(events().await, before, "nothing was done");
    // The page it leads to asks for the password.
    let page = app.get("/reauth?next=%2Fadmin%2Fusers").await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("name=\"password\""));
}
