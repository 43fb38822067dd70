//! Account changes that race: each test holds one request inside its password hash (the hasher's
//! test hook), changes the account meanwhile, then lets the request go — and checks that the ended
//! state stays ended. Deterministic: the hold, not timing, decides the order.

use dashboard::accounts::{self, Actor, Ending};
use dashboard::auth::password::hash_blocking;
use dashboard::db::users::Role;
use diesel::prelude::*;

use crate::both_databases;
use crate::helpers::*;

both_databases!(
    a_password_change_whose_hash_is_held_loses_to_an_admin_reset,
    a_password_change_whose_hash_is_held_loses_to_a_logout,
    a_password_change_whose_hash_is_held_loses_to_an_admin_revocation,
    a_password_change_whose_hash_is_held_loses_to_ending_all_other_sessions,
    a_sign_in_whose_hash_is_held_loses_to_a_password_reset,
    a_sign_in_whose_hash_is_held_loses_to_a_disable,
    two_admins_demoted_at_once_leave_one_admin,
);

const NEW: &str = "an entirely new passphrase here";
const RESET: &str = "the administrator reset this one";

fn change_fields() -> [(&'static str, &'static str); 3] {
    [("current_password", PASSWORD), ("new_password", NEW), ("confirm_password", NEW)]
}

async fn alice_sessions(app: &TestApp) -> i64 {
    use dashboard::db::schema::{sessions, users};
    app.with_db(|c| sessions::table.inner_join(users::table).filter(users::username.eq("alice")).count().get_result(c))
        .await
}

/// Checks which of the passwords signs alice in now (each on a fresh browser).
async fn signs_in(app: &TestApp, password: &str) -> bool {
    app.browser().login("alice", password).await.status() == 303
}

async fn a_password_change_whose_hash_is_held_loses_to_an_admin_reset(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let alice = app.me();
    alice.login("alice", PASSWORD).await;

    let mut held = app.hasher.hold_next();
    let change = alice.submit_in_background("/account/password", "/account/password", &change_fields()).await;
    held.reached().await;
    let reset = hash_blocking(RESET).unwrap();
    let ended = app.with_db(move |c| Ok(accounts::set_password(c, "alice", &reset, Actor::Cli).unwrap())).await;
    assert_eq!(ended, 1);
    held.release();

    let res = change.await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login", "the request is signed out");
    assert_eq!(alice_sessions(&app).await, 0, "no session came back");
    assert_eq!(alice.get("/").await.status(), 303);
    assert!(signs_in(&app, RESET).await, "the reset stands");
    assert!(!signs_in(&app, NEW).await, "the old-password holder's new password was not written");
}

async fn a_password_change_whose_hash_is_held_loses_to_a_logout(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let alice = app.me();
    alice.login("alice", PASSWORD).await;

    let mut held = app.hasher.hold_next();
    let change = alice.submit_in_background("/account/password", "/account/password", &change_fields()).await;
    held.reached().await;
    assert_eq!(alice.logout().await.status(), 303);
    assert_eq!(alice_sessions(&app).await, 0);
    held.release();

    let res = change.await.unwrap();
    assert_eq!(location(&res), "/login");
    assert_eq!(alice_sessions(&app).await, 0, "the logout stands");
    assert!(signs_in(&app, PASSWORD).await, "the password did not change");
    assert!(!signs_in(&app, NEW).await);
}

async fn a_password_change_whose_hash_is_held_loses_to_an_admin_revocation(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let alice = app.me();
    alice.login("alice", PASSWORD).await;
    let id: String = {
        use dashboard::db::schema::sessions;
        app.with_db(|c| sessions::table.select(sessions::id).first(c)).await
    };

    let mut held = app.hasher.hold_next();
    let change = alice.submit_in_background("/account/password", "/account/password", &change_fields()).await;
    held.reached().await;
    app.with_db(move |c| {
        accounts::end_session(c, &id, Ending::Any(Actor::Admin("root"))).unwrap();
        Ok(())
    })
    .await;
    held.release();

    let res = change.await.unwrap();
    assert_eq!(location(&res), "/login");
    assert_eq!(alice_sessions(&app).await, 0, "the revocation stands");
    assert!(signs_in(&app, PASSWORD).await, "the password did not change");
}

async fn a_password_change_whose_hash_is_held_loses_to_ending_all_other_sessions(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let stolen = app.me();
    stolen.login("alice", PASSWORD).await;
    let owner = app.browser();
    owner.login("alice", PASSWORD).await;

    let mut held = app.hasher.hold_next();
    let change = stolen.submit_in_background("/account/password", "/account/password", &change_fields()).await;
    held.reached().await;
    let res = owner.submit("/account/sessions", "/account/sessions/revoke-others", &[]).await;
    assert_eq!(res.status(), 303);
    held.release();

    let res = change.await.unwrap();
    assert_eq!(location(&res), "/login");
    assert_eq!(alice_sessions(&app).await, 1, "only the owner's session is left");
    assert_eq!(owner.get("/").await.status(), 200);
    assert_eq!(stolen.get("/").await.status(), 303);
    assert!(signs_in(&app, PASSWORD).await, "the password did not change");
}

async fn a_sign_in_whose_hash_is_held_loses_to_a_password_reset(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let browser = app.browser();

    let mut held = app.hasher.hold_next();
    let sign_in =
        browser.submit_in_background("/login", "/login", &[("username", "alice"), ("password", PASSWORD)]).await;
    held.reached().await;
    let reset = hash_blocking(RESET).unwrap();
    app.with_db(move |c| Ok(accounts::set_password(c, "alice", &reset, Actor::Cli).unwrap())).await;
    held.release();

    let res = sign_in.await.unwrap();
    assert_eq!(res.status(), 401, "the old password no longer signs in");
    assert_eq!(alice_sessions(&app).await, 0);
    assert_eq!(browser.get("/").await.status(), 303);
}

async fn a_sign_in_whose_hash_is_held_loses_to_a_disable(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("root", Role::Admin).await;
    app.create_user("alice", Role::User).await;
    let browser = app.browser();

    let mut held = app.hasher.hold_next();
    let sign_in =
        browser.submit_in_background("/login", "/login", &[("username", "alice"), ("password", PASSWORD)]).await;
    held.reached().await;
    app.with_db(|c| Ok(accounts::disable(c, "alice", Actor::Admin("root")).unwrap())).await;
    held.release();

    assert_eq!(sign_in.await.unwrap().status(), 401);
    assert_eq!(alice_sessions(&app).await, 0, "a disabled account gets no session");
}

/// One connection demotes admin `b` inside an open transaction; meanwhile the service demotes `a`.
/// However the two interleave, the service's change waits for the lock and then refuses.
async fn two_admins_demoted_at_once_leave_one_admin(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("a", Role::Admin).await;
    app.create_user("b", Role::Admin).await;
    let pool = app.pool.clone();
    let mut first = pool.get().unwrap();
    diesel::sql_query(if kind == DbKind::Sqlite { "BEGIN IMMEDIATE" } else { "BEGIN" }).execute(&mut *first).unwrap();
    diesel::sql_query("UPDATE users SET role = 'user' WHERE username = 'b'").execute(&mut *first).unwrap();
    let second = std::thread::spawn(move || {
        let mut conn = pool.get().unwrap();
        accounts::set_role(&mut conn, "a", Role::User, Actor::Cli)
    });
    // Give the second change every chance to run first, if the locks let it (they must not).
    std::thread::sleep(std::time::Duration::from_millis(100));
    diesel::sql_query("COMMIT").execute(&mut *first).unwrap();
    let outcome = second.join().unwrap();
    assert!(matches!(outcome, Err(accounts::AccountError::LastActiveAdmin(..))), "{outcome:?}");
    use dashboard::db::schema::users;
    let admins: i64 = app.with_db(|c| users::table.filter(users::role.eq("admin")).count().get_result(c)).await;
    assert_eq!(admins, 1);
}
