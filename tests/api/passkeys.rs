//! Passkeys (WebAuthn) over HTTP, with a software authenticator ([`SoftAuthenticator`]): adding
//! them, signing in with one alone, confirming who you are with one, and every way an answer can be
//! wrong — each refused with nothing signed in and no session row. The app's public URL is
//! `http://localhost:PORT` (browsers, and the relying party, refuse IP addresses).

use std::time::Duration;

use dashboard::db::schema::{passkeys, sessions, webauthn_ceremonies};
use dashboard::db::throttle;
use dashboard::db::users::Role;
use diesel::prelude::*;
use serde_json::{json, Value};

use crate::both_databases;
use crate::helpers::*;
use crate::reauth::details_of;
use crate::soft_authenticator::{tamper, SoftAuthenticator};

both_databases!(
    a_passkey_is_added_and_signs_in_alone,
    a_passkey_is_the_second_step_after_a_password,
    names_are_required_trimmed_bounded_and_unique_per_user,
    a_bogus_signature_signs_nobody_in,
    a_credential_of_another_user_signs_nobody_in,
    a_replayed_assertion_signs_nobody_in,
    two_answers_to_one_challenge_sign_in_once,
    an_assertion_for_another_origin_signs_nobody_in,
    an_expired_challenge_signs_nobody_in,
    another_browsers_challenge_cannot_be_answered,
    a_disabled_users_passkey_signs_nobody_in,
    passkey_failures_share_the_lock_with_passwords,
    a_passkey_used_meanwhile_or_deleted_signs_nobody_in,
    reauthentication_with_a_passkey_opens_the_window,
    adding_a_passkey_is_a_sensitive_action,
    passkeys_are_unavailable_on_an_ip_address_and_everything_else_works,
    passkeys_are_on_with_nothing_configured,
    with_second_factors_off_passkeys_are_off_too,
    json_requests_need_the_csrf_header,
    one_browser_cannot_use_up_its_address_and_an_address_keeps_only_so_many,
);

/// An app whose public URL (and `address`) is `http://localhost:PORT`, and an authenticator whose
/// browser is there.
pub(crate) async fn passkey_app(kind: DbKind) -> (TestApp, SoftAuthenticator) {
    passkey_app_on(TestDb::new(kind), |_| {}).await
}

/// [`passkey_app`] on a given database, with its settings changed by `tweak`.
async fn passkey_app_on(
    db: std::sync::Arc<TestDb>,
    tweak: impl FnOnce(&mut dashboard::config::Settings),
) -> (TestApp, SoftAuthenticator) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let origin = format!("http://localhost:{port}");
    let mut app = spawn_app_with(db, |s| {
        s.listen = format!("127.0.0.1:{port}").parse().unwrap();
        s.public_url = Some(origin.parse().unwrap());
        tweak(s);
    })
    .await;
    // Browsers (and the browser test) open it by its name.
    app.address = origin.clone();
    (app, SoftAuthenticator::new(&origin))
}

/// The CSRF token of a page (its `<meta name="csrf-token">`).
async fn csrf_of(b: &Browser, page: &str) -> String {
    let html = b.get(page).await.text().await.unwrap();
    let marker = "<meta name=\"csrf-token\" content=\"";
    let start = html.find(marker).expect("a csrf-token meta") + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

/// What the script does: a JSON POST with the page's token in `X-CSRF-Token`.
async fn post_json(b: &Browser, token: &str, path: &str, body: &Value) -> (u16, Value) {
    let res = b.client.post(b.url(path)).header("X-CSRF-Token", token).json(body).send().await.expect("POST");
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Starts a ceremony from `page`: its token and the server's answer.
async fn start(b: &Browser, page: &str, path: &str, body: Value) -> (String, Value) {
    let token = csrf_of(b, page).await;
    let (status, started) = post_json(b, &token, path, &body).await;
    assert_eq!(status, 200, "{path}: {started}");
    (token, started)
}

/// Adds a passkey named `name` for the signed-in browser: the finish answer.
async fn add_passkey(b: &Browser, auth: &mut SoftAuthenticator, name: &str) -> (u16, Value) {
    let (token, started) = start(b, "/", "/account/passkeys/register/start", json!({ "name": name })).await;
    let credential = auth.create(&started["options"]);
    let body = json!({ "ceremony": started["ceremony"], "credential": credential });
    post_json(b, &token, "/account/passkeys/register/finish", &body).await
}

/// A sign-in ceremony started on `/login`: its token, ceremony id and options.
async fn start_sign_in(b: &Browser) -> (String, Value, Value) {
    let (token, started) = start(b, "/login", "/login/passkey/start", json!({})).await;
    (token, started["ceremony"].clone(), started["options"].clone())
}

async fn finish_sign_in(b: &Browser, token: &str, ceremony: &Value, credential: &Value) -> (u16, Value) {
    let body = json!({ "ceremony": ceremony, "credential": credential, "next": "/account/sessions" });
    post_json(b, token, "/login/passkey/finish", &body).await
}

/// Signs in with the authenticator's passkey for this site, as `/login`'s button does.
async fn sign_in(b: &Browser, auth: &mut SoftAuthenticator) -> (u16, Value) {
    let (token, ceremony, options) = start_sign_in(b).await;
    let credential = auth.get(&options);
    finish_sign_in(b, &token, &ceremony, &credential).await
}

/// A user with one passkey on `auth` (added from a password sign-in that then signs out).
async fn user_with_passkey(app: &TestApp, auth: &mut SoftAuthenticator, name: &str) {
    app.create_user(name, Role::User).await;
    let b = app.browser();
    b.login(name, PASSWORD).await;
    let (status, answer) = add_passkey(&b, auth, &format!("{name}'s laptop")).await;
    assert_eq!(status, 200, "{answer}");
    b.logout().await;
}

async fn signed_in_as(b: &Browser) -> Option<String> {
    let res = b.get("/").await;
    if res.status() != 200 {
        return None;
    }
    let html = res.text().await.unwrap();
    let start = html.find("id=\"username\">")? + "id=\"username\">".len();
    Some(html[start..start + html[start..].find('<')?].to_owned())
}

async fn auth_methods(app: &TestApp) -> Vec<String> {
    app.with_db(|c| sessions::table.select(sessions::auth_method).load(c)).await
}

async fn failures_of(app: &TestApp, username: &str) -> i32 {
    let key = throttle::user_key(username);
    app.with_db(move |c| throttle::failures(c, &key)).await
}

/// Nothing signed in: the browser is sent to sign in, and no session row exists.
async fn assert_nobody_signed_in(app: &TestApp, b: &Browser) {
    assert_eq!(signed_in_as(b).await, None);
    assert_eq!(app.session_rows().await, 0);
}

async fn a_passkey_is_added_and_signs_in_alone(kind: DbKind) {
    let (app, mut auth) = passkey_app(kind).await;
    app.create_user("ada", Role::User).await;
    let me = app.me();
    me.login("ada", PASSWORD).await;
    let (status, answer) = add_passkey(&me, &mut auth, "  Laptop  ").await;
    assert_eq!((status, &answer["redirect"]), (200, &json!("/account/security?done=passkey-added")));
    let rows: Vec<(String, Option<i64>)> =
        app.with_db(|c| passkeys::table.select((passkeys::name, passkeys::last_used_at)).load(c)).await;
    assert_eq!(rows, [("Laptop".to_owned(), None)], "the name is trimmed");
    assert_eq!(details_of(&app, "second_factor_added").await, ["passkey “Laptop”"]);
    me.logout().await;
    assert_eq!(app.session_rows().await, 0);

    // Another browser, no username, no password: the passkey alone.
    let other = app.browser();
    let (status, answer) = sign_in(&other, &mut auth).await;
    assert_eq!((status, &answer["redirect"]), (200, &json!("/account/sessions")), "{answer}");
    assert_eq!(signed_in_as(&other).await.as_deref(), Some("ada"));
    assert_eq!(auth_methods(&app).await, ["passkey"]);
    let used: Vec<Option<i64>> = app.with_db(|c| passkeys::table.select(passkeys::last_used_at).load(c)).await;
    assert!(used[0].is_some(), "last used is recorded");
    assert_eq!(details_of(&app, "sign_in").await.last().map(String::as_str), Some("with passkey"));
    assert_eq!(app.with_db(|c| webauthn_ceremonies::table.count().get_result::<i64>(c)).await, 0, "used up");

    // A second passkey on another authenticator; both sign in, a `next` elsewhere is not followed.
    let mut phone = SoftAuthenticator::new(&auth.origin);
    assert_eq!(add_passkey(&other, &mut phone, "Phone").await.0, 200);
    let third = app.browser();
    let (token, ceremony, options) = start_sign_in(&third).await;
    let credential = phone.get(&options);
    let body = json!({ "ceremony": ceremony, "credential": credential, "next": "//evil.example/" });
    let (status, answer) = post_json(&third, &token, "/login/passkey/finish", &body).await;
    assert_eq!((status, &answer["redirect"]), (200, &json!("/")));
    assert_eq!(signed_in_as(&third).await.as_deref(), Some("ada"));
}

/// The second step's ceremony, started on `/login/mfa` by the browser whose password passed.
async fn second_step(b: &Browser, auth: &mut SoftAuthenticator, index: Option<usize>) -> (u16, Value) {
    let (token, started) = start(b, "/login/mfa", "/login/mfa/passkey/start", json!({})).await;
    let credential = match index {
        Some(i) => auth.assert_with(i, &started["options"]),
        None => auth.get(&started["options"]),
    };
    let body = json!({ "ceremony": started["ceremony"], "credential": credential });
    post_json(b, &token, "/login/mfa/passkey/finish", &body).await
}

async fn a_passkey_is_the_second_step_after_a_password(kind: DbKind) {
    let (app, mut auth) = passkey_app(kind).await;
    user_with_passkey(&app, &mut auth, "ada").await;
    user_with_passkey(&app, &mut auth, "bob").await;
    let b = app.browser();
    let res = b
        .submit(
            "/login?next=%2Faccount%2Fsessions",
            "/login",
            &[("username", "ada"), ("password", PASSWORD), ("next", "/account/sessions")],
        )
        .await;
    assert_eq!(location(&res), "/login/mfa");
    assert_eq!(app.session_rows().await, 0, "no session before the second step");
    assert!(b.get("/login/mfa").await.text().await.unwrap().contains("id=\"passkey-verify\""));

    // Refused: a bogus signature; Bob's passkey; a ceremony of the passkey-alone sign-in.
    let (token, started) = start(&b, "/login/mfa", "/login/mfa/passkey/start", json!({})).await;
    let mut credential = auth.get(&started["options"]);
    tamper(&mut credential, "signature");
    let body = json!({ "ceremony": started["ceremony"], "credential": credential });
    assert_eq!(post_json(&b, &token, "/login/mfa/passkey/finish", &body).await.0, 401);
    assert_eq!(second_step(&b, &mut auth, Some(1)).await.0, 401);
    let (token, ceremony, options) = start_sign_in(&b).await;
    let body = json!({ "ceremony": ceremony, "credential": auth.get(&options) });
    assert_eq!(post_json(&b, &token, "/login/mfa/passkey/finish", &body).await.0, 401);
    assert_nobody_signed_in(&app, &b).await;
    let failed = details_of(&app, "second_factor_failed").await;
    assert!(failed[0].starts_with("passkey: verification failed"), "{failed:?}");
    assert_eq!(
        &failed[1..],
        ["passkey: a credential of another user", "passkey: the request expired or was already used"]
    );
    assert_eq!(failures_of(&app, "ada").await, 3, "each counts on her lock");
    // Another browser has no pending sign-in to finish.
    let stranger = app.browser();
    let token = csrf_of(&stranger, "/login").await;
    let (status, answer) = post_json(&stranger, &token, "/login/mfa/passkey/start", &json!({})).await;
    assert_eq!((status, &answer["redirect"]), (401, &json!("/login")));

    // Her own passkey: signed in, where she was going.
    let (status, answer) = second_step(&b, &mut auth, None).await;
    assert_eq!((status, &answer["redirect"]), (200, &json!("/account/sessions")), "{answer}");
    assert_eq!(signed_in_as(&b).await.as_deref(), Some("ada"));
    assert_eq!(auth_methods(&app).await, ["passkey"]);
    assert_eq!(failures_of(&app, "ada").await, 0);
    assert_eq!(b.get("/login/mfa").await.status(), 303, "the pending sign-in is used up");
}

async fn names_are_required_trimmed_bounded_and_unique_per_user(kind: DbKind) {
    let (app, mut auth) = passkey_app(kind).await;
    app.create_user("ada", Role::User).await;
    let me = app.me();
    me.login("ada", PASSWORD).await;
    let token = csrf_of(&me, "/").await;
    for (name, why) in [("   ", "Give the passkey a name"), (&"x".repeat(65), "at most 64"), ("a\u{1}b", "control")] {
        let (status, answer) =
            post_json(&me, &token, "/account/passkeys/register/start", &json!({ "name": name })).await;
        assert_eq!(status, 400, "{name:?}");
        assert!(answer["error"].as_str().unwrap().contains(why), "{answer}");
    }
    assert_eq!(add_passkey(&me, &mut auth, "Laptop").await.0, 200);
    // Names are the user's words: escaped wherever a page shows them.
    let hostile = "<script>alert(1)</script>";
    assert_eq!(add_passkey(&me, &mut SoftAuthenticator::new(&auth.origin), hostile).await.0, 200);
    let page = me.get("/account/security").await.text().await.unwrap();
    let shown = page.find("alert(1)").map(|i| &page[i.saturating_sub(30)..i + 30]).unwrap_or("");
    assert!(shown.contains("&#60;script&#62;alert(1)") && !page.contains("<script>alert"), "{shown}");
    let (status, answer) =
        post_json(&me, &token, "/account/passkeys/register/start", &json!({ "name": " Laptop" })).await;
    assert_eq!(status, 400);
    assert!(answer["error"].as_str().unwrap().contains("already have a passkey named “Laptop”"), "{answer}");
    // The same name for another user is fine.
    app.create_user("bob", Role::User).await;
    let bob = app.browser();
    bob.login("bob", PASSWORD).await;
    assert_eq!(add_passkey(&bob, &mut SoftAuthenticator::new(&auth.origin), "Laptop").await.0, 200);
    assert_eq!(app.with_db(|c| passkeys::table.count().get_result::<i64>(c)).await, 3);
}

async fn a_bogus_signature_signs_nobody_in(kind: DbKind) {
    let (app, mut auth) = passkey_app(kind).await;
    user_with_passkey(&app, &mut auth, "ada").await;
    let b = app.browser();
    let (token, ceremony, options) = start_sign_in(&b).await;
    let mut credential = auth.get(&options);
    tamper(&mut credential, "signature");
    let (status, answer) = finish_sign_in(&b, &token, &ceremony, &credential).await;
    assert_eq!(status, 401);
    assert!(answer["error"].as_str().unwrap().contains("not accepted"), "{answer}");
    assert_nobody_signed_in(&app, &b).await;
    let failed = details_of(&app, "sign_in_failed").await;
    assert!(failed[0].starts_with("passkey: verification failed"), "{failed:?}");
    assert_eq!(failures_of(&app, "ada").await, 1, "it counts against the passkey's user");
    // Tampered authenticator data is refused too.
    let (token, ceremony, options) = start_sign_in(&b).await;
    let mut credential = auth.get(&options);
    tamper(&mut credential, "authenticatorData");
    assert_eq!(finish_sign_in(&b, &token, &ceremony, &credential).await.0, 401);
    assert_nobody_signed_in(&app, &b).await;
}

async fn a_credential_of_another_user_signs_nobody_in(kind: DbKind) {
    let (app, mut auth) = passkey_app(kind).await;
    user_with_passkey(&app, &mut auth, "ada").await;
    user_with_passkey(&app, &mut auth, "bob").await;
    // Bob's passkey, signing as if it were Ada's (her user handle).
    let ada_handle = auth.credentials[0].user_handle.clone();
    auth.credentials[1].user_handle = ada_handle;
    let b = app.browser();
    let (token, ceremony, options) = start_sign_in(&b).await;
    let credential = auth.assert_with(1, &options);
    assert_eq!(finish_sign_in(&b, &token, &ceremony, &credential).await.0, 401);
    assert_nobody_signed_in(&app, &b).await;
    assert_eq!(details_of(&app, "sign_in_failed").await, ["passkey: a credential of another user"]);

    // Re-authenticating as Ada with Bob's passkey: not one of hers.
    let ada = app.browser();
    assert_eq!(sign_in(&ada, &mut auth).await.0, 200, "with her own passkey");
    let (token, started) = start(&ada, "/reauth?next=%2F", "/reauth/passkey/start", json!({})).await;
    let credential = auth.assert_with(1, &started["options"]);
    let body = json!({ "ceremony": started["ceremony"], "credential": credential, "next": "/" });
    let (status, _) = post_json(&ada, &token, "/reauth/passkey/finish", &body).await;
    assert_eq!(status, 401);
    assert_eq!(details_of(&app, "reauth_failed").await, ["passkey: a credential of another user"]);
    assert_eq!(details_of(&app, "reauthenticated").await, Vec::<String>::new());
}

async fn a_replayed_assertion_signs_nobody_in(kind: DbKind) {
    let (app, mut auth) = passkey_app(kind).await;
    user_with_passkey(&app, &mut auth, "ada").await;
    let victim = app.browser();
    let (token, ceremony, options) = start_sign_in(&victim).await;
    let credential = auth.get(&options);
    assert_eq!(finish_sign_in(&victim, &token, &ceremony, &credential).await.0, 200);
    victim.logout().await;
    assert_eq!(app.session_rows().await, 0);

    // The same answer again, to the same (spent) challenge: refused.
    let (status, answer) = finish_sign_in(&victim, &token, &ceremony, &credential).await;
    assert_eq!(status, 401);
    assert!(answer["error"].as_str().unwrap().contains("expired or was already used"), "{answer}");
    assert_nobody_signed_in(&app, &victim).await;
    // …and to a fresh challenge: it was signed for the old one.
    let (token, fresh, _) = start_sign_in(&victim).await;
    assert_eq!(finish_sign_in(&victim, &token, &fresh, &credential).await.0, 401);
    assert_nobody_signed_in(&app, &victim).await;
    let failed = details_of(&app, "sign_in_failed").await;
    assert_eq!(failed[0], "passkey: the request expired or was already used");
    assert!(failed[1].starts_with("passkey: verification failed"), "{failed:?}");
}

async fn two_answers_to_one_challenge_sign_in_once(kind: DbKind) {
    let (app, mut auth) = passkey_app(kind).await;
    user_with_passkey(&app, &mut auth, "ada").await;
    let b = app.browser();
    let (token, ceremony, options) = start_sign_in(&b).await;
    let credential = auth.get(&options);
    // Both at once: the ceremony row is taken by one conditional DELETE, whatever the order.
    let (first, second) = tokio::join!(
        finish_sign_in(&b, &token, &ceremony, &credential),
        finish_sign_in(&b, &token, &ceremony, &credential)
    );
    let mut statuses = [first.0, second.0];
    statuses.sort();
    assert_eq!(statuses, [200, 401]);
    assert_eq!(app.session_rows().await, 1);
}

async fn an_assertion_for_another_origin_signs_nobody_in(kind: DbKind) {
    let (app, mut auth) = passkey_app(kind).await;
    user_with_passkey(&app, &mut auth, "ada").await;
    // A phishing page elsewhere relays our challenge; the browser signs its own origin in.
    auth.origin = "http://localhost.evil.example".into();
    let b = app.browser();
    let (status, _) = sign_in(&b, &mut auth).await;
    assert_eq!(status, 401);
    assert_nobody_signed_in(&app, &b).await;
    let failed = details_of(&app, "sign_in_failed").await;
    assert!(failed[0].starts_with("passkey: verification failed"), "{failed:?}");
    // Registration from another origin is refused as well.
    auth.origin = "http://localhost:1".into();
    app.create_user("bob", Role::User).await;
    let bob = app.browser();
    bob.login("bob", PASSWORD).await;
    let (status, answer) = add_passkey(&bob, &mut auth, "Laptop").await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(app.with_db(|c| passkeys::table.count().get_result::<i64>(c)).await, 1);
}

async fn an_expired_challenge_signs_nobody_in(kind: DbKind) {
    let (app, mut auth) = passkey_app(kind).await;
    user_with_passkey(&app, &mut auth, "ada").await;
    let b = app.browser();
    let (token, ceremony, options) = start_sign_in(&b).await;
    let credential = auth.get(&options);
    app.clock.advance(Duration::from_secs(5 * 60 + 1));
    let (status, answer) = finish_sign_in(&b, &token, &ceremony, &credential).await;
    assert_eq!(status, 401);
    assert!(answer["error"].as_str().unwrap().contains("expired"), "{answer}");
    assert_nobody_signed_in(&app, &b).await;
    // Expired ceremonies are cleared away when the next one starts.
    start_sign_in(&b).await;
    assert_eq!(app.with_db(|c| webauthn_ceremonies::table.count().get_result::<i64>(c)).await, 1);
}

async fn another_browsers_challenge_cannot_be_answered(kind: DbKind) {
    let (app, mut auth) = passkey_app(kind).await;
    user_with_passkey(&app, &mut auth, "ada").await;
    let (victim, attacker) = (app.browser(), app.browser());
    let (_, ceremony, options) = start_sign_in(&victim).await;
    let credential = auth.get(&options);
    let attacker_token = csrf_of(&attacker, "/login").await;
    assert_eq!(finish_sign_in(&attacker, &attacker_token, &ceremony, &credential).await.0, 401);
    assert_nobody_signed_in(&app, &attacker).await;
    assert_eq!(
        app.with_db(|c| webauthn_ceremonies::table.count().get_result::<i64>(c)).await,
        1,
        "the other browser's ceremony is left alone"
    );
}

async fn a_disabled_users_passkey_signs_nobody_in(kind: DbKind) {
    let (app, mut auth) = passkey_app(kind).await;
    user_with_passkey(&app, &mut auth, "ada").await;
    dashboard::db::run(&app.pool, |c| Ok(dashboard::accounts::disable(c, "ada", dashboard::accounts::Actor::Cli)?))
        .await
        .unwrap();
    let b = app.browser();
    assert_eq!(sign_in(&b, &mut auth).await.0, 401);
    assert_nobody_signed_in(&app, &b).await;
    assert_eq!(details_of(&app, "sign_in_failed").await, ["passkey: the account is disabled"]);
}

async fn passkey_failures_share_the_lock_with_passwords(kind: DbKind) {
    let (app, mut auth) = passkey_app(kind).await;
    user_with_passkey(&app, &mut auth, "ada").await;
    let b = app.browser();
    // 4 wrong passwords, then a bogus passkey: the fifth failure locks the username.
    for _ in 0..4 {
        assert_eq!(b.login("ada", "not the password at all").await.status(), 401);
    }
    let (token, ceremony, options) = start_sign_in(&b).await;
    let mut credential = auth.get(&options);
    tamper(&mut credential, "signature");
    assert_eq!(finish_sign_in(&b, &token, &ceremony, &credential).await.0, 401);
    assert_eq!(details_of(&app, "locked_out").await, ["username, for 15 minutes"]);
    // Now even the right passkey is refused, before anything is checked; and the password too.
    let (status, answer) = sign_in(&b, &mut auth).await;
    assert_eq!(status, 429, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("Too many failed sign-ins"), "{answer}");
    assert_eq!(b.login("ada", PASSWORD).await.status(), 429);
    assert_nobody_signed_in(&app, &b).await;
    // Once the lock has passed, the passkey signs in and resets the count.
    app.clock.advance(Duration::from_secs(15 * 60 + 1));
    assert_eq!(sign_in(&b, &mut auth).await.0, 200);
    assert_eq!(failures_of(&app, "ada").await, 0);
}

async fn a_passkey_used_meanwhile_or_deleted_signs_nobody_in(kind: DbKind) {
    let (app, mut auth) = passkey_app(kind).await;
    user_with_passkey(&app, &mut auth, "ada").await;
    let (row, user) = app
        .with_db(|c| {
            let row = passkeys::table.select(dashboard::db::passkeys::PasskeyRow::as_select()).first(c)?;
            let user = dashboard::db::users::find_by_username(c, "ada")?.unwrap();
            Ok((row, user))
        })
        .await;
    // What the sign-in handler hands the service after checking a signature against a credential
    // that is no longer the stored one (a parallel sign-in moved its counter on, or it was deleted).
    let attempt = |verified: String| {
        let token = dashboard::session::NewToken::new("{}".into());
        let sign_in = dashboard::accounts::PasskeySignIn {
            user_id: user.id.clone(),
            passkey_id: row.id.clone(),
            verified_credential: verified,
            updated_credential: row.credential.clone(),
            throttle_key: throttle::user_key("ada"),
            address_key: throttle::ip_key("127.0.0.1"),
        };
        let session = dashboard::accounts::NewSession {
            token: token.row.clone(),
            ip: "127.0.0.1".into(),
            user_agent: String::new(),
            cloud: None,
            timeouts: dashboard::session::Timeouts { idle: Duration::from_secs(60), absolute: None, max_per_user: 100 },
            now: app.clock.now_ms(),
            auth_method: dashboard::accounts::AuthMethod::Passkey,
            dbsc_challenge: None,
        };
        (sign_in, session)
    };
    let stale = attempt(format!("{} ", row.credential));
    let outcome =
        app.with_db(move |c| Ok(dashboard::accounts::sign_in_with_passkey(c, &stale.0, &stale.1).map(|_| ()))).await;
    assert!(matches!(outcome, Err(dashboard::accounts::AccountError::Changed)), "a changed passkey: {outcome:?}");
    assert_eq!(app.session_rows().await, 0);
    let id = row.id.clone();
    app.with_db(move |c| diesel::delete(passkeys::table.find(id)).execute(c)).await;
    let current = attempt(row.credential.clone());
    let outcome = app
        .with_db(move |c| Ok(dashboard::accounts::sign_in_with_passkey(c, &current.0, &current.1).map(|_| ())))
        .await;
    assert!(
        matches!(outcome, Err(dashboard::accounts::AccountError::Changed)),
        "a deleted passkey signs nobody in: {outcome:?}"
    );
    assert_eq!(app.session_rows().await, 0);
    // Over HTTP, a deleted passkey is an unknown credential.
    let b = app.browser();
    assert_eq!(sign_in(&b, &mut auth).await.0, 401);
    assert_eq!(details_of(&app, "sign_in_failed").await, ["passkey: an unknown credential"]);
}

async fn reauthentication_with_a_passkey_opens_the_window(kind: DbKind) {
    let (app, mut auth) = passkey_app(kind).await;
    user_with_passkey(&app, &mut auth, "ada").await;
    let me = app.me();
    assert_eq!(sign_in(&me, &mut auth).await.0, 200);
    app.clock.advance(Duration::from_secs(16 * 60));
    let page = "/reauth?next=%2Faccount%2Fsessions";
    assert!(me.get(page).await.text().await.unwrap().contains("id=\"passkey-verify\""));

    // A bogus signature first: refused, counted, recorded.
    let (token, started) = start(&me, page, "/reauth/passkey/start", json!({})).await;
    let mut credential = auth.get(&started["options"]);
    tamper(&mut credential, "signature");
    let body = json!({ "ceremony": started["ceremony"], "credential": credential, "next": "/account/sessions" });
    assert_eq!(post_json(&me, &token, "/reauth/passkey/finish", &body).await.0, 401);
    assert_eq!(failures_of(&app, "ada").await, 1);

    let (token, started) = start(&me, page, "/reauth/passkey/start", json!({})).await;
    let credential = auth.get(&started["options"]);
    let body = json!({ "ceremony": started["ceremony"], "credential": credential, "next": "/account/sessions" });
    let (status, answer) = post_json(&me, &token, "/reauth/passkey/finish", &body).await;
    assert_eq!((status, &answer["redirect"]), (200, &json!("/account/sessions")), "{answer}");
    assert_eq!(details_of(&app, "reauthenticated").await, ["with passkey"]);
    let reauth = details_of(&app, "reauth_failed").await;
    assert!(reauth[0].starts_with("passkey: verification failed"), "{reauth:?}");
    // The window is open: a sensitive action goes through.
    let res = me.submit("/account/sessions", "/account/sessions/revoke-others", &[]).await;
    assert!(location(&res).starts_with("/account/sessions?done="), "{}", location(&res));
    // A replay of that answer confirms nothing.
    assert_eq!(post_json(&me, &token, "/reauth/passkey/finish", &body).await.0, 401);
}

async fn adding_a_passkey_is_a_sensitive_action(kind: DbKind) {
    let (app, mut auth) = passkey_app(kind).await;
    app.create_user("ada", Role::User).await;
    let me = app.me();
    me.login("ada", PASSWORD).await;
    app.clock.advance(Duration::from_secs(16 * 60));
    let token = csrf_of(&me, "/").await;
    let res = me
        .client
        .post(me.url("/account/passkeys/register/start"))
        .header("X-CSRF-Token", &token)
        .json(&json!({ "name": "Laptop" }))
        .send()
        .await
        .unwrap();
    // The script follows this by going there.
    assert_eq!((res.status().as_u16(), location(&res)), (303, "/reauth?next=%2Faccount%2Fsecurity".to_owned()));
    me.submit("/reauth?next=%2F", "/reauth", &[("password", PASSWORD), ("next", "/")]).await;
    assert_eq!(add_passkey(&me, &mut auth, "Laptop").await.0, 200);
}

async fn passkeys_are_on_with_nothing_configured(kind: DbKind) {
    // The default public URL of a loopback listener is http://localhost:PORT, a secure context.
    let app = spawn_app(kind).await;
    let me = app.me();
    let page = me.get("/login").await.text().await.unwrap();
    assert!(!page.contains("data-unavailable"), "the passkey button is offered");
    let token = csrf_of(&me, "/login").await;
    let (status, answer) = post_json(&me, &token, "/login/passkey/start", &json!({})).await;
    assert_eq!(status, 200, "{answer}");
}

async fn passkeys_are_unavailable_on_an_ip_address_and_everything_else_works(kind: DbKind) {
    // Served at an IP address (a deployment that set one as its public URL): browsers refuse it.
    let app =
        spawn_app_with(TestDb::new(kind), |s| s.public_url = Some("http://192.0.2.10:8080".parse().unwrap())).await;
    app.create_user("ada", Role::User).await;
    let me = app.me();
    let page = me.get("/login").await.text().await.unwrap();
    assert!(page.contains("data-unavailable hidden>Sign in with a passkey"), "no dead button shown");
    let token = csrf_of(&me, "/login").await;
    let (status, answer) = post_json(&me, &token, "/login/passkey/start", &json!({})).await;
    assert_eq!(status, 404);
    assert!(answer["error"].as_str().unwrap().contains("IP address"), "{answer}");
    assert_eq!(me.login("ada", PASSWORD).await.status(), 303, "passwords work as ever");
    let token = csrf_of(&me, "/").await;
    let (status, _) = post_json(&me, &token, "/account/passkeys/register/start", &json!({ "name": "x" })).await;
    assert_eq!(status, 404);
    let page = me.get("/account/security").await.text().await.unwrap();
    assert!(page.contains("id=\"passkeys-off\"") && page.contains("IP address"), "the page says why");
    assert!(page.contains("<button id=\"add-passkey\" type=\"button\" disabled>"));
}

async fn with_second_factors_off_passkeys_are_off_too(kind: DbKind) {
    let (app, mut auth) = passkey_app(kind).await;
    user_with_passkey(&app, &mut auth, "ada").await;
    app.stop().await;
    let db = app.db.clone();
    drop(app);
    let (app, _) = passkey_app_on(db, |s| s.sign_in.mfa = dashboard::config::MfaPolicy::Off).await;
    let me = app.me();
    let page = me.get("/login").await.text().await.unwrap();
    assert!(page.contains("data-unavailable hidden>Sign in with a passkey"), "no passkey button shown");
    let token = csrf_of(&me, "/login").await;
    assert_eq!(post_json(&me, &token, "/login/passkey/start", &json!({})).await.0, 404);
    // The password alone signs in (the stored passkey is kept, unused) and cannot confirm who you are.
    assert_eq!(location(&me.login("ada", PASSWORD).await), "/");
    let token = csrf_of(&me, "/").await;
    let (status, answer) = post_json(&me, &token, "/reauth/passkey/start", &json!({})).await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(app.with_db(|c| passkeys::table.count().get_result::<i64>(c)).await, 1);
}

async fn json_requests_need_the_csrf_header(kind: DbKind) {
    let (app, _) = passkey_app(kind).await;
    let me = app.me();
    me.get("/login").await; // the visitor's cookie
    for token in ["", "forged"] {
        let (status, _) = post_json(&me, token, "/login/passkey/start", &json!({})).await;
        assert_eq!(status, 403, "{token:?}");
    }
    // The token in the body does not count: JSON carries it in the header.
    let token = csrf_of(&me, "/login").await;
    let res =
        me.client.post(me.url("/login/passkey/start")).json(&json!({ "csrf_token": token })).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(app.with_db(|c| webauthn_ceremonies::table.count().get_result::<i64>(c)).await, 0);
}

async fn one_browser_cannot_use_up_its_address_and_an_address_keeps_only_so_many(kind: DbKind) {
    let (app, _) = passkey_app(kind).await;
    let waiting = || app.with_db(|c| webauthn_ceremonies::table.count().get_result::<i64>(c));
    let me = app.me();
    let token = csrf_of(&me, "/login").await;
    let (_, first) = post_json(&me, &token, "/login/passkey/start", &json!({})).await;
    for _ in 0..40 {
        assert_eq!(post_json(&me, &token, "/login/passkey/start", &json!({})).await.0, 200);
    }
    let per_browser = dashboard::auth::ceremonies::WAITING.per_browser;
    assert_eq!(waiting().await, per_browser, "a browser keeps only its newest few");
    // Its oldest were dropped to make room.
    let ids: Vec<String> = app.with_db(|c| webauthn_ceremonies::table.select(webauthn_ceremonies::id).load(c)).await;
    assert!(!ids.contains(&first["ceremony"].as_str().unwrap().to_owned()), "the first is gone");
    // Another browser at the same address is not held up by it.
    let other = app.browser();
    let other_token = csrf_of(&other, "/login").await;
    assert_eq!(post_json(&other, &other_token, "/login/passkey/start", &json!({})).await.0, 200);

    // Many browsers at one address: a bound on the table, refused beyond.
    let per_address = dashboard::auth::ceremonies::WAITING.per_address;
    while waiting().await < per_address {
        let b = app.browser();
        let t = csrf_of(&b, "/login").await;
        assert_eq!(post_json(&b, &t, "/login/passkey/start", &json!({})).await.0, 200);
    }
    let late = app.browser();
    let late_token = csrf_of(&late, "/login").await;
    let (status, answer) = post_json(&late, &late_token, "/login/passkey/start", &json!({})).await;
    assert_eq!(status, 429, "{answer}");
    // They expire, and room is made again.
    app.clock.advance(Duration::from_secs(5 * 60 + 1));
    assert_eq!(post_json(&late, &late_token, "/login/passkey/start", &json!({})).await.0, 200);
}
