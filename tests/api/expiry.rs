use std::time::Duration;

use dashboard::db::schema::sessions;
use dashboard::db::users::Role;
use dashboard::util::now_ms;
use diesel::prelude::*;

use crate::both_databases;
use crate::helpers::*;

both_databases!(
    the_idle_timeout_slides_with_activity_and_expires_without_it,
    the_absolute_timeout_ends_an_active_session,
    an_expired_session_redirects_to_login_with_a_notice_and_its_row_is_deleted,
    an_expired_post_runs_no_handler,
    a_refresh_is_coalesced_within_the_slack,
    signing_in_deletes_the_users_expired_sessions,
    the_pruner_deletes_expired_sessions_and_only_those,
);

async fn idle_expiry(app: &TestApp) -> i64 {
    app.with_db(|c| sessions::table.select(sessions::idle_expires_at).first::<i64>(c)).await
}

async fn the_idle_timeout_slides_with_activity_and_expires_without_it(kind: DbKind) {
    let app = spawn_app_with(TestDb::new(kind), |s| s.sessions.idle_timeout = Duration::from_secs(2 * 3600)).await;
    app.create_user("alice", Role::User).await;
    app.login("alice", PASSWORD).await;

    // Each request comes before the idle timeout and pushes the expiry forward: 3 h 20 in all,
    // longer than the 2 h timeout. (The app's clock moves; nothing sleeps.)
    for _ in 0..4 {
        app.clock.advance(Duration::from_secs(50 * 60));
        let res = app.get("/").await;
        assert_eq!(res.status(), 200, "activity keeps the session alive");
    }
    // Then idle for longer than the timeout.
    app.clock.advance(Duration::from_secs(2 * 3600 + 1));
    let res = app.get("/").await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login?next=%2F");
    assert_eq!(app.session_rows().await, 0);
}

async fn the_absolute_timeout_ends_an_active_session(kind: DbKind) {
    let app = spawn_app_with(TestDb::new(kind), |s| {
        s.sessions.idle_timeout = Duration::from_secs(3600);
        s.sessions.absolute_timeout = Some(Duration::from_secs(90 * 60));
    })
    .await;
    app.create_user("alice", Role::User).await;
    app.login("alice", PASSWORD).await;
    assert!(idle_expiry(&app).await <= app.clock.now_ms() + 3_600_000, "idle expiry never passes the absolute one");

    app.clock.advance(Duration::from_secs(50 * 60));
    assert_eq!(app.get("/").await.status(), 200);
    assert!(idle_expiry(&app).await <= app.clock.now_ms() + 40 * 60_000, "the slide stops at the absolute expiry");
    app.clock.advance(Duration::from_secs(41 * 60));
    let res = app.get("/").await;
    assert_eq!(res.status(), 303, "active, but past the absolute timeout");
    assert_eq!(app.session_rows().await, 0);
}

async fn an_expired_session_redirects_to_login_with_a_notice_and_its_row_is_deleted(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    app.login("alice", PASSWORD).await;
    app.expire_all_sessions().await;
    assert_eq!(app.session_rows().await, 1, "not pruned yet");

    let res = app.get("/account/sessions?page=2").await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login?next=%2Faccount%2Fsessions%3Fpage%3D2");
    assert_eq!(app.session_rows().await, 0, "the expired row met on access is deleted");

    let html = app.get(&location(&res)).await.text().await.unwrap();
    assert!(html.contains("Your session has expired"), "{html}");
    // Said once: the dead cookie was dropped.
    let html = app.get("/login").await.text().await.unwrap();
    assert!(!html.contains("Your session has expired"));

    // A visitor who never signed in is not told their session expired.
    let stranger = app.browser();
    let res = stranger.get("/").await;
    let html = stranger.get(&location(&res)).await.text().await.unwrap();
    assert!(!html.contains("Your session has expired"));
}

async fn an_expired_post_runs_no_handler(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    app.login("alice", PASSWORD).await;
    let token = csrf_from(&app.get("/").await.text().await.unwrap());
    app.expire_all_sessions().await;

    let res = app.client.post(app.url("/logout")).form(&[("csrf_token", token)]).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login?next=%2Flogout");
    // No removal cookie from the logout handler: it never ran.
    assert!(res.headers().get("set-cookie").is_none());
}

async fn a_refresh_is_coalesced_within_the_slack(kind: DbKind) {
    // 2 h idle timeout: the slack is 60 s, so requests within a minute write nothing.
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    app.login("alice", PASSWORD).await;
    let first = idle_expiry(&app).await;
    app.clock.advance(Duration::from_secs(30));
    app.get("/").await;
    assert_eq!(idle_expiry(&app).await, first, "no write within the slack");

    // Pretend the last write was two minutes ago: the next request slides the expiry.
    let behind = first - 120_000;
    app.with_db(move |c| diesel::update(sessions::table).set(sessions::idle_expires_at.eq(behind)).execute(c)).await;
    app.get("/").await;
    let slid = idle_expiry(&app).await;
    assert!(slid >= first, "slid forward: {slid} vs {first}");
}

async fn signing_in_deletes_the_users_expired_sessions(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    app.create_user("bob", Role::User).await;
    app.browser().login("alice", PASSWORD).await;
    app.browser().login("bob", PASSWORD).await;
    app.expire_all_sessions().await;

    app.login("alice", PASSWORD).await;
    let owners: Vec<String> = app
        .with_db(|c| {
            sessions::table
                .inner_join(dashboard::db::schema::users::table)
                .filter(sessions::idle_expires_at.le(now_ms()))
                .select(dashboard::db::schema::users::username)
                .load(c)
        })
        .await;
    assert_eq!(owners, vec!["bob".to_owned()], "alice's expired session went, bob's waits for the pruner");
    assert_eq!(app.session_rows().await, 2);
}

async fn the_pruner_deletes_expired_sessions_and_only_those(kind: DbKind) {
    let app = spawn_app_with(TestDb::new(kind), |s| s.sessions.prune_interval = Some(Duration::from_millis(300))).await;
    app.create_user("alice", Role::User).await;
    let (a, b, live) = (app.browser(), app.browser(), app.browser());
    a.login("alice", PASSWORD).await;
    b.login("alice", PASSWORD).await;
    app.expire_all_sessions().await;
    live.login("alice", PASSWORD).await;
    // alice's sign-in already removed her expired ones; make two more of another user's.
    app.create_user("bob", Role::User).await;
    let (c, d) = (app.browser(), app.browser());
    c.login("bob", PASSWORD).await;
    d.login("bob", PASSWORD).await;
    let past = now_ms() - 1;
    app.with_db(move |conn| {
        diesel::update(
            sessions::table.filter(
                sessions::user_id.ne_all(
                    dashboard::db::schema::users::table
                        .filter(dashboard::db::schema::users::username.eq("alice"))
                        .select(dashboard::db::schema::users::id),
                ),
            ),
        )
        .set(sessions::idle_expires_at.eq(past))
        .execute(conn)
    })
    .await;
    assert_eq!(app.session_rows().await, 3);

    let mut rows = 3;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        rows = app.session_rows().await;
        if rows == 1 {
            break;
        }
    }
    assert_eq!(rows, 1, "the pruner removed both expired rows");
    assert_eq!(live.get("/").await.status(), 200, "and kept the live one");
}

both_databases!(two_pruners_on_one_database_do_not_conflict);

async fn two_pruners_on_one_database_do_not_conflict(kind: DbKind) {
    use dashboard::db::sessions::NewSession;
    use dashboard::session::pruner::prune_expired_in_batches_of;

    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    // Bob's: alice's own expired sessions would be deleted when she signs in below.
    let bob = app.create_user("bob", Role::User).await;
    let past = now_ms() - 1000;
    let user_id = bob.id.clone();
    app.with_db(move |c| {
        for batch in 0..6 {
            let ids: Vec<(String, String)> =
                (0..500).map(|i| (format!("s{batch}-{i}"), format!("h{batch}-{i}"))).collect();
            let rows: Vec<NewSession> = ids
                .iter()
                .map(|(id, hash)| NewSession {
                    id,
                    token_hash: hash,
                    user_id: &user_id,
                    data: "{}",
                    created_at: past,
                    last_seen_at: past,
                    idle_expires_at: past,
                    absolute_expires_at: None,
                    ip: "127.0.0.1",
                    user_agent: "test",
                    cloud_token: None,
                    cloud_role: None,
                    cloud_expires_at: None,
                    auth_method: "password",
                    authenticated_with: "password",
                    authenticated_at: past,
                    csrf_token: "",
                    dbsc_challenge: None,
                })
                .collect();
            // MultiConnection has no multi-row INSERT: one statement per row, one transaction per batch.
            c.transaction(|c| rows.iter().try_for_each(|row| dashboard::db::sessions::insert(c, row).map(drop)))?;
        }
        Ok(())
    })
    .await;
    let live = app.browser();
    live.login("alice", PASSWORD).await;
    assert_eq!(app.session_rows().await, 3001);

    // Two "instances" (separate pools) prune at once, in batches of 250, so each runs several
    // batches and their statements interleave.
    let (pool_a, pool_b) = (app.db.pool(), app.db.pool());
    let prune = |pool: dashboard::db::Pool| {
        tokio::task::spawn_blocking(move || {
            let mut pauses = 0;
            let n = prune_expired_in_batches_of(&mut pool.get().unwrap(), 250, || pauses += 1);
            n.map(|n| (n, pauses))
        })
    };
    let (a, b) = (prune(pool_a), prune(pool_b));
    let ((a, pauses_a), (b, pauses_b)) = (a.await.unwrap().expect("pruner a"), b.await.unwrap().expect("pruner b"));
    assert_eq!(a + b, 3000, "every expired row deleted once: {a} + {b}");
    assert!(pauses_a + pauses_b >= 3000 / 250 - 2, "pruned in batches: {pauses_a} + {pauses_b} pauses");
    assert_eq!(app.session_rows().await, 1);
    assert_eq!(live.get("/").await.status(), 200);
}
