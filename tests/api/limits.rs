//! Failed-attempt limits under parallel requests: a burst cannot outrun the lock.

use dashboard::db::throttle;
use dashboard::db::users::Role;

use crate::both_databases;
use crate::helpers::*;

both_databases!(
    forty_parallel_sign_ins_for_one_name_check_at_most_the_limit,
    parallel_guesses_from_one_address_are_capped_by_the_username_limit,
    the_current_password_counts_against_the_same_lock,
    an_attempt_the_address_refuses_counts_nowhere,
    a_right_password_checked_while_the_name_was_locked_clears_the_lock,
);

/// Fires one sign-in per password, all at once, while the first hash is held (so every request is
/// in before any check ends); returns the statuses.
async fn burst(app: &TestApp, passwords: &[&str]) -> Vec<u16> {
    let mut held = app.hasher.hold_next();
    let mut pending = Vec::new();
    for password in passwords {
        let browser = app.browser();
        pending.push(
            browser.submit_in_background("/login", "/login", &[("username", "alice"), ("password", password)]).await,
        );
    }
    held.reached().await;
    held.release();
    let mut statuses = Vec::new();
    for p in pending {
        statuses.push(p.await.unwrap().status().as_u16());
    }
    statuses
}

async fn forty_parallel_sign_ins_for_one_name_check_at_most_the_limit(kind: DbKind) {
    let app = spawn_app(kind).await; // limit 5
    app.create_user("alice", Role::User).await;
    let mut passwords = vec!["wrong wrong wrong wrong"; 39];
    passwords.insert(20, PASSWORD);
    let before = app.hasher.verifications();
    let statuses = burst(&app, &passwords).await;
    let checked = app.hasher.verifications() - before;
    assert!(checked <= 5, "{checked} passwords checked with a limit of 5");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count() as u64, 40 - checked, "{statuses:?}");
    assert!(app.session_rows().await <= 1);
}

async fn parallel_guesses_from_one_address_are_capped_by_the_username_limit(kind: DbKind) {
    let app = spawn_app_with(TestDb::new(kind), |s| s.sign_in.max_failures = 3).await;
    app.create_user("alice", Role::User).await;
    let before = app.hasher.verifications();
    let statuses = burst(&app, &["wrong wrong wrong wrong"; 24]).await;
    assert_eq!(app.hasher.verifications() - before, 3, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 3);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 21);
    assert_eq!(app.browser().login("alice", PASSWORD).await.status(), 429, "locked now");
}

async fn the_current_password_counts_against_the_same_lock(kind: DbKind) {
    let app = spawn_app(kind).await; // limit 5
    app.create_user("alice", Role::User).await;
    app.login("alice", PASSWORD).await;
    let change = |current: &'static str| {
        let me = app.me();
        async move {
            let fields = [("current_password", current), ("new_password", NEW), ("confirm_password", NEW)];
            me.submit("/account/password", "/account/password", &fields).await.status().as_u16()
        }
    };
    let mut statuses = Vec::new();
    for _ in 0..30 {
        statuses.push(change("wrong wrong wrong wrong").await);
    }
    assert_eq!(&statuses[..5], [400; 5], "five wrong guesses are checked");
    assert!(statuses[5..].iter().all(|s| *s == 429), "then the username is locked: {statuses:?}");
    assert_eq!(change(PASSWORD).await, 429, "the right one too, while locked");
    assert_eq!(app.browser().login("alice", PASSWORD).await.status(), 429, "sign-in shares the lock");
    let locked = app.with_db(|c| throttle::locked_until(c, &[&throttle::user_key("alice")], 0)).await;
    assert!(locked.is_some());
    assert!(app.browser().login("alice", NEW).await.status() != 303, "the password did not change");
}

/// Both counters are reserved by one statement; when the address is refused, what it reserved on the
/// username is given back, so a locked address cannot be used to lock other people's names.
async fn an_attempt_the_address_refuses_counts_nowhere(kind: DbKind) {
    let app = spawn_app_with(TestDb::new(kind), |s| s.sign_in.max_failures = 1).await;
    app.create_user("alice", Role::User).await;
    for i in 0..10 {
        assert_eq!(app.browser().login(&format!("user{i}"), "wrong wrong wrong wrong").await.status(), 401);
    }
    let before = app.hasher.verifications();
    for _ in 0..3 {
        assert_eq!(app.browser().login("alice", "wrong wrong wrong wrong").await.status(), 429);
    }
    assert_eq!(app.hasher.verifications(), before, "nothing was checked");
    let alice = app.with_db(|c| throttle::failures(c, &throttle::user_key("alice"))).await;
    assert_eq!(alice, 0, "the refused attempts did not count on the username");
}

/// A right password whose check was under way while wrong ones locked the name: the sign-in
/// succeeds (it was reserved before the lock) and, like any success, clears the lock and the count.
async fn a_right_password_checked_while_the_name_was_locked_clears_the_lock(kind: DbKind) {
    let app = spawn_app(kind).await; // limit 5
    app.create_user("alice", Role::User).await;
    let mut held = app.hasher.hold_next();
    let right = app.browser();
    let pending =
        right.submit_in_background("/login", "/login", &[("username", "alice"), ("password", PASSWORD)]).await;
    held.reached().await;
    for _ in 0..4 {
        assert_eq!(app.browser().login("alice", "wrong wrong wrong wrong").await.status(), 401);
    }
    let key = throttle::user_key("alice");
    assert!(app.with_db(move |c| throttle::locked_until(c, &[&key], 0)).await.is_some(), "locked meanwhile");
    held.release();
    assert_eq!(pending.await.unwrap().status(), 303);
    let key = throttle::user_key("alice");
    assert!(app.with_db(move |c| throttle::locked_until(c, &[&key], 0)).await.is_none(), "the lock is cleared");
    assert_eq!(app.with_db(|c| throttle::failures(c, &throttle::user_key("alice"))).await, 0);
    assert_eq!(app.browser().login("alice", PASSWORD).await.status(), 303);
}

const NEW: &str = "an entirely new passphrase here";
