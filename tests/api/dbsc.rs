//! Device-bound sessions over HTTP, with a software key in the part of the browser: registration at
//! sign-in, the bound cookie required from then on, refreshes signed over fresh challenges, and every
//! way a signed request can be wrong (another key, an old or replayed challenge, an ended session).
//! The app's public URL is `https://localhost:PORT` (it serves plain HTTP here, so the cookies, all
//! `Secure`, are carried by hand).

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use rand::RngCore;
use serde_json::{json, Value};

use crate::both_databases;
use crate::helpers::*;
use crate::reauth::details_of;

both_databases!(
    a_sign_in_registers_a_key_and_the_bound_cookie_is_required_from_then_on,
    only_the_key_renews_the_cookie_over_a_fresh_challenge_once,
    a_copied_cookie_works_until_it_expires_and_never_renews,
    with_dbsc_off_or_over_http_nothing_is_offered,
    admins_see_bound_sessions_marked_and_counted,
);

async fn admins_see_bound_sessions_marked_and_counted(kind: DbKind) {
    let app = https_app(kind, |_| {}).await;
    app.create_user("root", dashboard::db::users::Role::Admin).await;
    let (b, key) = (Browser::new(&app.address), Key::new());
    bound_session(&b, &key).await;
    let admin = Browser::new(&app.address);
    assert_eq!(location(&admin.sign_in_as("root").await), "/");
    let overview = admin.get("/admin").await.text().await.unwrap();
    assert!(overview.contains("<span id=\"live-bound\">1</span>"), "the overview counts the bound session");
    let sessions = admin.get("/admin/sessions").await.text().await.unwrap();
    assert_eq!(sessions.matches("data-bound=\"bound\"").count(), 1, "only alice's session is bound");
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The browser's key pair.
struct Key(SigningKey);

impl Key {
    fn new() -> Self {
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        Key(SigningKey::from_slice(&secret).unwrap())
    }

    fn jwk(&self) -> Value {
        let point = self.0.verifying_key().to_sec1_point(false);
        let xy = point.as_bytes();
        json!({ "kty": "EC", "crv": "P-256", "x": b64(&xy[1..33]), "y": b64(&xy[33..65]) })
    }

    /// A `dbsc+jwt` over `challenge`, with the public key in its header when `with_jwk`.
    fn sign(&self, challenge: &str, with_jwk: bool) -> String {
        let mut header = json!({ "alg": "ES256", "typ": "dbsc+jwt" });
        if with_jwk {
            header["jwk"] = self.jwk();
        }
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(json!({ "jti": challenge }).to_string().as_bytes())
        );
        let signature: Signature = self.0.sign(input.as_bytes());
        format!("{input}.{}", b64(&signature.to_bytes()))
    }
}

/// A browser whose cookies are kept by hand (they are all `Secure`; the test server speaks HTTP).
struct Browser {
    client: reqwest::Client,
    base: String,
    cookies: std::sync::Mutex<HashMap<String, String>>,
}

impl Browser {
    fn new(base: &str) -> Self {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Browser { client, base: base.to_owned(), cookies: Default::default() }
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    fn set(&self, name: &str, value: &str) {
        self.cookies.lock().unwrap().insert(name.to_owned(), value.to_owned());
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> reqwest::Response {
        let header: Vec<String> = self.cookies.lock().unwrap().iter().map(|(k, v)| format!("{k}={v}")).collect();
        let res = req.header("cookie", header.join("; ")).send().await.unwrap();
        for set in res.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            let removed = attributes.to_ascii_lowercase().contains("max-age=0") || value.is_empty();
            let mut cookies = self.cookies.lock().unwrap();
            if removed {
                cookies.remove(name.trim());
            } else {
                cookies.insert(name.trim().to_owned(), value.to_owned());
            }
        }
        res
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.send(self.client.get(format!("{}{path}", self.base))).await
    }

    async fn sign_in(&self) -> reqwest::Response {
        self.sign_in_as("alice").await
    }

    async fn sign_in_as(&self, name: &str) -> reqwest::Response {
        let html = self.get("/login").await.text().await.unwrap();
        let token = csrf_from(&html);
        let form = [("username", name), ("password", PASSWORD), ("csrf_token", &token)];
        self.send(self.client.post(format!("{}/login", self.base)).form(&form)).await
    }

    async fn register(&self, jwt: &str) -> reqwest::Response {
        let req = self.client.post(format!("{}/login/dbsc/register", self.base)).header("secure-session-response", jwt);
        self.send(req).await
    }

    async fn refresh(&self, id: &str, jwt: Option<&str>) -> reqwest::Response {
        let mut req = self.client.post(format!("{}/login/dbsc/refresh", self.base)).header("sec-secure-session-id", id);
        if let Some(jwt) = jwt {
            req = req.header("secure-session-response", jwt);
        }
        self.send(req).await
    }

    /// A fresh challenge for session `id` (the server's `403` answer).
    async fn challenge(&self, id: &str) -> String {
        let res = self.refresh(id, None).await;
        assert_eq!(res.status(), 403);
        let header = res.headers()["secure-session-challenge"].to_str().unwrap().to_owned();
        assert!(header.ends_with(&format!(";id=\"{id}\"")), "{header}");
        header.split('"').nth(1).unwrap().to_owned()
    }
}

const BOUND: &str = "__Host-dashboard_bound";

async fn https_app(kind: DbKind, tweak: impl FnOnce(&mut dashboard::config::Settings)) -> TestApp {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app = spawn_app_with(TestDb::new(kind), |s| {
        s.listen = format!("127.0.0.1:{port}").parse().unwrap();
        s.public_url = Some(format!("https://localhost:{port}").parse().unwrap());
        tweak(s);
    })
    .await;
    app.create_user("alice", dashboard::db::users::Role::User).await;
    app
}

/// Signs in on `b` and registers `key`: the session's id.
async fn bound_session(b: &Browser, key: &Key) -> String {
    let res = b.sign_in().await;
    assert_eq!(location(&res), "/");
    let offer = res.headers()["secure-session-registration"].to_str().unwrap().to_owned();
    assert!(offer.starts_with("(ES256);path=\"/login/dbsc/register\";challenge=\""), "{offer}");
    let challenge = offer.split("challenge=\"").nth(1).unwrap().trim_end_matches('"').to_owned();
    let res = b.register(&key.sign(&challenge, true)).await;
    assert_eq!(res.status(), 200);
    let config: Value = res.json().await.unwrap();
    assert_eq!(config["refresh_url"], "/login/dbsc/refresh");
    assert_eq!(config["credentials"][0]["name"], BOUND);
    assert!(b.cookie(BOUND).is_some(), "the bound cookie is set");
    config["session_identifier"].as_str().unwrap().to_owned()
}

async fn a_sign_in_registers_a_key_and_the_bound_cookie_is_required_from_then_on(kind: DbKind) {
    let app = https_app(kind, |_| {}).await;
    let (b, key) = (Browser::new(&app.address), Key::new());
    let id = bound_session(&b, &key).await;
    assert_eq!(b.get("/").await.status(), 200, "with its bound cookie");
    assert_eq!(details_of(&app, "session_bound").await.len(), 1);
    let page = b.get("/account/sessions").await.text().await.unwrap();
    assert!(page.contains("data-bound=\"bound\""), "the sessions page says bound");

    // The session cookie without the bound cookie is not signed in (and the session goes on).
    let bound = b.cookie(BOUND).unwrap();
    b.cookies.lock().unwrap().remove(BOUND);
    assert!(location(&b.get("/").await).starts_with("/login"));
    b.set(BOUND, "x".repeat(43).as_str());
    assert!(location(&b.get("/").await).starts_with("/login"), "nor with a made-up one");
    b.set(BOUND, &bound);
    assert_eq!(b.get("/").await.status(), 200, "the session was not ended");

    // The registration's challenge was spent: a second registration is refused.
    let res = b.register(&Key::new().sign("anything", true)).await;
    assert_eq!(res.status(), 400);
    assert!(!details_of(&app, "dbsc_refused").await.is_empty());
    let _ = id;
}

async fn only_the_key_renews_the_cookie_over_a_fresh_challenge_once(kind: DbKind) {
    let app = https_app(kind, |_| {}).await;
    let (b, key) = (Browser::new(&app.address), Key::new());
    let id = bound_session(&b, &key).await;
    let first = b.cookie(BOUND).unwrap();

    // Another key, or no challenge of the server's, renews nothing.
    let challenge = b.challenge(&id).await;
    assert_eq!(b.refresh(&id, Some(&Key::new().sign(&challenge, false))).await.status(), 400, "another key");
    let challenge = b.challenge(&id).await;
    assert_eq!(b.refresh(&id, Some(&key.sign("made-up", false))).await.status(), 400, "not the challenge");
    // An old challenge is void once a new one was given.
    let old = b.challenge(&id).await;
    let current = b.challenge(&id).await;
    assert_eq!(b.refresh(&id, Some(&key.sign(&old, false))).await.status(), 400, "an old challenge");
    let _ = challenge;

    // The key over the current challenge: a new cookie, and the old one stops working.
    let signed = key.sign(&current, false);
    let res = b.refresh(&id, Some(&signed)).await;
    assert_eq!(res.status(), 200);
    let renewed = b.cookie(BOUND).unwrap();
    assert_ne!(renewed, first, "the cookie rotates");
    assert_eq!(b.get("/").await.status(), 200);
    b.set(BOUND, &first);
    assert!(location(&b.get("/").await).starts_with("/login"), "the old cookie no longer works");
    b.set(BOUND, &renewed);
    // The same signed answer again (a replay): refused.
    assert_eq!(b.refresh(&id, Some(&signed)).await.status(), 400, "a replay");

    // An ended session renews nothing.
    let c = b.challenge(&id).await;
    app.with_db({
        let id = id.clone();
        move |conn| dashboard::db::sessions::delete_by_id(conn, &id)
    })
    .await;
    assert_eq!(b.refresh(&id, Some(&key.sign(&c, false))).await.status(), 400, "an ended session");
}

async fn a_copied_cookie_works_until_it_expires_and_never_renews(kind: DbKind) {
    let app = https_app(kind, |s| s.sign_in.dbsc_cookie_ttl = Duration::from_secs(60)).await;
    let (b, key) = (Browser::new(&app.address), Key::new());
    let id = bound_session(&b, &key).await;
    // A thief copies both cookies.
    let thief = Browser::new(&app.address);
    for name in ["__Host-dashboard_session", BOUND] {
        thief.set(name, &b.cookie(name).unwrap());
    }
    assert_eq!(thief.get("/").await.status(), 200, "until the bound cookie expires");
    app.clock.advance(Duration::from_secs(61));
    assert!(location(&thief.get("/").await).starts_with("/login"), "then never again");
    let challenge = thief.challenge(&id).await;
    assert_eq!(thief.refresh(&id, Some(&Key::new().sign(&challenge, false))).await.status(), 400);
    // The browser with the key goes on.
    let challenge = b.challenge(&id).await;
    assert_eq!(b.refresh(&id, Some(&key.sign(&challenge, false))).await.status(), 200);
    assert_eq!(b.get("/").await.status(), 200);
}

async fn with_dbsc_off_or_over_http_nothing_is_offered(kind: DbKind) {
    let app = https_app(kind, |s| s.sign_in.dbsc = false).await;
    let b = Browser::new(&app.address);
    let res = b.sign_in().await;
    assert_eq!(location(&res), "/");
    assert!(res.headers().get("secure-session-registration").is_none());
    assert_eq!(b.get("/").await.status(), 200, "a session as before");
    assert_eq!(b.register(&Key::new().sign("x", true)).await.status(), 404);

    let app = spawn_app(kind).await;
    app.create_user("alice", dashboard::db::users::Role::User).await;
    let res = app.login("alice", PASSWORD).await;
    assert!(res.headers().get("secure-session-registration").is_none(), "plain http: not offered");
}
