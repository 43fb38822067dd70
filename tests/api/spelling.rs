//! One path, one meaning, generated from the route table: every route of `dashboard::routes::ROUTES`,
//! spelt several ways (a letter percent-encoded, `%2F` for a slash, a doubled slash, a trailing
//! slash, a `;` segment, upper case), answers for each kind of client exactly what its plain
//! spelling answers — or `400`/`404`, or what a path of no route answers that client — and changes
//! nothing in the database. A route added to the table is covered without anyone remembering.
//!
//! The requests are ones the plain path refuses (no CSRF token, no session, past the
//! re-authentication window, held by the second-factor policy, second factors off), so a spelling
//! that slipped past a check would show as another answer or as a change in the database.

use std::time::Duration;

use dashboard::config::MfaPolicy;
use dashboard::db::schema::{
    auth_events, login_throttle, passkeys, pending_sign_ins, recovery_codes, sessions, users, webauthn_ceremonies,
};
use dashboard::db::users::Role;
use dashboard::routes::{Access, Route, Sensitive, ROUTES};
use diesel::prelude::*;
use reqwest::Method;

use crate::both_databases;
use crate::helpers::*;
use crate::routes::sample_path;

both_databases!(
    every_spelling_of_every_route_gets_the_plain_answer_or_nothing_and_changes_nothing,
    with_second_factors_off_no_spelling_reaches_a_factor_route,
);

const WINDOW: Duration = Duration::from_secs(15 * 60);

/// The spellings of a concrete path that must not mean anything else.
fn spellings(path: &str) -> Vec<String> {
    let letters: Vec<usize> = path.char_indices().filter(|(_, c)| c.is_ascii_alphabetic()).map(|(i, _)| i).collect();
    let encode = |at: usize, upper: bool| {
        let byte = path.as_bytes()[at];
        let escape = if upper { format!("%{byte:02X}") } else { format!("%{byte:02x}") };
        format!("{}{escape}{}", &path[..at], &path[at + 1..])
    };
    let mut out = Vec::new();
    if let (Some(&first), Some(&last)) = (letters.first(), letters.last()) {
        out.push(encode(first, true));
        out.push(encode(last, true));
        out.push(encode(first, false));
    }
    if let Some(slash) = path.rfind('/').filter(|&i| i > 0) {
        out.push(format!("{}%2F{}", &path[..slash], &path[slash + 1..]));
        out.push(format!("{}//{}", &path[..slash], &path[slash + 1..]));
    }
    out.push(format!("/{path}"));
    if path != "/" {
        out.push(format!("{path}/"));
        out.push(format!("{path};x"));
    }
    if let Some(end) = path[1..].find('/').map(|i| i + 1) {
        out.push(format!("{};x{}", &path[..end], &path[end..]));
    }
    out.push(path.to_uppercase());
    out.retain(|s| s != path);
    out
}

/// The methods a route is tried with.
fn methods(route: &Route) -> Vec<Method> {
    match route.method {
        "*" => vec![Method::GET, Method::POST],
        m => vec![Method::from_bytes(m.as_bytes()).unwrap()],
    }
}

fn is_unsafe(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD)
}

/// What a client may send: with a session or not, and the CSRF token in the form (or none).
struct Client<'a> {
    name: &'static str,
    browser: &'a Browser,
    csrf: Option<String>,
}

/// What an answer is made of, for comparing: the status, where a redirect leads (its path: `next`
/// carries the spelling), and the Content-Security-Policy (the Cloud proxy's sandbox).
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    location: String,
    csp: String,
}

async fn ask(client: &Client<'_>, method: &Method, path: &str) -> Answer {
    let b = client.browser;
    let mut request = b.client.request(method.clone(), b.url(path));
    if is_unsafe(method) {
        let mut form = vec![("username", "root"), ("password", PASSWORD), ("role", "admin"), ("code", "123456")];
        if let Some(token) = &client.csrf {
            form.push(("csrf_token", token));
        }
        request = request.form(&form);
    }
    let res = request.send().await.unwrap_or_else(|e| panic!("{} {method} {path}: {e}", client.name));
    let header = |name| res.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let location = header("location");
    Answer {
        status: res.status().as_u16(),
        location: location.split('?').next().unwrap_or("").to_owned(),
        csp: header("content-security-policy"),
    }
}

/// A user's name, password hash, role, disabled flag, app secret, last app step and factor epoch.
type UserState = (String, String, String, i32, Option<String>, Option<i64>, i32);

/// What the database holds that a request could change (not the coalesced last-seen times).
async fn fingerprint(app: &TestApp) -> String {
    app.with_db(|c| {
        let users: Vec<UserState> = users::table
            .order(users::id)
            .select((
                users::username,
                users::password_hash,
                users::role,
                users::disabled,
                users::totp_secret,
                users::totp_last_step,
                users::factor_epoch,
            ))
            .load(c)?;
        let sessions: Vec<(String, String, String, i64, String)> = sessions::table
            .order(sessions::id)
            .select((
                sessions::id,
                sessions::token_hash,
                sessions::user_id,
                sessions::authenticated_at,
                sessions::authenticated_with,
            ))
            .load(c)?;
        let codes: Vec<(String, Option<i64>)> = recovery_codes::table
            .order(recovery_codes::id)
            .select((recovery_codes::id, recovery_codes::used_at))
            .load(c)?;
        let throttle: Vec<(String, i32, i64)> = login_throttle::table
            .order(login_throttle::key)
            .select((login_throttle::key, login_throttle::failures, login_throttle::locked_until))
            .load(c)?;
        let counts = (
            passkeys::table.count().get_result::<i64>(c)?,
            pending_sign_ins::table.count().get_result::<i64>(c)?,
            webauthn_ceremonies::table.count().get_result::<i64>(c)?,
            auth_events::table.count().get_result::<i64>(c)?,
        );
        Ok(format!("{users:?}\n{sessions:?}\n{codes:?}\n{throttle:?}\n{counts:?}"))
    })
    .await
}

/// Sends every spelling of every route `which` picks with `methods`, as `client`, and checks each
/// answer against the plain path's; the database must be as it was. Returns how many were checked.
async fn check(app: &TestApp, client: &Client<'_>, which: impl Fn(&Route, &Method) -> bool) -> usize {
    let before = fingerprint(app).await;
    let mut checked = 0;
    for route in ROUTES {
        let path = sample_path(route.path);
        for method in methods(route).into_iter().filter(|m| which(route, m)) {
            let plain = ask(client, &method, &path).await;
            let nothing = ask(client, &method, "/no-route-has-this-path").await;
            for spelt in spellings(&path) {
                let answer = ask(client, &method, &spelt).await;
                let refused = matches!(answer.status, 400 | 404)
                    || (answer.status == nothing.status && answer.location == nothing.location);
                assert!(
                    answer == plain || refused,
                    "{}: {method} {spelt} answered {answer:?}; {path} answers {plain:?}, no route {nothing:?}",
                    client.name
                );
                checked += 1;
            }
        }
    }
    let after = fingerprint(app).await;
    assert_eq!(after, before, "{}: a spelling changed the database", client.name);
    checked
}

async fn csrf_of(b: &Browser, page: &str) -> String {
    csrf_from(&b.get(page).await.text().await.unwrap())
}

async fn every_spelling_of_every_route_gets_the_plain_answer_or_nothing_and_changes_nothing(kind: DbKind) {
    // Admins must have a second factor: one has the app, the other is held by the policy.
    let app = spawn_app_with(TestDb::new(kind), |s| s.sign_in.mfa = MfaPolicy::RequiredForAdmins).await;
    app.create_user("root", Role::Admin).await;
    app.create_user("held", Role::Admin).await;
    app.create_user("alice", Role::User).await;
    let (visitor, user, admin, held) = (app.browser(), app.browser(), app.browser(), app.browser());
    user.login("alice", PASSWORD).await;
    admin.login("root", PASSWORD).await;
    held.login("held", PASSWORD).await;
    app.with_db(|c| {
        diesel::update(users::table.filter(users::username.eq("root")))
            .set(users::totp_secret.eq("sealed"))
            .execute(c)?;
        let root: String = users::table.filter(users::username.eq("root")).select(users::id).first(c)?;
        diesel::update(sessions::table.filter(sessions::user_id.eq(root)))
            .set(sessions::authenticated_with.eq("totp"))
            .execute(c)
    })
    .await;
    assert_eq!(location(&held.get("/").await), "/account/security", "held by the policy");
    assert_eq!(admin.get("/admin/users").await.status(), 200, "not held");

    let every = |_: &Route, _: &Method| true;
    let mut checked = 0;
    // No session: the protected routes send to the sign-in page, the public ones refuse unsafe
    // requests without a token.
    checked += check(&app, &Client { name: "visitor", browser: &visitor, csrf: None }, every).await;
    // Signed in, without a CSRF token: every unsafe request is refused, every page is read.
    checked += check(&app, &Client { name: "user", browser: &user, csrf: None }, every).await;
    checked += check(&app, &Client { name: "admin", browser: &admin, csrf: None }, every).await;
    // Held by the policy, with a valid token: every route it may not reach sends to the security
    // page (the ones it may reach are only read).
    let token = csrf_of(&held, "/account/security").await;
    let may_not_reach =
        |r: &Route, m: &Method| !is_unsafe(m) || !(r.factor || r.without_factor || r.access == Access::Public);
    checked += check(&app, &Client { name: "held", browser: &held, csrf: Some(token) }, may_not_reach).await;
    // Past the re-authentication window, with a valid token in the form: every sensitive action
    // sends to /reauth, and the Cloud proxy takes its token only from the header.
    app.clock.advance(WINDOW);
    let token = csrf_of(&user, "/").await;
    // (For a user without a second factor the password change's own current password is the
    // authentication, so its handler runs: it is tried on the admin, who has one.)
    let sensitive_or_cloud =
        |r: &Route, m: &Method| is_unsafe(m) && (matches!(r.sensitive, Sensitive::Reauth(_)) || r.cloud);
    checked +=
        check(&app, &Client { name: "user past the window", browser: &user, csrf: Some(token) }, sensitive_or_cloud)
            .await;
    let token = csrf_of(&admin, "/").await;
    let any_sensitive_or_cloud = |r: &Route, m: &Method| is_unsafe(m) && (r.sensitive != Sensitive::No || r.cloud);
    checked += check(
        &app,
        &Client { name: "admin past the window", browser: &admin, csrf: Some(token) },
        any_sensitive_or_cloud,
    )
    .await;
    assert!(checked > 1000, "{checked} spellings checked");
}

async fn with_second_factors_off_no_spelling_reaches_a_factor_route(kind: DbKind) {
    let app = spawn_app_with(TestDb::new(kind), |s| s.sign_in.mfa = MfaPolicy::Off).await;
    app.create_user("alice", Role::User).await;
    let me = app.browser();
    me.login("alice", PASSWORD).await;
    let token = csrf_of(&me, "/").await;
    let client = Client { name: "user", browser: &me, csrf: Some(token) };
    let factor = |r: &Route, _: &Method| r.factor;
    for route in ROUTES.iter().filter(|r| r.factor) {
        for method in methods(route) {
            assert_eq!(ask(&client, &method, &sample_path(route.path)).await.status, 404, "{method} {}", route.path);
        }
    }
    assert!(check(&app, &client, factor).await > 100);
}

#[test]
fn the_spellings_are_the_ones_an_attacker_tries() {
    let s = spellings("/admin/users");
    for want in [
        "/%61dmin/users",
        "/admin/user%73",
        "/%61dmin/users",
        "/admin%2Fusers",
        "/admin//users",
        "//admin/users",
        "/admin/users/",
        "/admin/users;x",
        "/admin;x/users",
        "/ADMIN/USERS",
    ] {
        assert!(s.contains(&want.to_owned()), "{want} in {s:?}");
    }
    assert!(spellings("/").iter().all(|p| p != "/"));
}
