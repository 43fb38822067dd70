//! `DASHBOARD_MAX_SESSIONS_PER_USER`: a sign-in beyond the cap ends the user's least recently used
//! session, with an audit event, in the sign-in's transaction — so parallel sign-ins cannot exceed it.

use dashboard::db::schema::{auth_events, sessions, users};
use dashboard::db::users::Role;
use diesel::prelude::*;

use crate::both_databases;
use crate::helpers::*;

both_databases!(
    a_sign_in_beyond_the_cap_ends_the_least_recently_used_session,
    parallel_sign_ins_of_one_user_never_exceed_the_cap,
);

async fn alice_session_ids(app: &TestApp) -> Vec<String> {
    app.with_db(|c| {
        sessions::table
            .inner_join(users::table)
            .filter(users::username.eq("alice"))
            .select(sessions::id)
            .order(sessions::id)
            .load(c)
    })
    .await
}

async fn a_sign_in_beyond_the_cap_ends_the_least_recently_used_session(kind: DbKind) {
    let app = spawn_app_with(TestDb::new(kind), |s| s.sessions.max_per_user = 2).await;
    app.create_user("alice", Role::User).await;
    let (a, b, c) = (app.browser(), app.browser(), app.browser());
    a.login("alice", PASSWORD).await;
    b.login("alice", PASSWORD).await;
    assert_eq!(alice_session_ids(&app).await.len(), 2);
    // `a` signed in first but was used since; `b` has been idle longer.
    let ids = alice_session_ids(&app).await;
    app.with_db(move |conn| {
        let now = dashboard::util::now_ms();
        for (i, id) in ids.iter().enumerate() {
            diesel::update(sessions::table.find(id))
                .set(sessions::last_seen_at.eq(now - 1000 * i as i64))
                .execute(conn)?;
        }
        Ok(())
    })
    .await;
    let lru = alice_session_ids(&app).await[1].clone();

    assert_eq!(c.login("alice", PASSWORD).await.status(), 303);
    let left = alice_session_ids(&app).await;
    assert_eq!(left.len(), 2, "the cap holds");
    assert!(!left.contains(&lru), "the least recently used session was ended");
    let (ended, by, detail): (Option<String>, Option<String>, String) = app
        .with_db(|conn| {
            auth_events::table
                .filter(auth_events::kind.eq("session_ended"))
                .select((auth_events::session_id, auth_events::actor, auth_events::detail))
                .first(conn)
        })
        .await;
    assert_eq!(ended.as_deref(), Some(lru.as_str()));
    assert_eq!(by.as_deref(), Some("system"));
    assert_eq!(detail, "least recently used, over the limit of 2 sessions per user");
    // Whichever browser held it is signed out; the other two stay in.
    let mut statuses = Vec::new();
    for browser in [&a, &b, &c] {
        statuses.push(browser.get("/").await.status().as_u16());
    }
    statuses.sort();
    assert_eq!(statuses, [200, 200, 303]);
}

async fn parallel_sign_ins_of_one_user_never_exceed_the_cap(kind: DbKind) {
    // The attempt reservation lets at most `login_max_failures` sign-ins of one name be checked at
    // once: raised, so that all of them reach the sign-in transaction.
    let app = spawn_app_with(TestDb::new(kind), |s| {
        s.sessions.max_per_user = 2;
        s.sign_in.max_failures = 50;
    })
    .await;
    let alice = app.create_user("alice", Role::User).await;

    // Through the form: twelve browsers at once.
    let mut running = Vec::new();
    for _ in 0..12 {
        let b = app.browser();
        running
            .push(b.submit_in_background("/login", "/login", &[("username", "alice"), ("password", PASSWORD)]).await);
    }
    for r in running {
        assert_eq!(r.await.unwrap().status(), 303);
    }
    assert_eq!(alice_session_ids(&app).await.len(), 2);

    // Through the service, with the hashing out of the way: eight sign-in transactions released
    // together by a barrier, each on its own connection.
    let (pool, timeouts, now) = (app.pool.clone(), app.state_timeouts(), app.clock.now_ms());
    tokio::task::spawn_blocking(move || {
        let barrier = std::sync::Barrier::new(8);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                let (pool, barrier, alice) = (&pool, &barrier, &alice);
                scope.spawn(move || {
                    let mut conn = pool.get().unwrap();
                    let token = dashboard::session::NewToken::new("{}".into());
                    let sign_in = dashboard::accounts::PasswordSignIn {
                        user_id: alice.id.clone(),
                        verified_hash: alice.password_hash.clone(),
                        rehash: None,
                        throttle_key: "user:alice".into(),
                        address_key: None,
                        trusted_browser: None,
                    };
                    let session = dashboard::accounts::NewSession {
                        token: token.row,
                        ip: "127.0.0.1".into(),
                        user_agent: String::new(),
                        cloud: None,
                        timeouts,
                        now,
                        auth_method: dashboard::accounts::AuthMethod::Password,
                        dbsc_challenge: None,
                    };
                    barrier.wait();
                    dashboard::accounts::sign_in(&mut conn, &sign_in, &session).unwrap();
                });
            }
        });
    })
    .await
    .unwrap();
    assert_eq!(alice_session_ids(&app).await.len(), 2, "never more than the cap");
    let (signed_in, ended): (i64, i64) = app
        .with_db(|c| {
            let count = |kind: &'static str| {
                auth_events::table.filter(auth_events::kind.eq(kind)).filter(auth_events::username.eq("alice")).count()
            };
            Ok((count("sign_in").get_result(c)?, count("session_ended").get_result(c)?))
        })
        .await;
    assert_eq!((signed_in, ended), (20, 18), "every sign-in beyond the cap ended one session, and said so");
}
