//! Second factors: the security page, the authenticator app with codes computed here
//! from the secret the page shows (as an app does), recovery codes, removing passkeys, the policy,
//! an administrator's reset, and their audit events. On SQLite and PostgreSQL.

use std::time::Duration;

use dashboard::auth::totp;
use dashboard::db::schema::{passkeys, recovery_codes, users};
use dashboard::db::users::Role;
use diesel::prelude::*;

use crate::both_databases;
use crate::helpers::*;
use crate::reauth::{details_of, event_kinds};

both_databases!(
    the_security_page_lists_factors_and_offers_each_action,
    the_app_is_enabled_only_after_a_right_code_and_shows_ten_recovery_codes_once,
    a_passkey_of_another_user_cannot_be_removed_and_removing_the_last_can_end_other_sessions,
    turning_the_app_off_ends_other_sessions_when_asked_and_its_codes_stop_working,
    new_recovery_codes_replace_the_old_ones,
    a_factor_change_from_a_session_ended_meanwhile_writes_nothing,
);

/// The value of `name="NAME" value="…"` in a page.
pub fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no field {name}")) + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

/// The text of the element with `id="ID"`.
pub fn by_id(html: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no element {id}"));
    let open = start + html[start..].find('>').unwrap() + 1;
    html[open..open + html[open..].find('<').unwrap()].to_owned()
}

/// Every `class="recovery-code"` element's text.
pub fn recovery_codes_in(html: &str) -> Vec<String> {
    html.split("class=\"recovery-code\">").skip(1).map(|rest| rest[..rest.find('<').unwrap()].to_owned()).collect()
}

/// The app's code for `secret` at the app's clock, `steps` steps away.
pub fn code(app: &TestApp, secret: &[u8], steps: i64) -> String {
    totp::code_at_step(secret, totp::step_at(app.clock.now_ms()) + steps).unwrap()
}

/// Sets up the app for the signed-in `b`, as a person would: reads the secret off the page, types
/// the app's code. Returns the secret and the page that answered.
pub async fn enrol(app: &TestApp, b: &Browser) -> (Vec<u8>, reqwest::Response) {
    let page = b.get("/account/totp").await.text().await.unwrap();
    let secret = totp::decode_base32(&by_id(&page, "totp-secret")).expect("a base32 secret");
    let (setup, csrf) = (field(&page, "setup"), csrf_from(&page));
    let code = code(app, &secret, 0);
    let res = b
        .client
        .post(b.url("/account/totp"))
        .form(&[("setup", setup.as_str()), ("code", &code), ("csrf_token", &csrf)])
        .send()
        .await
        .unwrap();
    (secret, res)
}

/// Moves the app's clock to the next time step (so the next code is a new one).
pub fn next_step(app: &TestApp) {
    app.clock.advance(Duration::from_secs(totp::STEP_SECONDS));
}

pub async fn add_passkey(app: &TestApp, user_id: &str, id: &str, name: &str) {
    let (user_id, id, name) = (user_id.to_owned(), id.to_owned(), name.to_owned());
    app.with_db(move |c| {
        diesel::insert_into(passkeys::table)
            .values((
                passkeys::id.eq(&id),
                passkeys::user_id.eq(&user_id),
                passkeys::credential_id.eq(format!("cred-{id}")),
                passkeys::name.eq(&name),
                passkeys::credential.eq("{}"),
                passkeys::created_at.eq(dashboard::util::now_ms()),
            ))
            .execute(c)
    })
    .await;
}

/// Marks every session as last authenticated with `method` (what a `/reauth` with it records).
pub async fn authenticated_with(app: &TestApp, method: &'static str) {
    app.with_db(move |c| {
        diesel::update(dashboard::db::schema::sessions::table)
            .set(dashboard::db::schema::sessions::authenticated_with.eq(method))
            .execute(c)
    })
    .await;
}

pub async fn unused_codes(app: &TestApp) -> i64 {
    app.with_db(|c| recovery_codes::table.filter(recovery_codes::used_at.is_null()).count().get_result(c)).await
}

async fn the_security_page_lists_factors_and_offers_each_action(kind: DbKind) {
    let app = spawn_app(kind).await;
    let alice = app.create_user("alice", Role::User).await;
    app.login("alice", PASSWORD).await;
    add_passkey(&app, &alice.id, "pk1", "Work laptop").await;
    let res = app.get("/account/security").await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-totp=\"off\"") && html.contains("href=\"/account/totp\""));
    assert!(html.contains("<tr data-passkey-id=\"pk1\">") && html.contains("Work laptop"));
    assert!(html.contains("action=\"/account/passkeys/pk1/delete\""));
    assert!(html.contains("name=\"end_others\" value=\"yes\" checked"), "the last passkey offers to end sessions");
    assert!(html.contains("id=\"passkey-name\"") && html.contains("<button id=\"add-passkey\" type=\"button\""));
    assert!(html.contains("<script src=\"/static/passkeys.js\" defer></script>"));
    assert_eq!(by_id(&html, "recovery-codes-left"), "0");
    assert!(
        html.contains("href=\"/account/security\" aria-current=\"page\">Security</a>"),
        "the navigation leads here"
    );
}

async fn the_app_is_enabled_only_after_a_right_code_and_shows_ten_recovery_codes_once(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let me = app.me();
    me.login("alice", PASSWORD).await;
    let page = me.get("/account/totp").await.text().await.unwrap();
    assert!(page.contains("<svg role=\"img\""), "a QR code drawn on the server");
    let secret = totp::decode_base32(&by_id(&page, "totp-secret")).unwrap();
    let wrong =
        me.submit("/account/totp", "/account/totp", &[("setup", &field(&page, "setup")), ("code", "000000")]).await;
    assert_eq!(wrong.status(), 400);
    let stored = || app.with_db(|c| users::table.select(users::totp_secret).first::<Option<String>>(c));
    assert_eq!(stored().await, None, "not on after a wrong code");
    // A form tampered with, or another user's, does not open.
    let forged =
        me.submit("/account/totp", "/account/totp", &[("setup", "AAAA"), ("code", &code(&app, &secret, 0))]).await;
    assert_eq!(forged.status(), 400);

    let (secret, res) = enrol(&app, &me).await;
    assert_eq!(res.status(), 200);
    let codes = recovery_codes_in(&res.text().await.unwrap());
    assert_eq!(codes.len(), 10);
    let sealed = stored().await.expect("on");
    assert!(!sealed.contains(&totp::base32(&secret)), "the secret is sealed at rest");
    let html = me.get("/account/security").await.text().await.unwrap();
    assert!(html.contains("data-totp=\"on\""));
    assert_eq!(by_id(&html, "recovery-codes-left"), "10");
    assert!(recovery_codes_in(&html).is_empty(), "shown once");
    assert_eq!(unused_codes(&app).await, 10);
    let stored_hashes: Vec<String> =
        app.with_db(|c| recovery_codes::table.select(recovery_codes::code_hash).load(c)).await;
    assert!(codes.iter().all(|c| stored_hashes.iter().all(|h| !h.contains(c.as_str()))), "stored hashed");

    // Setting up again (a new phone) keeps the codes and shows none.
    next_step(&app);
    let (_, again) = enrol(&app, &me).await;
    assert_eq!(location(&again), "/account/security?done=totp-enabled");
    assert_eq!(details_of(&app, "second_factor_added").await, ["authenticator app", "authenticator app (replaced)"]);
    assert_eq!(details_of(&app, "recovery_codes_created").await, ["10 codes with the authenticator app"]);
}

async fn a_passkey_of_another_user_cannot_be_removed_and_removing_the_last_can_end_other_sessions(kind: DbKind) {
    let app = spawn_app(kind).await;
    let alice = app.create_user("alice", Role::User).await;
    let bob = app.create_user("bob", Role::User).await;
    let (me, other) = (app.me(), app.browser());
    me.login("alice", PASSWORD).await;
    other.login("alice", PASSWORD).await;
    add_passkey(&app, &alice.id, "pk-a", "Phone").await;
    add_passkey(&app, &bob.id, "pk-b", "Bob's key").await;
    // Now that she has a passkey, only it proves her: as if she had just confirmed with it.
    authenticated_with(&app, "passkey").await;
    let res = me.submit("/account/security", "/account/passkeys/pk-b/delete", &[("end_others", "yes")]).await;
    assert_eq!(res.status(), 404);
    let left = || app.with_db(|c| passkeys::table.count().get_result::<i64>(c));
    assert_eq!(left().await, 2);
    let res = me.submit("/account/security", "/account/passkeys/pk-a/delete", &[("end_others", "yes")]).await;
    assert_eq!(location(&res), "/account/security?done=passkey-deleted&n=1");
    assert_eq!(left().await, 1);
    assert_eq!(other.get("/").await.status(), 303, "the other session ended");
    assert_eq!(me.get("/").await.status(), 200);
    assert_eq!(details_of(&app, "second_factor_removed").await, ["passkey “Phone”"]);
}

async fn turning_the_app_off_ends_other_sessions_when_asked_and_its_codes_stop_working(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let (me, other) = (app.me(), app.browser());
    me.login("alice", PASSWORD).await;
    enrol(&app, &me).await;
    // Kept: another session (signed in with the code) survives when the box is not ticked.
    next_step(&app);
    let res = me.submit("/account/security", "/account/totp/disable", &[]).await;
    assert_eq!(location(&res), "/account/security?done=totp-disabled&n=0");
    assert_eq!(details_of(&app, "second_factor_removed").await, ["authenticator app"]);
    // A code of the disabled app signs nobody in: the password alone does (no second step).
    let res = other.login("alice", PASSWORD).await;
    assert_eq!(location(&res), "/");
    // Off again is refused plainly.
    let res = me.submit("/account/security", "/account/totp/disable", &[("end_others", "yes")]).await;
    assert_eq!(res.status(), 400);
    // On again, then off with the box ticked: the other session ends.
    next_step(&app);
    enrol(&app, &me).await;
    let res = me.submit("/account/security", "/account/totp/disable", &[("end_others", "yes")]).await;
    assert_eq!(location(&res), "/account/security?done=totp-disabled&n=1");
    assert_eq!(other.get("/").await.status(), 303);
}

async fn new_recovery_codes_replace_the_old_ones(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    let me = app.me();
    me.login("alice", PASSWORD).await;
    let (_, res) = enrol(&app, &me).await;
    let old = recovery_codes_in(&res.text().await.unwrap());
    let res = me.submit("/account/security", "/account/recovery-codes", &[]).await;
    assert_eq!(res.status(), 200);
    let new = recovery_codes_in(&res.text().await.unwrap());
    assert_eq!(new.len(), 10);
    assert!(old.iter().all(|c| !new.contains(c)));
    assert_eq!(unused_codes(&app).await, 10, "the old ones are gone");
    assert_eq!(
        details_of(&app, "recovery_codes_created").await,
        ["10 codes with the authenticator app", "10 codes, replacing the old ones"]
    );
    assert!(event_kinds(&app).await.iter().all(|k| k != "session_ended"), "the box was not ticked");
}

/// A change to one's own factors still in flight when its session was ended (a logout, a revocation,
/// an admin's reset) finds the session gone in its transaction and writes nothing.
async fn a_factor_change_from_a_session_ended_meanwhile_writes_nothing(kind: DbKind) {
    use dashboard::accounts::{self, AccountError, Own};
    use dashboard::db::schema::sessions;
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    app.login("alice", PASSWORD).await;
    let (user_id, session_id): (String, String) =
        app.with_db(|c| sessions::table.select((sessions::user_id, sessions::id)).first(c)).await;
    // Ended (as a logout or a revocation ends it) while the change was on its way.
    app.with_db(|c| diesel::delete(sessions::table).execute(c)).await;
    let now = app.clock.now_ms();
    let result = app
        .with_db(move |c| {
            let own = Own { user_id: &user_id, session_id: &session_id, ip: "127.0.0.1", now };
            Ok(accounts::new_recovery_codes(c, &own, &["hash".to_owned()], false))
        })
        .await;
    assert!(matches!(result, Err(AccountError::SessionEnded)), "{result:?}");
    let codes: i64 = app.with_db(|c| recovery_codes::table.count().get_result(c)).await;
    assert_eq!(codes, 0, "nothing was written");
}
