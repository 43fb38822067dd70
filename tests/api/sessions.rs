use std::time::Duration;

use actix_session::storage::{SessionKey, SessionStore};
use dashboard::db::schema::sessions;
use dashboard::db::users::Role;
use dashboard::session::{DbSessionStore, Timeouts};
use diesel::prelude::*;

use crate::both_databases;
use crate::helpers::*;

both_databases!(
    the_token_changes_at_sign_in_and_the_old_one_is_dead,
    after_logout_the_old_cookie_is_refused_and_its_row_is_gone,
    a_forged_cookie_is_refused_and_adds_no_row,
    the_row_holds_a_hash_of_the_token_not_the_token,
    the_session_cookie_is_a_browser_session_cookie_with_safe_attributes,
    sessions_survive_a_server_restart,
    two_instances_share_sessions,
    an_update_racing_a_logout_does_not_resurrect_the_session,
    anonymous_visits_create_no_rows,
    fifty_requests_across_workers_are_never_bounced,
    concurrent_requests_of_many_users_each_get_their_own_session,
    a_dropped_database_connection_signs_no_one_out,
);

async fn the_token_changes_at_sign_in_and_the_old_one_is_dead(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    app.login("alice", PASSWORD).await;
    let first = app.me().session_cookie().unwrap();

    // Signing in again in the same browser: a new token, and the previous session is gone.
    let res = app.login("alice", PASSWORD).await;
    assert_eq!(res.status(), 303);
    let second = app.me().session_cookie().unwrap();
    assert_ne!(first, second);
    assert_eq!(app.session_rows().await, 1);

    let replay = app.browser();
    replay.set_session_cookie(&first);
    assert_eq!(replay.get("/").await.status(), 303, "the pre-login cookie no longer works");
    assert_eq!(app.get("/").await.status(), 200);
}

async fn after_logout_the_old_cookie_is_refused_and_its_row_is_gone(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    app.login("alice", PASSWORD).await;
    let cookie = app.me().session_cookie().unwrap();

    let res = app.me().logout().await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login");
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert!(res.headers().get("clear-site-data").is_some());
    let removal = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(removal.starts_with("dashboard_session=;"), "{removal}");
    assert!(removal.contains("Max-Age=0") && removal.contains("Path=/") && removal.contains("HttpOnly"), "{removal}");
    assert_eq!(app.session_rows().await, 0);

    let replay = app.browser();
    replay.set_session_cookie(&cookie);
    let res = replay.get("/").await;
    assert_eq!(res.status(), 303);
    assert!(location(&res).starts_with("/login"));

    // GET /logout changes nothing (and a signed-out one is simply sent to sign in).
    app.login("alice", PASSWORD).await;
    assert_eq!(app.get("/logout").await.status(), 405);
    assert_eq!(app.get("/").await.status(), 200);
}

async fn a_forged_cookie_is_refused_and_adds_no_row(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let browser = app.browser();
    for forged in [
        "x",
        &dashboard::util::random_alphanumeric(64),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        browser.set_session_cookie(forged);
        let res = browser.get("/").await;
        assert_eq!(res.status(), 303);
        let html = browser.get(&location(&res)).await.text().await.unwrap();
        assert!(!html.contains("Your session has expired"), "a forged cookie is not an expired session");
    }
    assert_eq!(app.session_rows().await, 0);
}

async fn the_row_holds_a_hash_of_the_token_not_the_token(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    app.login("alice", PASSWORD).await;
    app.browser().login("alice", PASSWORD).await;
    let rows: Vec<(String, String, String)> =
        app.with_db(|c| sessions::table.select((sessions::id, sessions::token_hash, sessions::data)).load(c)).await;
    assert_eq!(rows.len(), 2);
    for (id, hash, data) in &rows {
        assert_eq!(hash.len(), 64);
        assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(id, hash);
        assert!(!data.contains("dashboard.live"), "per-load values are not stored: {data}");
    }
    assert_ne!(rows[0].1, rows[1].1);
    // The cookie is encrypted, so it shows neither the token nor the public id.
    let cookie = app.me().session_cookie().unwrap();
    assert!(rows.iter().all(|(id, hash, _)| !cookie.contains(id.as_str()) && !cookie.contains(hash.as_str())));
}

async fn the_session_cookie_is_a_browser_session_cookie_with_safe_attributes(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let res = app.login("alice", PASSWORD).await;
    let set_cookie: Vec<String> =
        res.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    let session = set_cookie.iter().find(|c| c.starts_with("dashboard_session=")).expect("session cookie set");
    assert!(session.contains("HttpOnly"));
    assert!(session.contains("SameSite=Lax"));
    assert!(session.contains("Path=/"));
    assert!(!session.contains("Domain"));
    assert!(!session.contains("Max-Age") && !session.contains("Expires"), "not persistent: {session}");
}

async fn sessions_survive_a_server_restart(kind: DbKind) {
    let db = TestDb::new(kind);
    let first = spawn_app_with(db.clone(), |_| {}).await;
    first.create_user("alice", Role::User).await;
    first.login("alice", PASSWORD).await;
    let cookie = first.me().session_cookie().unwrap();
    first.stop().await;

    // Same database, no DASHBOARD_SECRET_KEY: the generated key was kept in the database.
    let second = spawn_app_with(db, |_| {}).await;
    let browser = second.browser();
    browser.set_session_cookie(&cookie);
    assert_eq!(browser.get("/").await.status(), 200);
}

async fn two_instances_share_sessions(kind: DbKind) {
    let db = TestDb::new(kind);
    let one = spawn_app_with(db.clone(), |_| {}).await;
    let two = spawn_app_with(db, |_| {}).await;
    one.create_user("alice", Role::User).await;
    one.login("alice", PASSWORD).await;
    let cookie = one.me().session_cookie().unwrap();

    let on_two = two.browser();
    on_two.set_session_cookie(&cookie);
    let res = on_two.get("/").await;
    assert_eq!(res.status(), 200, "signed in on one, used on the other");
    assert!(res.text().await.unwrap().contains("alice"));

    let res = on_two.logout().await;
    assert_eq!(res.status(), 303);
    assert_eq!(one.get("/").await.status(), 303, "logged out on two, refused on one");
}

async fn an_update_racing_a_logout_does_not_resurrect_the_session(kind: DbKind) {
    let app = spawn_app(kind).await;
    let alice = app.create_user("alice", Role::User).await;
    let database = dashboard::config::Settings::with_database(&app.db.url).unwrap().database;
    let timeouts = Timeouts { idle: Duration::from_secs(60), absolute: None, max_per_user: 100 };
    let store = DbSessionStore::new(app.pool.clone(), &database, timeouts, app.clock.clone()).unwrap();
    let ttl = actix_web::cookie::time::Duration::seconds(60);
    let key: SessionKey = app.sign_in_directly(&alice, timeouts).await;
    let loaded = store.load(&key).await.unwrap().expect("live session");
    // A logout lands while a slow request still holds the loaded state…
    store.delete(&key).await.unwrap();
    // …and that request then saves its changes.
    let mut changed = loaded;
    changed.insert("theme".into(), "\"dark\"".into());
    let key_again = SessionKey::try_from(key.as_ref().to_owned()).unwrap();
    store.update(key, changed, &ttl).await.unwrap();
    assert_eq!(app.session_rows().await, 0, "no row came back");
    assert!(store.load(&key_again).await.unwrap().is_none());
}

async fn anonymous_visits_create_no_rows(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    for path in ["/", "/login", "/setup", "/healthz", "/readyz", "/static/style.css", "/nope", "/admin/sessions"] {
        app.get(path).await;
    }
    app.login("alice", "wrong password, twenty characters").await;
    assert_eq!(app.session_rows().await, 0);
}

async fn fifty_requests_across_workers_are_never_bounced(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    app.login("alice", PASSWORD).await;
    let requests = (0..50).map(|_| app.get("/"));
    for res in futures_util::future::join_all(requests).await {
        assert_eq!(res.status(), 200);
    }
}

async fn concurrent_requests_of_many_users_each_get_their_own_session(kind: DbKind) {
    // The lookup thread answers many requests per query; each must get its own row.
    let app = spawn_app(kind).await;
    let names = ["ann", "bob", "cyd", "dee", "eve", "fay"];
    let mut browsers = Vec::new();
    for name in names {
        app.create_user(name, Role::User).await;
        let browser = app.browser();
        assert_eq!(browser.login(name, PASSWORD).await.status(), 303);
        browsers.push((name, browser));
    }
    let visits = browsers.iter().flat_map(|(name, b)| (0..6).map(move |_| async move { (*name, b.get("/").await) }));
    for (name, res) in futures_util::future::join_all(visits).await {
        assert_eq!(res.status(), 200, "{name} was bounced");
        let html = res.text().await.unwrap();
        let shown: Vec<&str> = names.iter().copied().filter(|n| html.contains(&format!(">{n}<"))).collect();
        assert_eq!(shown, [name], "{name}'s page shows only {name}");
    }
}

async fn a_dropped_database_connection_signs_no_one_out(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    app.login("alice", PASSWORD).await;
    assert_eq!(app.get("/").await.status(), 200);
    if kind == DbKind::Postgres {
        // As a database restart or a proxy would: every other connection to this database is cut,
        // the session lookup's own among them.
        let cut: Vec<bool> = app
            .with_db(|c| {
                diesel::sql_query(
                    "SELECT pg_terminate_backend(pid) AS cut FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid()",
                )
                .load::<Terminated>(c)
                .map(|rows| rows.into_iter().map(|r| r.cut).collect())
            })
            .await;
        assert!(cut.contains(&true), "the lookup connection was open and has been cut");
    }
    for _ in 0..3 {
        assert_eq!(app.get("/").await.status(), 200, "the lookup reconnects within the request");
    }
}

#[derive(diesel::QueryableByName)]
struct Terminated {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    cut: bool,
}
