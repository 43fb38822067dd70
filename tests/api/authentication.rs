//! What counts as an authentication: for a user with a second factor only the factor opens the
//! re-authentication window (the password alone never does, not at `/reauth` and not as the
//! current password of a password change); a recovery code at `/reauth` is spent in the same
//! transaction that opens the window; an authenticator-app set-up form cannot be replayed after the
//! app changed. The window is moved with the app's clock; the race is ordered by a hold point.

use std::time::Duration;

use dashboard::auth::{recovery, totp};
use dashboard::db::schema::{sessions, users};
use dashboard::db::users::Role;
use diesel::prelude::*;

use crate::both_databases;
use crate::helpers::*;
use crate::reauth::details_of;
use crate::second_factors::{add_passkey, authenticated_with, by_id, code, enrol, field, next_step, unused_codes};

both_databases!(
    a_password_alone_never_opens_the_window_for_a_user_with_the_app,
    a_passkey_only_user_confirms_with_a_recovery_code_not_the_password_alone,
    the_current_password_opens_the_window_for_a_user_without_a_second_factor,
    a_recovery_code_is_not_spent_for_a_session_that_ended_while_confirming,
    an_app_set_up_form_cannot_be_replayed_after_the_app_changed,
);

const WINDOW: Duration = Duration::from_secs(15 * 60);
const NEW: &str = "a new and rather long passphrase";

async fn password_hash_of(app: &TestApp, name: &'static str) -> String {
    app.with_db(move |c| users::table.filter(users::username.eq(name)).select(users::password_hash).first(c)).await
}

async fn change_password(b: &Browser) -> reqwest::Response {
    b.submit(
        "/account/password",
        "/account/password",
        &[("current_password", PASSWORD), ("new_password", NEW), ("confirm_password", NEW)],
    )
    .await
}

async fn a_password_alone_never_opens_the_window_for_a_user_with_the_app(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let me = app.me();
    me.login("alice", PASSWORD).await;
    let (secret, res) = enrol(&app, &me).await;
    assert_eq!(res.status(), 200, "the app is on");
    app.clock.advance(WINDOW);

    // The current password of a password change is not an authentication for her any more.
    let before = password_hash_of(&app, "alice").await;
    assert_eq!(location(&change_password(&me).await), "/reauth?next=%2Faccount%2Fpassword");
    assert_eq!(password_hash_of(&app, "alice").await, before, "nothing changed");

    // Nor is the password alone at /reauth.
    let page = "/reauth?next=%2Faccount%2Fsecurity";
    let res = me.submit(page, "/reauth", &[("password", PASSWORD), ("next", "/account/security")]).await;
    assert_eq!(res.status(), 401);
    assert_eq!(details_of(&app, "reauth_failed").await, ["no code"]);
    let res = me.submit("/account/security", "/account/totp/disable", &[]).await;
    assert_eq!(location(&res), "/reauth?next=%2Faccount%2Fsecurity", "the window stays closed");

    // The password and the app's code do.
    next_step(&app);
    let code = code(&app, &secret, 0);
    let res =
        me.submit(page, "/reauth", &[("password", PASSWORD), ("code", &code), ("next", "/account/security")]).await;
    assert_eq!(location(&res), "/account/security");
    assert_eq!(location(&change_password(&me).await), "/account/password?done=password-changed");
    let method: String = app.with_db(|c| sessions::table.select(sessions::authenticated_with).first(c)).await;
    assert_eq!(method, "totp", "the session records how it last authenticated");
}

async fn a_passkey_only_user_confirms_with_a_recovery_code_not_the_password_alone(kind: DbKind) {
    let app = spawn_app(kind).await;
    let alice = app.create_user("alice", Role::User).await;
    let me = app.me();
    me.login("alice", PASSWORD).await;
    add_passkey(&app, &alice.id, "pk-a", "Phone").await;
    authenticated_with(&app, "passkey").await;
    app.clock.advance(WINDOW);
    let delete = || me.submit("/account/security", "/account/passkeys/pk-a/delete", &[]);
    assert_eq!(location(&delete().await), "/reauth?next=%2Faccount%2Fsecurity");

    // The page asks for a recovery code besides the password; the password alone is refused.
    let form = me.get("/reauth?next=%2Faccount%2Fsecurity").await.text().await.unwrap();
    assert!(form.contains("name=\"code\"") && form.contains("A recovery code"), "{form}");
    let res = me.submit("/reauth", "/reauth", &[("password", PASSWORD), ("next", "/account/security")]).await;
    assert_eq!(res.status(), 401);
    assert_eq!(location(&delete().await), "/reauth?next=%2Faccount%2Fsecurity", "the passkey stays");

    let codes = recovery::generate();
    let (uid, now) = (alice.id.clone(), app.clock.now_ms());
    let hashes: Vec<String> = codes.iter().map(|c| recovery::hash(&uid, &recovery::normalize(c).unwrap())).collect();
    app.with_db(move |c| dashboard::db::factors::replace_recovery_codes(c, &uid, &hashes, now)).await;
    let res = me
        .submit("/reauth", "/reauth", &[("password", PASSWORD), ("code", &codes[0]), ("next", "/account/security")])
        .await;
    assert_eq!(location(&res), "/account/security");
    assert_eq!(unused_codes(&app).await, 9, "spent");
    assert_eq!(details_of(&app, "reauthenticated").await, ["with password and recovery code"]);
    assert!(location(&delete().await).starts_with("/account/security?done=passkey-deleted"));
}

async fn the_current_password_opens_the_window_for_a_user_without_a_second_factor(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let me = app.me();
    me.login("alice", PASSWORD).await;
    app.clock.advance(WINDOW);
    assert_eq!(location(&change_password(&me).await), "/account/password?done=password-changed");
    let res = me.submit("/account/sessions", "/account/sessions/revoke-others", &[]).await;
    assert!(location(&res).starts_with("/account/sessions?done="), "it opened the window");
}

async fn a_recovery_code_is_not_spent_for_a_session_that_ended_while_confirming(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let me = app.me();
    me.login("alice", PASSWORD).await;
    let (_, res) = enrol(&app, &me).await;
    let codes = crate::second_factors::recovery_codes_in(&res.text().await.unwrap());
    app.clock.advance(WINDOW);

    let mut held = app.app_state().reauth_hold.hold_next();
    let fields = [("password", PASSWORD), ("code", codes[0].as_str()), ("next", "/account/security")];
    let confirming = me.submit_in_background("/reauth", "/reauth", &fields).await;
    held.reached().await;
    // Ended (an admin, another tab) while the code was being checked.
    app.with_db(|c| diesel::delete(sessions::table).execute(c)).await;
    held.release();
    let res = confirming.await.unwrap();
    assert_eq!(res.status(), 303);
    assert!(location(&res).starts_with("/login"), "{}", location(&res));
    assert_eq!(unused_codes(&app).await, 10, "the code was not spent");
    assert!(details_of(&app, "reauthenticated").await.is_empty());
    assert!(details_of(&app, "recovery_code_used").await.is_empty());
}

async fn an_app_set_up_form_cannot_be_replayed_after_the_app_changed(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let me = app.me();
    me.login("alice", PASSWORD).await;
    // A set-up page seen (and kept) before the app was turned on from another one.
    let old = me.get("/account/totp").await.text().await.unwrap();
    let old_secret = totp::decode_base32(&by_id(&old, "totp-secret")).unwrap();
    let (_, res) = enrol(&app, &me).await;
    assert_eq!(res.status(), 200);
    next_step(&app);
    let res = me.submit("/account/security", "/account/totp/disable", &[]).await;
    assert!(location(&res).starts_with("/account/security?done=totp-disabled"), "{}", location(&res));

    next_step(&app);
    let replay = me
        .client
        .post(me.url("/account/totp"))
        .form(&[
            ("setup", field(&old, "setup").as_str()),
            ("code", &code(&app, &old_secret, 0)),
            ("csrf_token", &csrf_from(&old)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 400);
    let secret: Option<String> = app.with_db(|c| users::table.select(users::totp_secret).first(c)).await;
    assert_eq!(secret, None, "the app stays off");
}
