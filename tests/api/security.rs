//! One test per applicable row of `shared/reference/security.md` §1 not already covered elsewhere;
//! each name starts with the row's ID. docs/security.md maps every row to its test.

use std::time::Duration;

use dashboard::db::schema::users as users_table;
use dashboard::db::throttle;
use dashboard::db::users::{self, Role};
use diesel::prelude::*;

use crate::both_databases;
use crate::helpers::*;

both_databases!(
    a01_a_password_needs_15_characters,
    a02_long_passwords_work_and_are_neither_truncated_nor_case_folded,
    a03_unicode_and_spaces_are_allowed,
    a04_common_passwords_are_refused_with_the_reason,
    a06_repeated_failures_lock_the_username_with_429_whatever_the_forwarded_for,
    a06_one_address_spraying_many_names_is_locked,
    a06_a_trusted_proxy_forwards_the_client_address,
    a07_the_lockout_ends_and_a_success_resets_the_count,
    a08_unknown_user_and_wrong_password_answer_identically,
    a09_an_unknown_user_costs_one_argon2_verification,
    a10_hashes_are_argon2id_with_unique_salts_and_weak_ones_are_upgraded,
    a13_the_form_posts_credentials_and_lets_password_managers_work,
    s04_under_https_cookies_are_secure_with_the_host_prefix_and_hsts_is_sent,
    s06_a_session_key_in_the_query_string_is_ignored,
    s16_the_admin_page_shows_no_token_hash,
    ac01_every_route_but_the_public_ones_needs_a_session,
    ac04_a_broken_database_fails_closed_with_a_generic_page,
    c05_oversize_passwords_and_headers_are_refused_cheaply,
    audit_events_record_who_did_what_without_secrets,
);

async fn create_via_admin(app: &TestApp, name: &str, password: &str) -> reqwest::Response {
    app.me()
        .submit("/admin/users", "/admin/users", &[("username", name), ("password", password), ("role", "user")])
        .await
}

async fn admin(kind: DbKind) -> TestApp {
    let app = spawn_app(kind).await;
    app.create_user("root", Role::Admin).await;
    app.login("root", PASSWORD).await;
    app
}

async fn a01_a_password_needs_15_characters(kind: DbKind) {
    let app = admin(kind).await;
    let res = create_via_admin(&app, "fourteen", "Gx7#kq2!Lm9@zP").await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("at least 15 characters"));
    assert_eq!(create_via_admin(&app, "fifteen", "Gx7#kq2!Lm9@zP4").await.status(), 303);
}

async fn a02_long_passwords_work_and_are_neither_truncated_nor_case_folded(kind: DbKind) {
    let app = admin(kind).await;
    let long = "Tr0ub4dor&3 is not as good as four random words chosen by dice, really!! x";
    assert!(long.chars().count() > 72);
    assert_eq!(create_via_admin(&app, "long", long).await.status(), 303);
    assert_eq!(app.browser().login("long", long).await.status(), 303);
    let first72: String = long.chars().take(72).collect();
    assert_eq!(app.browser().login("long", &first72).await.status(), 401);
    assert_eq!(app.browser().login("long", &long.to_uppercase()).await.status(), 401);
    let max = dashboard::util::random_alphanumeric(1024);
    assert_eq!(create_via_admin(&app, "longest", &max).await.status(), 303);
    assert_eq!(app.browser().login("longest", &max).await.status(), 303);
}

async fn a03_unicode_and_spaces_are_allowed(kind: DbKind) {
    let app = admin(kind).await;
    let pw = "correct horse battery staple 🐴";
    assert_eq!(create_via_admin(&app, "pony", pw).await.status(), 303);
    assert_eq!(app.browser().login("pony", pw).await.status(), 303);
    // The same text typed with a decomposed accent is the same password (NFKC).
    let composed = "un caf\u{e9} tr\u{e8}s serr\u{e9} s'il vous pla\u{ee}t";
    assert_eq!(create_via_admin(&app, "cafe", composed).await.status(), 303);
    let decomposed = "un cafe\u{301} tre\u{300}s serre\u{301} s'il vous plai\u{302}t";
    assert_eq!(app.browser().login("cafe", decomposed).await.status(), 303);
}

async fn a04_common_passwords_are_refused_with_the_reason(kind: DbKind) {
    let app = admin(kind).await;
    for common in ["passwordpassword", "qwertyuiopasdfghjkl", "1234567890123456"] {
        let res = create_via_admin(&app, "victim", common).await;
        assert_eq!(res.status(), 400, "{common}");
        assert!(res.text().await.unwrap().contains("too common or too easy to guess"), "{common}");
    }
}

async fn a06_repeated_failures_lock_the_username_with_429_whatever_the_forwarded_for(kind: DbKind) {
    let app = spawn_app_with(TestDb::new(kind), |s| s.sign_in.max_failures = 3).await;
    app.create_user("alice", Role::User).await;
    for i in 0..3 {
        let browser = app.browser();
        let token = csrf_from(&browser.get("/login").await.text().await.unwrap());
        let res = browser
            .client
            .post(browser.url("/login"))
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .form(&[("username", "alice"), ("password", "wrong wrong wrong wrong"), ("csrf_token", &token)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "attempt {i}");
    }
    let res = app.login("alice", PASSWORD).await;
    assert_eq!(res.status(), 429, "even the right password waits");
    assert!(res.headers().contains_key("retry-after"));
    let page = res.text().await.unwrap();
    assert!(page.contains("wait"));
    assert!(!page.contains("Go to the dashboard") && page.contains(r#"href="/login""#), "not signed in: {page}");
    assert_eq!(app.session_rows().await, 0);

    // Names that do not exist lock the same way (no enumeration through the lock).
    for _ in 0..3 {
        app.browser().login("nobody", "wrong wrong wrong wrong").await;
    }
    assert_eq!(app.browser().login("nobody", "wrong wrong wrong wrong").await.status(), 429);
}

async fn a06_one_address_spraying_many_names_is_locked(kind: DbKind) {
    // Per-IP ceiling: 10 × DASHBOARD_LOGIN_MAX_FAILURES failures from one address.
    let app = spawn_app_with(TestDb::new(kind), |s| s.sign_in.max_failures = 1).await;
    app.create_user("alice", Role::User).await;
    for i in 0..10 {
        let res = app.browser().login(&format!("user{i}"), "Summer2026!Summer2026!").await;
        assert_eq!(res.status(), 401, "name {i}");
    }
    let res = app.browser().login("alice", PASSWORD).await;
    assert_eq!(res.status(), 429, "the address is locked for every name");
}

async fn a06_a_trusted_proxy_forwards_the_client_address(kind: DbKind) {
    let app = spawn_app_with(TestDb::new(kind), |s| {
        s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        s.sign_in.max_failures = 2;
    })
    .await;
    app.create_user("alice", Role::User).await;
    let browser = app.browser();
    let token = csrf_from(&browser.get("/login").await.text().await.unwrap());
    browser
        .client
        .post(browser.url("/login"))
        .header("x-forwarded-for", "198.51.100.7, 10.0.0.1")
        .form(&[("username", "alice"), ("password", PASSWORD), ("csrf_token", &token)])
        .send()
        .await
        .unwrap();
    let ips: Vec<String> = app
        .with_db(|c| dashboard::db::schema::sessions::table.select(dashboard::db::schema::sessions::ip).load(c))
        .await;
    assert_eq!(ips, vec!["10.0.0.1".to_owned()], "the nearest hop the proxy saw");
}

async fn a07_the_lockout_ends_and_a_success_resets_the_count(kind: DbKind) {
    let app = spawn_app_with(TestDb::new(kind), |s| {
        s.sign_in.max_failures = 2;
        s.sign_in.lockout = Duration::from_secs(15 * 60);
    })
    .await;
    app.create_user("alice", Role::User).await;
    app.login("alice", "wrong wrong wrong wrong").await;
    app.login("alice", "wrong wrong wrong wrong").await;
    assert_eq!(app.login("alice", PASSWORD).await.status(), 429);
    app.clock.advance(Duration::from_secs(14 * 60));
    assert_eq!(app.browser().login("alice", PASSWORD).await.status(), 429, "still locked");
    app.clock.advance(Duration::from_secs(61));
    assert_eq!(app.browser().login("alice", "wrong wrong wrong wrong").await.status(), 401);
    assert_eq!(app.with_db(|c| throttle::failures(c, &throttle::user_key("alice"))).await, 1);
    assert_eq!(app.browser().login("alice", PASSWORD).await.status(), 303);
    assert_eq!(app.with_db(|c| throttle::failures(c, &throttle::user_key("alice"))).await, 0, "reset");
}

async fn a08_unknown_user_and_wrong_password_answer_identically(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let answer = |res: reqwest::Response, name: &'static str| async move {
        let status = res.status();
        let mut headers: Vec<(String, String)> = res
            .headers()
            .iter()
            .filter(|(k, _)| *k != "date" && *k != "content-length")
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        headers.sort();
        let body = res.text().await.unwrap();
        let token = csrf_from(&body);
        (status, headers, body.replace(&token, "TOKEN").replace(name, "NAME"))
    };
    let known = answer(app.browser().login("alice", "wrong wrong wrong wrong").await, "alice").await;
    let unknown = answer(app.browser().login("mallory", "wrong wrong wrong wrong").await, "mallory").await;
    assert_eq!(known.0, 401);
    assert_eq!(known, unknown);
}

async fn a09_an_unknown_user_costs_one_argon2_verification(kind: DbKind) {
    let app = spawn_app_with(TestDb::new(kind), |s| s.sign_in.max_failures = 2).await;
    app.create_user("alice", Role::User).await;
    let count = || app.hasher.verifications();
    let before = count();
    app.browser().login("mallory", "wrong wrong wrong wrong").await;
    assert_eq!(count() - before, 1, "unknown user: one dummy verification");
    let before = count();
    app.browser().login("alice", "wrong wrong wrong wrong").await;
    assert_eq!(count() - before, 1, "known user: one verification");
    let before = count();
    app.browser().login("bad name!", "wrong wrong wrong wrong").await;
    assert_eq!(count() - before, 1, "invalid name: one dummy verification");
    app.browser().login("alice", "wrong wrong wrong wrong").await; // alice's second: locked now
                                                                   // Locked: no verification at all.
    let before = count();
    assert_eq!(app.browser().login("alice", PASSWORD).await.status(), 429);
    assert_eq!(count(), before);
}

async fn a10_hashes_are_argon2id_with_unique_salts_and_weak_ones_are_upgraded(kind: DbKind) {
    let app = admin(kind).await;
    create_via_admin(&app, "one", "Gx7#kq2!Lm9@zP4").await;
    create_via_admin(&app, "two", "Gx7#kq2!Lm9@zP4").await;
    let hashes: Vec<String> = app.with_db(|c| users_table::table.select(users_table::password_hash).load(c)).await;
    let salts: std::collections::HashSet<&str> = hashes.iter().map(|h| h.split('$').nth(4).unwrap()).collect();
    assert_eq!(salts.len(), hashes.len(), "no salt repeats");
    for h in &hashes {
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
    }

    // A hash made with weaker costs is re-hashed at the next sign-in.
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let weak = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(8192, 1, 1, None).unwrap(),
    )
    .hash_password(PASSWORD.as_bytes(), &SaltString::generate(&mut OsRng))
    .unwrap()
    .to_string();
    let old = weak.clone();
    app.with_db(move |c| {
        users::create(c, "legacy", &old, Role::User)?;
        Ok(())
    })
    .await;
    assert_eq!(app.browser().login("legacy", PASSWORD).await.status(), 303);
    let now = app.with_db(|c| users::find_by_username(c, "legacy")).await.unwrap().password_hash;
    assert!(now.starts_with("$argon2id$v=19$m=19456,t=2,p=1$") && now != weak, "{now}");
    assert_eq!(app.browser().login("legacy", PASSWORD).await.status(), 303, "and it still works");
}

async fn a13_the_form_posts_credentials_and_lets_password_managers_work(kind: DbKind) {
    let app = spawn_app(kind).await;
    let html = app.get("/login").await.text().await.unwrap();
    assert!(html.contains(r#"<form method="post" action="/login""#));
    assert!(html.contains(r#"name="password" type="password" autocomplete="current-password""#));
    // The username field also offers passkeys (autofill): they work on the default localhost URL.
    assert!(html.contains(r#"autocomplete="username webauthn""#));
    assert!(!html.contains(r#"autocomplete="off""#));
}

async fn s04_under_https_cookies_are_secure_with_the_host_prefix_and_hsts_is_sent(kind: DbKind) {
    let app = spawn_app_with(TestDb::new(kind), |s| {
        s.public_url = Some("https://dashboard.example".parse().unwrap());
    })
    .await;
    app.create_user("alice", Role::User).await;
    // reqwest will not keep Secure cookies over http, so read the headers by hand.
    let res = app.get("/login").await;
    assert!(res.headers()["strict-transport-security"].to_str().unwrap().contains("max-age=31536000"));
    let csrf_cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(csrf_cookie.starts_with("__Host-dashboard_csrf=") && csrf_cookie.contains("Secure"), "{csrf_cookie}");
    let token = csrf_from(&res.text().await.unwrap());
    let csrf_pair = csrf_cookie.split(';').next().unwrap().to_owned();
    let res = app
        .client
        .post(app.url("/login"))
        .header("cookie", &csrf_pair)
        .header("origin", "https://dashboard.example")
        .form(&[("username", "alice"), ("password", PASSWORD), ("csrf_token", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let session = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("__Host-dashboard_session="))
        .expect("session cookie with the __Host- prefix");
    for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(session.contains(attr), "{attr} in {session}");
    }
    assert!(!session.contains("Domain"));
    // Our own origin is fine; the plain-http origin of the listener is not ours.
    let res = app
        .client
        .post(app.url("/login"))
        .header("cookie", &csrf_pair)
        .header("origin", &app.address)
        .form(&[("username", "alice"), ("password", PASSWORD), ("csrf_token", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

async fn s06_a_session_key_in_the_query_string_is_ignored(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    app.login("alice", PASSWORD).await;
    let cookie = app.me().session_cookie().unwrap();
    let stranger = app.browser();
    for q in [format!("/?id={cookie}"), format!("/?dashboard_session={cookie}")] {
        assert_eq!(stranger.get(&q).await.status(), 303);
    }
}

async fn s16_the_admin_page_shows_no_token_hash(kind: DbKind) {
    let app = admin(kind).await;
    app.browser().login("root", PASSWORD).await;
    let hashes: Vec<String> = app
        .with_db(|c| dashboard::db::schema::sessions::table.select(dashboard::db::schema::sessions::token_hash).load(c))
        .await;
    let html = app.get("/admin/sessions").await.text().await.unwrap();
    assert_eq!(hashes.len(), 2);
    for h in &hashes {
        assert!(!html.contains(h.as_str()) && !html.contains(&h[..16]));
    }
    assert!(!html.contains(&app.me().session_cookie().unwrap()));
}

async fn ac01_every_route_but_the_public_ones_needs_a_session(kind: DbKind) {
    let app = spawn_app(kind).await;
    // Every protected route of the route table, with a sample id or name, and an unknown path.
    let mut protected: Vec<String> = dashboard::routes::ROUTES
        .iter()
        .filter(|r| matches!(r.access, dashboard::routes::Access::SignedIn | dashboard::routes::Access::Admin))
        .map(|r| crate::routes::sample_path(r.path))
        .collect();
    protected.push("/unknown".into());
    for path in protected {
        for method in [reqwest::Method::GET, reqwest::Method::POST, reqwest::Method::PUT, reqwest::Method::DELETE] {
            let res = app.client.request(method.clone(), app.url(&path)).send().await.unwrap();
            assert_eq!(res.status(), 303, "{method} {path}");
            assert!(location(&res).starts_with("/login?next="), "{method} {path}");
            assert!(res.text().await.unwrap().is_empty());
        }
    }
    for public in ["/login", "/healthz", "/readyz", "/static/style.css"] {
        assert_eq!(app.get(public).await.status(), 200, "{public}");
    }
}

async fn ac04_a_broken_database_fails_closed_with_a_generic_page(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    app.login("alice", PASSWORD).await;
    app.with_db(|c| diesel::sql_query("ALTER TABLE sessions RENAME TO sessions_gone").execute(c)).await;
    for path in ["/", "/account/sessions", "/admin/sessions"] {
        let res = app.get(path).await;
        assert!(res.status().is_server_error() || res.status() == 303, "{path}: {}", res.status());
        let body = res.text().await.unwrap();
        assert!(!body.contains("alice"), "no data");
        for leak in ["diesel", "sessions", "SELECT", "no such table", "does not exist", "panicked", ".rs"] {
            assert!(!body.contains(leak), "{leak} in {body}");
        }
    }
    assert_eq!(app.get("/healthz").await.status(), 200, "the process is still up");
}

async fn c05_oversize_passwords_and_headers_are_refused_cheaply(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let before = app.hasher.verifications();
    let res = app.login("alice", &"x".repeat(5000)).await;
    assert_eq!(res.status(), 401);
    assert_eq!(app.hasher.verifications(), before, "no hashing of an over-long password");

    let res = app.client.get(app.url("/login")).header("x-big", "y".repeat(32 * 1024)).send().await.unwrap();
    assert_eq!(res.status(), 431);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let res = app.get(&format!("/login?next=/{}", "a".repeat(10 * 1024))).await;
    assert_eq!(res.status(), 414);
    // More header lines than actix parses: the connection is refused (a fresh client, so no pooled
    // connection of the main one is the casualty).
    let other = app.browser();
    let too_many = (0..100).fold(other.client.get(app.url("/login")), |r, i| r.header(format!("x-h{i}"), "v"));
    if let Ok(res) = too_many.send().await {
        assert!(res.status().is_client_error(), "{}", res.status());
    }
    assert_eq!(app.login("alice", PASSWORD).await.status(), 303, "still serving");
}

async fn audit_events_record_who_did_what_without_secrets(kind: DbKind) {
    let app = admin(kind).await;
    app.create_user("alice", Role::User).await;
    let alice = app.browser();
    alice.login("alice", "wrong wrong wrong wrong").await;
    alice.login("alice", PASSWORD).await;
    let cookie = alice.session_cookie().unwrap();
    app.me().submit("/admin/users", "/admin/users/alice/role", &[("role", "admin")]).await;
    app.me().submit("/admin/users", "/admin/users/alice/revoke-sessions", &[]).await;
    app.me().submit("/admin/users", "/admin/users/alice/disable", &[]).await;
    app.me().submit("/admin/users", "/admin/users/alice/enable", &[]).await;
    app.me().logout().await;

    let events = app.with_db(|c| dashboard::db::events::list(c, None, None, None, 100)).await;
    let kinds: Vec<(&str, Option<&str>, Option<&str>)> =
        events.iter().rev().map(|e| (e.kind.as_str(), e.username.as_deref(), e.actor.as_deref())).collect();
    for expected in [
        ("sign_in_failed", Some("alice"), None),
        ("sign_in", Some("alice"), None),
        ("role_changed", Some("alice"), Some("root")),
        ("session_ended", Some("alice"), Some("root")),
        ("user_disabled", Some("alice"), Some("root")),
        ("user_enabled", Some("alice"), Some("root")),
        ("sign_out", Some("root"), None),
    ] {
        assert!(kinds.contains(&expected), "{expected:?} in {kinds:?}");
    }
    assert!(events
        .iter()
        .filter(|e| e.kind.starts_with("sign_in"))
        .all(|e| e.client_ip.as_deref() == Some("127.0.0.1")));
    let all = format!("{events:?}");
    assert!(!all.contains(PASSWORD) && !all.contains("wrong wrong") && !all.contains(&cookie));

    app.login("root", PASSWORD).await;
    let html = app.get("/admin/events?user=alice&kind=role_changed").await.text().await.unwrap();
    assert_eq!(html.matches("<tr data-event-kind=").count(), 1, "{html}");
    // Kinds read as words; the stored kind stays in an attribute and in the filter's values.
    assert!(html.contains(r#"<td data-label="Event" data-kind="role_changed">Role changed</td>"#), "{html}");
    assert!(html.contains(r#"<option value="role_changed" selected>Role changed</option>"#), "{html}");
    assert!(html.contains(r#"<option value="sign_in_failed">Sign-in failed</option>"#), "{html}");
    let all = app.get("/admin/events").await.text().await.unwrap();
    assert!(!all.contains(">sign_in_failed<") && all.contains(">Sign-in failed<"), "{all}");
    // An empty cell is the same dash as on the other pages (a sign-in has no actor).
    assert!(all.contains(r#"<td data-label="By">—</td>"#) && !all.contains(">-<"), "{all}");
    assert_eq!(app.get("/admin/events?kind=bogus").await.status(), 400);
}
