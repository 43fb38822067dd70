//! The password hasher under a flood: a bounded queue that refuses at
//! once with a `503` page, and capacity shared between client addresses. Deterministic: every
//! hashing thread is held inside a job (`Hasher::hold_next`) while the queue is filled.

use std::sync::Arc;

use dashboard::auth::password::HeldHash;
use dashboard::db::users::Role;
use secrecy::SecretString;

use crate::both_databases;
use crate::helpers::*;

both_databases!(a_full_hashing_queue_answers_a_quick_503_and_another_address_still_signs_in);

/// Holds every hashing thread inside a job of its own.
async fn occupy_every_thread(app: &TestApp) -> Vec<HeldHash> {
    let mut held = Vec::new();
    for _ in 0..app.hasher.limits().threads {
        let mut hold = app.hasher.hold_next();
        tokio::spawn(app.hasher.verify(SecretString::from("x"), None, "192.0.2.200"));
        hold.reached().await;
        held.push(hold);
    }
    held
}

/// A browser whose connections come from `ip` (any address of 127.0.0.0/8 reaches loopback).
fn browser_from(app: &TestApp, ip: &str) -> Browser {
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let client = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    Browser { client, jar, address: app.address.clone() }
}

async fn a_full_hashing_queue_answers_a_quick_503_and_another_address_still_signs_in(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let (flooder, other) = (browser_from(&app, "127.0.0.1"), browser_from(&app, "127.0.0.2"));
    let held = occupy_every_thread(&app).await;

    // 127.0.0.1 fills its share of the queue (as its parallel sign-ins would).
    let share = app.hasher.limits().per_client;
    let flood: Vec<_> = (0..share)
        .map(|_| tokio::spawn(app.hasher.verify(SecretString::from("wrong guess"), None, "127.0.0.1")))
        .collect();
    assert_eq!(app.hasher.waiting(), share);
    let before = app.hasher.verifications();

    // Its next sign-in is refused at once — while every thread is still held, so it cannot have
    // waited for a hash — with a 503 page and Retry-After, and nothing hashed or counted.
    let res = flooder.login("alice", PASSWORD).await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(res.text().await.unwrap().contains("Please try again in a moment."));
    assert_eq!(app.hasher.verifications(), before, "nothing hashed");
    assert_eq!(app.hasher.waiting(), share);
    assert_eq!(app.session_rows().await, 0);
    // Refused before any database work: no attempt was even reserved (so a flood of refusals cannot
    // crowd other people's sign-ins out of the connection pool).
    let counters = app
        .with_db(|c| {
            use diesel::prelude::*;
            dashboard::db::schema::login_throttle::table.count().get_result::<i64>(c)
        })
        .await;
    assert_eq!(counters, 0, "no attempt counter was touched");

    // Another address is queued, not refused, and signs in once the threads are free.
    let signing_in = tokio::spawn(async move { other.login("alice", PASSWORD).await.status() });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.hasher.waiting() < share + 1 {
        assert!(std::time::Instant::now() < deadline, "the other address's sign-in never joined the queue");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    drop(held);
    assert_eq!(signing_in.await.unwrap(), 303);
    for f in flood {
        assert!(!f.await.unwrap().unwrap());
    }
    // Once the queue has room again, the flooding address signs in as well.
    assert_eq!(flooder.login("alice", PASSWORD).await.status(), 303);
}
