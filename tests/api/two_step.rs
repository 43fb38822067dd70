//! The two-step sign-in: a right password for a user with a second factor leads to
//! `/login/mfa`, and no session row exists until the second factor succeeds. App codes are computed
//! here from the secret the set-up page showed; time moves with the app's clock.

use std::time::Duration;

use dashboard::db::schema::sessions;
use dashboard::db::users::Role;
use diesel::prelude::*;

use crate::both_databases;
use crate::helpers::*;
use crate::reauth::{details_of, event_kinds};
use crate::second_factors::{add_passkey, code, enrol, next_step, recovery_codes_in};

both_databases!(
    a_right_password_leads_to_the_second_step_and_no_session_row_exists_before_it,
    app_codes_are_accepted_with_one_step_of_drift_and_only_once,
    a_wrong_password_answers_the_same_whether_or_not_there_is_a_second_factor,
    the_pending_step_belongs_to_its_browser_and_lasts_five_minutes,
    recovery_codes_sign_in_once_and_say_how_many_are_left,
    wrong_codes_count_on_the_same_lock_as_passwords_and_the_lock_ends_the_pending_step,
    a_code_of_a_disabled_app_signs_nobody_in,
    two_submissions_of_one_code_sign_in_at_most_once,
    with_the_policy_off_the_password_is_enough_and_the_pages_are_gone,
    one_code_signs_in_once_across_two_instances_on_one_database,
    a_password_reset_or_a_disable_between_the_steps_ends_the_pending_sign_in,
);

/// alice with the app on (enrolled through the pages), signed out; returns the secret and her
/// recovery codes.
async fn alice_with_the_app(app: &TestApp) -> (Vec<u8>, Vec<String>) {
    app.create_user("alice", Role::User).await;
    let me = app.me();
    me.login("alice", PASSWORD).await;
    let (secret, res) = enrol(app, &me).await;
    let codes = recovery_codes_in(&res.text().await.unwrap());
    me.logout().await;
    next_step(app); // the enrolment's code is spent
    (secret, codes)
}

async fn second_step(b: &Browser, code: &str) -> reqwest::Response {
    b.submit("/login/mfa", "/login/mfa", &[("code", code)]).await
}

async fn methods(app: &TestApp) -> Vec<String> {
    app.with_db(|c| sessions::table.select(sessions::auth_method).load(c)).await
}

async fn a_right_password_leads_to_the_second_step_and_no_session_row_exists_before_it(kind: DbKind) {
    let app = spawn_app(kind).await;
    let (secret, _) = alice_with_the_app(&app).await;
    let me = app.me();
    let res = me
        .submit(
            "/login?next=%2Faccount%2Fsessions",
            "/login",
            &[("username", "alice"), ("password", PASSWORD), ("next", "/account/sessions")],
        )
        .await;
    assert_eq!((res.status().as_u16(), location(&res)), (303, "/login/mfa".to_owned()));
    assert_eq!(app.session_rows().await, 0, "no session before the second step");
    assert_eq!(me.get("/").await.status(), 303, "not signed in");
    let page = me.get("/login/mfa").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("action=\"/login/mfa\"") && html.contains("name=\"code\""));
    assert!(!html.contains("passkey-verify"), "no passkey button without passkeys");

    let res = second_step(&me, &code(&app, &secret, 0)).await;
    assert_eq!(location(&res), "/account/sessions", "to the sign-in's next");
    assert_eq!(me.get("/").await.status(), 200);
    assert_eq!(methods(&app).await, ["totp"]);
    assert!(details_of(&app, "sign_in").await.contains(&"with password and authenticator app".to_owned()));
    let page = me.get("/account/sessions").await.text().await.unwrap();
    assert!(page.contains("password and authenticator app"), "the sessions page says how");
    // The pending step is gone: the page sends to /login.
    assert_eq!(location(&me.get("/login/mfa").await), "/login");
}

async fn app_codes_are_accepted_with_one_step_of_drift_and_only_once(kind: DbKind) {
    let app = spawn_app(kind).await;
    let (secret, _) = alice_with_the_app(&app).await;
    let b = app.browser();
    next_step(&app); // the step before now is not the enrolment's (spent) one
                     // One step behind (a phone a little slow).
    b.login("alice", PASSWORD).await;
    let old = code(&app, &secret, -1);
    assert_eq!(location(&second_step(&b, &old).await), "/");
    b.logout().await;
    // The same code again: refused (replay), however quickly.
    b.login("alice", PASSWORD).await;
    let res = second_step(&b, &old).await;
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("That code is not right."));
    // A later step's code is a new code.
    assert_eq!(location(&second_step(&b, &code(&app, &secret, 1)).await), "/", "one step ahead");
    b.logout().await;
    // Two steps off either way: refused.
    app.clock.advance(Duration::from_secs(90));
    b.login("alice", PASSWORD).await;
    assert_eq!(second_step(&b, &code(&app, &secret, -2)).await.status(), 401);
    assert_eq!(second_step(&b, &code(&app, &secret, 2)).await.status(), 401);
    assert_eq!(location(&second_step(&b, &code(&app, &secret, 0)).await), "/");
    assert_eq!(details_of(&app, "second_factor_failed").await.len(), 3, "each wrong code is a second-factor failure");
}

async fn a_wrong_password_answers_the_same_whether_or_not_there_is_a_second_factor(kind: DbKind) {
    let app = spawn_app(kind).await;
    alice_with_the_app(&app).await;
    app.create_user("bob", Role::User).await;
    let with = app.browser().login("alice", "not her password at all").await;
    let without = app.browser().login("bob", "not his password at all").await;
    assert_eq!(
        (with.status(), without.status()),
        (reqwest::StatusCode::UNAUTHORIZED, reqwest::StatusCode::UNAUTHORIZED)
    );
    let (with, without) = (with.text().await.unwrap(), without.text().await.unwrap());
    assert!(with.contains("Invalid username or password.") && without.contains("Invalid username or password."));
    assert!(!with.contains("mfa") && !with.contains("code"), "nothing says alice has a second factor");
}

async fn the_pending_step_belongs_to_its_browser_and_lasts_five_minutes(kind: DbKind) {
    let app = spawn_app(kind).await;
    let (secret, _) = alice_with_the_app(&app).await;
    let (me, thief) = (app.me(), app.browser());
    me.login("alice", PASSWORD).await;
    // Another browser, even with a valid form token of its own, has no pending sign-in.
    assert_eq!(location(&thief.get("/login/mfa").await), "/login");
    let res = thief.submit("/login", "/login/mfa", &[("code", &code(&app, &secret, 0))]).await;
    assert_eq!(location(&res), "/login");
    assert_eq!(app.session_rows().await, 0);
    // Five minutes later the pending sign-in is over, even with a right code.
    app.clock.advance(Duration::from_secs(5 * 60));
    let res = me.submit("/login", "/login/mfa", &[("code", &code(&app, &secret, 0))]).await;
    assert_eq!(location(&res), "/login");
    assert_eq!(app.session_rows().await, 0);
    let pending: i64 = app.with_db(|c| dashboard::db::schema::pending_sign_ins::table.count().get_result(c)).await;
    assert_eq!(pending, 0, "the expired pending sign-in was deleted");
    // Within the five minutes it works.
    me.login("alice", PASSWORD).await;
    app.clock.advance(Duration::from_secs(4 * 60));
    assert_eq!(location(&second_step(&me, &code(&app, &secret, 0)).await), "/");
}

async fn recovery_codes_sign_in_once_and_say_how_many_are_left(kind: DbKind) {
    let app = spawn_app(kind).await;
    let (_, codes) = alice_with_the_app(&app).await;
    let me = app.me();
    me.login("alice", PASSWORD).await;
    let res = second_step(&me, &codes[3].to_uppercase()).await;
    assert_eq!(location(&res), "/account/security?done=recovery-code-used&n=9");
    let page = me.get(&location(&res)).await.text().await.unwrap();
    assert!(page.contains("You signed in with a recovery code. You have 9 left"));
    assert_eq!(methods(&app).await, ["recovery_code"]);
    assert_eq!(details_of(&app, "recovery_code_used").await, ["9 recovery codes left"]);
    me.logout().await;
    me.login("alice", PASSWORD).await;
    assert_eq!(second_step(&me, &codes[3]).await.status(), 401, "single use");
    assert_eq!(second_step(&me, "aaaa-bbbb-cccc-dddd").await.status(), 401, "not one of hers");
    // Another of them works.
    let res = second_step(&me, &codes[4]).await;
    assert_eq!(location(&res), "/account/security?done=recovery-code-used&n=8");
}

async fn wrong_codes_count_on_the_same_lock_as_passwords_and_the_lock_ends_the_pending_step(kind: DbKind) {
    let app = spawn_app_with(TestDb::new(kind), |s| s.sign_in.max_failures = 3).await;
    let (secret, _) = alice_with_the_app(&app).await;
    let me = app.me();
    assert_eq!(me.login("alice", "a wrong password here").await.status(), 401);
    me.login("alice", PASSWORD).await;
    assert_eq!(second_step(&me, "000000").await.status(), 401);
    // The pending step survives a wrong code …
    assert_eq!(me.get("/login/mfa").await.status(), 200);
    // … but not the lock: the third failure (password, code, code) locks the username.
    let res = second_step(&me, "111111").await;
    assert_eq!(res.status(), 429);
    assert_eq!(location(&me.get("/login/mfa").await), "/login", "the lock ended it");
    assert_eq!(app.browser().login("alice", PASSWORD).await.status(), 429, "sign-in is locked too");
    assert_eq!(app.session_rows().await, 0);
    let kinds = event_kinds(&app).await;
    assert_eq!(kinds.iter().filter(|k| *k == "second_factor_failed").count(), 2);
    assert!(kinds.contains(&"locked_out".to_owned()));
    // After the lockout a right password and code sign in.
    app.clock.advance(Duration::from_secs(15 * 60));
    me.login("alice", PASSWORD).await;
    assert_eq!(location(&second_step(&me, &code(&app, &secret, 0)).await), "/");
}

async fn a_code_of_a_disabled_app_signs_nobody_in(kind: DbKind) {
    let app = spawn_app(kind).await;
    let (secret, _) = alice_with_the_app(&app).await;
    let alice_id: String = {
        use dashboard::db::schema::users;
        app.with_db(|c| users::table.select(users::id).first(c)).await
    };
    add_passkey(&app, &alice_id, "pk", "Phone").await;
    let me = app.me();
    me.login("alice", PASSWORD).await;
    second_step(&me, &code(&app, &secret, 0)).await;
    next_step(&app);
    let res = me.submit("/account/security", "/account/totp/disable", &[]).await;
    assert_eq!(location(&res), "/account/security?done=totp-disabled&n=0");
    me.logout().await;
    // Still a second step (the passkey), where the old app's code does nothing.
    let res = me.login("alice", PASSWORD).await;
    assert_eq!(location(&res), "/login/mfa");
    let page = me.get("/login/mfa").await.text().await.unwrap();
    assert!(page.contains("<button id=\"passkey-verify\" type=\"button\">"), "the passkey button");
    assert!(page.contains("/static/passkeys.js"));
    assert_eq!(second_step(&me, &code(&app, &secret, 0)).await.status(), 401);
    assert_eq!(app.session_rows().await, 0);
}

async fn two_submissions_of_one_code_sign_in_at_most_once(kind: DbKind) {
    let app = spawn_app(kind).await;
    let (secret, _) = alice_with_the_app(&app).await;
    let (a, b) = (app.browser(), app.browser());
    a.login("alice", PASSWORD).await;
    b.login("alice", PASSWORD).await;
    let same = code(&app, &secret, 0);
    // a's request checks the code and is held just before spending it; b spends it meanwhile.
    let mut held = app.app_state().second_step_hold.hold_next();
    let first = a.submit_in_background("/login/mfa", "/login/mfa", &[("code", &same)]).await;
    held.reached().await;
    let second = second_step(&b, &same).await;
    assert_eq!(location(&second), "/");
    held.release();
    let first = first.await.unwrap();
    assert_eq!(first.status(), 401, "the code was spent by the other request");
    assert_eq!(app.session_rows().await, 1, "one sign-in");
    assert_eq!(a.get("/").await.status(), 303);
    // a's pending step survived the refusal: the next code signs it in.
    next_step(&app);
    assert_eq!(location(&second_step(&a, &code(&app, &secret, 0)).await), "/");
}

async fn with_the_policy_off_the_password_is_enough_and_the_pages_are_gone(kind: DbKind) {
    let db = TestDb::new(kind);
    let on = spawn_app_with(db.clone(), |_| {}).await;
    alice_with_the_app(&on).await;
    on.stop().await;
    let app = spawn_app_with(db, |s| s.sign_in.mfa = dashboard::config::MfaPolicy::Off).await;
    let me = app.me();
    assert_eq!(location(&me.login("alice", PASSWORD).await), "/", "no second step");
    for page in ["/account/security", "/account/totp", "/login/mfa"] {
        assert_eq!(me.get(page).await.status(), 404, "{page}");
    }
    let res = me.submit("/", "/account/recovery-codes", &[]).await;
    assert_eq!(res.status(), 404);
    assert!(!me.get("/").await.text().await.unwrap().contains("/account/security"), "no link to it");
    // /reauth asks for the password only.
    let page = me.get("/reauth").await.text().await.unwrap();
    assert!(!page.contains("name=\"code\""));
}

async fn one_code_signs_in_once_across_two_instances_on_one_database(kind: DbKind) {
    let one = spawn_app(kind).await;
    let (secret, _) = alice_with_the_app(&one).await;
    let two = spawn_app_with(one.db.clone(), |_| {}).await;
    two.clock.advance(std::time::Duration::from_secs(dashboard::auth::totp::STEP_SECONDS)); // the same time as one
    let (a, b) = (one.browser(), two.browser());
    a.login("alice", PASSWORD).await;
    b.login("alice", PASSWORD).await;
    let same = code(&one, &secret, 0);
    let mut held = one.app_state().second_step_hold.hold_next();
    let first = a.submit_in_background("/login/mfa", "/login/mfa", &[("code", &same)]).await;
    held.reached().await;
    assert_eq!(location(&second_step(&b, &same).await), "/", "the other instance accepts it");
    held.release();
    assert_eq!(first.await.unwrap().status(), 401, "this instance refuses it: the step is taken in the database");
    assert_eq!(one.session_rows().await, 1);
}

async fn a_password_reset_or_a_disable_between_the_steps_ends_the_pending_sign_in(kind: DbKind) {
    use dashboard::accounts::{self, Actor};
    let app = spawn_app(kind).await;
    let (secret, _) = alice_with_the_app(&app).await;
    let me = app.me();
    me.login("alice", PASSWORD).await;
    let hash = dashboard::auth::password::hash_blocking("a brand new long passphrase").unwrap();
    app.with_db(move |c| Ok(accounts::set_password(c, "alice", &hash, Actor::Cli).unwrap())).await;
    let res = second_step(&me, &code(&app, &secret, 0)).await;
    assert_eq!(location(&res), "/login", "the password it was started with is no longer hers");
    assert_eq!(app.session_rows().await, 0);

    next_step(&app);
    me.login("alice", "a brand new long passphrase").await;
    app.with_db(|c| Ok(accounts::disable(c, "alice", Actor::Cli).unwrap())).await;
    let res = second_step(&me, &code(&app, &secret, 0)).await;
    assert_eq!(location(&res), "/login");
    assert_eq!(app.session_rows().await, 0);
}
