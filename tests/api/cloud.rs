//! Cloud access against a real Secrets Manager emulator on loopback (`python3 -m moto.server`, from
//! PyPI `moto[server]`) and wiremock stand-ins for the gateway and the Cloud API.
//!
//! The emulator is started once per test run (or taken from `TEST_AWS_ENDPOINT_URL`). When moto was
//! not installed as the tests were built, they are reported as ignored (see `build.rs`), unless
//! `DASHBOARD_REQUIRE_CLOUD=1` (set by `.ci/run`), which makes a missing emulator a failure.

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine;
use dashboard::accounts::{self, Actor};
use dashboard::db::users::Role;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::both_databases;
use crate::helpers::*;

/// The emulator's endpoint, with the AWS SDK's environment pointed at it.
fn moto() -> &'static str {
    static ENDPOINT: OnceLock<Option<String>> = OnceLock::new();
    let endpoint = ENDPOINT.get_or_init(|| {
        let endpoint = match std::env::var("TEST_AWS_ENDPOINT_URL").ok().filter(|v| !v.is_empty()) {
            Some(url) => url,
            None => {
                let have_moto = Command::new("python3")
                    .args(["-c", "import moto.server"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if !have_moto {
                    return None;
                }
                let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
                // The emulator lives as long as this test process: the shell stops it when we are gone.
                let me = std::process::id();
                #[allow(clippy::zombie_processes)] // detached on purpose; it ends itself
                Command::new("sh")
                    .arg("-c")
                    .arg(format!(
                        "python3 -m moto.server -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; \
                         while kill -0 {me} 2>/dev/null; do sleep 1; done; kill $m"
                    ))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start moto");
                let start = Instant::now();
                while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                    assert!(start.elapsed() < Duration::from_secs(30), "moto did not start");
                    std::thread::sleep(Duration::from_millis(100));
                }
                format!("http://127.0.0.1:{port}")
            }
        };
        // Set once, before any app reads them: the standard AWS configuration chain.
        std::env::set_var("AWS_ENDPOINT_URL", &endpoint);
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        Some(endpoint)
    });
    // Only built to run when moto was there (or required): its absence now is a failure, never a pass.
    endpoint.as_deref().expect("moto[server] is not installed: python3 -m pip install 'moto[server]'")
}

async fn secrets_client() -> aws_sdk_secretsmanager::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    aws_sdk_secretsmanager::Client::new(&config)
}

async fn put_secret(name: &str, client_id: &str, client_secret: &str) {
    let json = format!(r#"{{"client_id":"{client_id}","client_secret":"{client_secret}"}}"#);
    let client = secrets_client().await;
    if client.create_secret().name(name).secret_string(&json).send().await.is_err() {
        client.put_secret_value().secret_id(name).secret_string(json).send().await.expect("rotate secret");
    }
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")))
}

/// A JWT-shaped token (the dashboard only reads its `exp`).
fn jwt(role: &str, n: u32) -> String {
    let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let exp = dashboard::util::now_ms() / 1000 + 3600;
    format!(
        "{}.{}.signature{n}",
        enc(r#"{"alg":"RS256","typ":"JWT"}"#),
        enc(&format!(r#"{{"scope":"role:{role}","exp":{exp},"n":{n}}}"#))
    )
}

fn token_answer(token: &str, expires_in: i64) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(serde_json::json!({"access_token": token, "token_type": "Bearer", "expires_in": expires_in}))
}

struct Cloud {
    app: TestApp,
    gateway: MockServer,
    api: MockServer,
}

/// An app with cloud access: a fresh secret in the emulator, a gateway and an API stand-in.
async fn cloud_app(kind: DbKind, required: bool, client_secret: &str) -> Cloud {
    moto();
    let (gateway, api) = (MockServer::start().await, MockServer::start().await);
    let secret = format!("dashboard/test/{}", dashboard::util::random_alphanumeric(10));
    put_secret(&secret, "dashboard-client", client_secret).await;
    let (token_url, api_url) = (format!("{}/oauth2/token", gateway.uri()), format!("{}/v1", api.uri()));
    let app = spawn_app_with(TestDb::new(kind), move |s| {
        s.cloud = Some(dashboard::config::CloudSettings {
            secret_id: secret,
            token_url: token_url.parse().unwrap(),
            api_url: api_url.parse().unwrap(),
            required,
        });
    })
    .await;
    app.create_user("ada", Role::Admin).await;
    app.create_user("bob", Role::User).await;
    Cloud { app, gateway, api }
}

fn reads(app: &TestApp) -> u64 {
    app.cloud_reads()
}

both_databases!(
    cloud:
    one_sign_in_makes_one_token_request_with_the_client_credentials_and_the_role,
    sign_ins_within_the_cache_time_read_the_secret_once,
    a_wrong_password_makes_no_secret_read_and_no_token_request,
    cloud_requests_reach_the_api_with_the_bearer_token_and_without_cookies,
    a_token_near_expiry_is_refreshed_first_and_a_401_gets_a_new_one,
    a_role_change_gets_a_token_for_the_new_role,
    a_down_gateway_leaves_sign_in_working_and_says_unavailable,
    a_down_gateway_fails_a_required_sign_in_without_a_session,
    rotated_credentials_are_read_again_and_the_retry_succeeds,
    the_token_appears_in_no_header_cookie_page_or_row,
);

async fn one_sign_in_makes_one_token_request_with_the_client_credentials_and_the_role(kind: DbKind) {
    let c = cloud_app(kind, false, "s3cret-one").await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .and(header("authorization", basic("dashboard-client", "s3cret-one").as_str()))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string_contains("grant_type=client_credentials"))
        .and(body_string_contains("scope=role%3Aadmin"))
        .respond_with(token_answer(&jwt("admin", 1), 3600))
        .expect(1)
        .mount(&c.gateway)
        .await;
    assert_eq!(c.app.login("ada", PASSWORD).await.status(), 303);
    let html = c.app.get("/").await.text().await.unwrap();
    assert!(html.contains(r#"data-state="connected""#) && html.contains("role:admin"), "{html}");
    let admin = c.app.get("/admin/sessions").await.text().await.unwrap();
    assert!(admin.contains(r#"data-cloud="yes""#), "the admin page shows the session holds a token");
    c.gateway.verify().await;
}

async fn sign_ins_within_the_cache_time_read_the_secret_once(kind: DbKind) {
    let c = cloud_app(kind, false, "s3cret-two").await;
    Mock::given(method("POST")).respond_with(token_answer(&jwt("user", 1), 3600)).expect(3).mount(&c.gateway).await;
    for _ in 0..3 {
        assert_eq!(c.app.browser().login("bob", PASSWORD).await.status(), 303);
    }
    assert_eq!(reads(&c.app), 1);
}

async fn a_wrong_password_makes_no_secret_read_and_no_token_request(kind: DbKind) {
    let c = cloud_app(kind, true, "s3cret-three").await;
    Mock::given(method("POST")).respond_with(token_answer(&jwt("user", 1), 3600)).expect(0).mount(&c.gateway).await;
    for _ in 0..4 {
        assert_eq!(c.app.browser().login("bob", "not bob's password at all").await.status(), 401);
    }
    assert_eq!(c.app.browser().login("nobody", "not bob's password at all").await.status(), 401);
    assert_eq!(reads(&c.app), 0);
}

async fn cloud_requests_reach_the_api_with_the_bearer_token_and_without_cookies(kind: DbKind) {
    let c = cloud_app(kind, false, "s3cret-four").await;
    let token = jwt("user", 4);
    Mock::given(method("POST")).respond_with(token_answer(&token, 3600)).mount(&c.gateway).await;
    Mock::given(method("GET"))
        .and(path("/v1/ping"))
        .and(header("authorization", format!("Bearer {token}").as_str()))
        .respond_with(ResponseTemplate::new(200).insert_header("content-type", "text/plain").set_body_string("pong"))
        .mount(&c.api)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/items"))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": 7})))
        .mount(&c.api)
        .await;
    c.app.login("bob", PASSWORD).await;

    let res = c.app.get("/cloud/ping?verbose=1").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "pong");
    let seen = &c.api.received_requests().await.unwrap()[0];
    assert_eq!(seen.url.query(), Some("verbose=1"));
    assert!(seen.headers.get("cookie").is_none(), "the dashboard's cookies stay home");

    // State-changing methods need the CSRF token in X-CSRF-Token.
    let res =
        c.app.client.post(c.app.url("/cloud/items")).json(&serde_json::json!({"name": "x"})).send().await.unwrap();
    assert_eq!(res.status(), 403);
    let csrf = {
        let html = c.app.get("/").await.text().await.unwrap();
        let start = html.find(r#"<meta name="csrf-token" content=""#).unwrap() + 33;
        html[start..start + html[start..].find('"').unwrap()].to_owned()
    };
    let res = c
        .app
        .client
        .post(c.app.url("/cloud/items"))
        .header("x-csrf-token", csrf)
        .json(&serde_json::json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["id"], 7);
    let posted = c.api.received_requests().await.unwrap().into_iter().find(|r| r.url.path() == "/v1/items").unwrap();
    assert_eq!(posted.body, br#"{"name":"x"}"#);

    // A path that would climb out of the API's base path is not forwarded.
    assert!(c.app.get("/cloud/a/%2e%2e/%2e%2e/x").await.status().is_client_error());
    assert!(c.api.received_requests().await.unwrap().iter().all(|r| r.url.path().starts_with("/v1/")));
}

async fn a_token_near_expiry_is_refreshed_first_and_a_401_gets_a_new_one(kind: DbKind) {
    let c = cloud_app(kind, false, "s3cret-five").await;
    let (first, second, third) = (jwt("user", 1), jwt("user", 2), jwt("user", 3));
    // The first token has 30 s left: inside the 60 s refresh window.
    Mock::given(method("POST")).respond_with(token_answer(&first, 30)).up_to_n_times(1).mount(&c.gateway).await;
    Mock::given(method("POST")).respond_with(token_answer(&second, 3600)).up_to_n_times(1).mount(&c.gateway).await;
    Mock::given(method("POST")).respond_with(token_answer(&third, 3600)).mount(&c.gateway).await;
    Mock::given(method("GET"))
        .and(path("/v1/ping"))
        .and(header("authorization", format!("Bearer {second}").as_str()))
        .respond_with(ResponseTemplate::new(401))
        .mount(&c.api)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/ping"))
        .and(header("authorization", format!("Bearer {third}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_string("pong"))
        .mount(&c.api)
        .await;
    c.app.login("bob", PASSWORD).await;
    let res = c.app.get("/cloud/ping").await;
    assert_eq!(res.status(), 200);
    let used: Vec<String> = c
        .api
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.headers.get("authorization").unwrap().to_str().unwrap().to_owned())
        .collect();
    assert_eq!(used, vec![format!("Bearer {second}"), format!("Bearer {third}")], "never the expiring one");
    assert_eq!(c.gateway.received_requests().await.unwrap().len(), 3);
}

async fn a_role_change_gets_a_token_for_the_new_role(kind: DbKind) {
    let c = cloud_app(kind, false, "s3cret-six").await;
    Mock::given(method("POST"))
        .and(body_string_contains("scope=role%3Auser"))
        .respond_with(token_answer(&jwt("user", 1), 3600))
        .mount(&c.gateway)
        .await;
    let admin_token = jwt("admin", 2);
    Mock::given(method("POST"))
        .and(body_string_contains("scope=role%3Aadmin"))
        .respond_with(token_answer(&admin_token, 3600))
        .expect(1)
        .mount(&c.gateway)
        .await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(200)).mount(&c.api).await;
    c.app.login("bob", PASSWORD).await;
    c.app
        .with_db(|conn| {
            accounts::set_role(conn, "bob", Role::Admin, Actor::Cli).unwrap();
            Ok(())
        })
        .await;
    assert_eq!(c.app.get("/cloud/ping").await.status(), 200);
    let auth =
        c.api.received_requests().await.unwrap()[0].headers.get("authorization").unwrap().to_str().unwrap().to_owned();
    assert_eq!(auth, format!("Bearer {admin_token}"), "a token for the new role");
    let html = c.app.get("/").await.text().await.unwrap();
    assert!(html.contains("role:admin"));
}

async fn a_down_gateway_leaves_sign_in_working_and_says_unavailable(kind: DbKind) {
    let c = cloud_app(kind, false, "s3cret-seven").await;
    // A gateway that hangs far longer than the 5 s timeout.
    Mock::given(method("POST"))
        .respond_with(token_answer(&jwt("user", 1), 3600).set_delay(Duration::from_secs(60)))
        .mount(&c.gateway)
        .await;
    let start = Instant::now();
    assert_eq!(c.app.login("bob", PASSWORD).await.status(), 303);
    assert!(start.elapsed() < Duration::from_secs(20), "bounded by the timeout, took {:?}", start.elapsed());
    let html = c.app.get("/").await.text().await.unwrap();
    assert!(html.contains(r#"data-state="unavailable""#), "{html}");
    assert_eq!(c.app.get("/cloud/ping").await.status(), 503);
}

async fn a_down_gateway_fails_a_required_sign_in_without_a_session(kind: DbKind) {
    let c = cloud_app(kind, true, "s3cret-eight").await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(503)).mount(&c.gateway).await;
    let res = c.app.login("bob", PASSWORD).await;
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("Invalid username or password."));
    assert_eq!(c.app.session_rows().await, 0);
}

async fn rotated_credentials_are_read_again_and_the_retry_succeeds(kind: DbKind) {
    let c = cloud_app(kind, false, "old-secret").await;
    let accept = |secret: &'static str, token: String| {
        Mock::given(method("POST"))
            .and(header("authorization", basic("dashboard-client", secret).as_str()))
            .respond_with(token_answer(&token, 3600))
    };
    accept("old-secret", jwt("user", 1)).mount(&c.gateway).await;
    assert_eq!(c.app.browser().login("bob", PASSWORD).await.status(), 303);
    assert_eq!(reads(&c.app), 1);

    // The secret is rotated: the gateway now refuses the old credentials.
    let secret_id = c.app.cloud_secret_id();
    put_secret(&secret_id, "dashboard-client", "new-secret").await;
    c.gateway.reset().await;
    Mock::given(method("POST"))
        .and(header("authorization", basic("dashboard-client", "old-secret").as_str()))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({"error": "invalid_client"})))
        .mount(&c.gateway)
        .await;
    accept("new-secret", jwt("user", 2)).expect(1).mount(&c.gateway).await;

    let browser = c.app.browser();
    assert_eq!(browser.login("bob", PASSWORD).await.status(), 303);
    assert_eq!(reads(&c.app), 2, "read again once");
    assert!(browser.get("/").await.text().await.unwrap().contains(r#"data-state="connected""#));
    c.gateway.verify().await;
}

async fn the_token_appears_in_no_header_cookie_page_or_row(kind: DbKind) {
    let c = cloud_app(kind, false, "s3cret-nine").await;
    let token = jwt("admin", 9);
    Mock::given(method("POST")).respond_with(token_answer(&token, 3600)).mount(&c.gateway).await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).insert_header("set-cookie", "api=1").set_body_string("{}"))
        .mount(&c.api)
        .await;
    let mut seen = String::new();
    let browser = c.app.browser();
    let res = browser.login("ada", PASSWORD).await;
    seen.push_str(&format!("{:?}", res.headers()));
    for page in ["/", "/account/sessions", "/admin/sessions", "/admin/events", "/cloud/ping"] {
        let res = browser.get(page).await;
        assert!(res.headers().get("set-cookie").is_none_or(|v| !v.to_str().unwrap().starts_with("api=")));
        seen.push_str(&format!("{:?}", res.headers()));
        seen.push_str(&res.text().await.unwrap());
    }
    seen.push_str(&browser.session_cookie().unwrap());
    let signature = token.rsplit('.').next().unwrap();
    assert!(!seen.contains(signature) && !seen.contains("eyJ"), "the token leaked");
    let stored: Vec<Option<String>> = c
        .app
        .with_db(|conn| {
            use diesel::prelude::*;
            dashboard::db::schema::sessions::table.select(dashboard::db::schema::sessions::cloud_token).load(conn)
        })
        .await;
    let sealed = stored[0].clone().expect("a sealed token is stored");
    assert!(!sealed.contains(signature) && !sealed.contains("eyJ"), "sealed at rest");
}

both_databases!(cloud: the_token_and_the_client_secret_never_reach_the_log);

async fn the_token_and_the_client_secret_never_reach_the_log(kind: DbKind) {
    use std::io::{BufRead, BufReader};
    moto();
    let (gateway, api) = (MockServer::start().await, MockServer::start().await);
    let secret = format!("dashboard/test/{}", dashboard::util::random_alphanumeric(10));
    put_secret(&secret, "dashboard-client", "log-test-client-secret").await;
    let token = jwt("user", 77);
    Mock::given(method("POST")).respond_with(token_answer(&token, 3600)).mount(&gateway).await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(401)).up_to_n_times(1).mount(&api).await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(200).set_body_string("pong")).mount(&api).await;

    let db = TestDb::new(kind);
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("stderr.log");
    // Its output is captured (not inherited), so a passing run prints nothing of it.
    let mut add = Command::new(env!("CARGO_BIN_EXE_dashboard"))
        .args(["user", "add", "bob", "--password-stdin"])
        .env("DATABASE_URL", &db.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut add.stdin.take().unwrap(), format!("{PASSWORD}\n").as_bytes()).unwrap();
    let added = add.wait_with_output().unwrap();
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let mut child = Command::new(env!("CARGO_BIN_EXE_dashboard"))
        .current_dir(dir.path())
        .env("DATABASE_URL", &db.url)
        .env("DASHBOARD_LISTEN", "127.0.0.1:0")
        .env("DASHBOARD_CLOUD_SECRET_ID", &secret)
        .env("DASHBOARD_CLOUD_TOKEN_URL", format!("{}/token", gateway.uri()))
        .env("DASHBOARD_CLOUD_API_URL", format!("{}/v1", api.uri()))
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let address = first.trim().strip_prefix("listening on ").unwrap().to_owned();
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let browser = Browser { client: client_with(jar.clone()), jar, address };
    assert_eq!(browser.login("bob", PASSWORD).await.status(), 303);
    assert_eq!(browser.get("/cloud/ping").await.status(), 200);
    stop_gracefully(&mut child);

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("obtained a gateway token"), "{log}");
    let signature = token.rsplit('.').next().unwrap();
    for secret in [signature, "eyJ", "log-test-client-secret"] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
}

both_databases!(
    cloud:
    only_get_head_post_put_patch_and_delete_are_forwarded,
    every_cloud_response_is_sandboxed_and_active_content_is_an_attachment,
    upstream_401s_force_at_most_one_token_request_per_interval,
    parameterised_and_double_encoded_climbs_are_refused,
);

/// The page's CSRF token, for `X-CSRF-Token`.
async fn csrf_header(app: &TestApp) -> String {
    let html = app.get("/").await.text().await.unwrap();
    let start = html.find(r#"<meta name="csrf-token" content=""#).unwrap() + 33;
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

async fn only_get_head_post_put_patch_and_delete_are_forwarded(kind: DbKind) {
    let c = cloud_app(kind, false, "s3cret-methods").await;
    Mock::given(method("POST")).respond_with(token_answer(&jwt("user", 1), 3600)).mount(&c.gateway).await;
    // An upstream that echoes the request, headers included (what TRACE does).
    Mock::given(path("/v1/echo"))
        .respond_with(|req: &wiremock::Request| {
            ResponseTemplate::new(200)
                .insert_header("content-type", "message/http")
                .set_body_string(format!("{:?}", req.headers))
        })
        .mount(&c.api)
        .await;
    c.app.login("bob", PASSWORD).await;
    let csrf = csrf_header(&c.app).await;
    for refused in ["TRACE", "OPTIONS", "PROPFIND", "FOO"] {
        let m = reqwest::Method::from_bytes(refused.as_bytes()).unwrap();
        // With and without a CSRF token: never forwarded either way.
        for with_token in [false, true] {
            let mut req = c.app.client.request(m.clone(), c.app.url("/cloud/echo"));
            if with_token {
                req = req.header("x-csrf-token", &csrf);
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 405, "{refused}");
            assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"), "{refused}");
            let allow = res.headers()["allow"].to_str().unwrap().to_owned();
            assert_eq!(allow, "GET, HEAD, POST, PUT, PATCH, DELETE");
            let body = res.text().await.unwrap();
            assert!(!body.contains("Bearer") && !body.contains("eyJ"), "{refused}: {body}");
        }
    }
    assert!(c.api.received_requests().await.unwrap().is_empty(), "nothing refused reaches the Cloud API");
    for allowed in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] {
        let m = reqwest::Method::from_bytes(allowed.as_bytes()).unwrap();
        let res = c.app.client.request(m, c.app.url("/cloud/echo")).header("x-csrf-token", &csrf).send().await.unwrap();
        assert_eq!(res.status(), 200, "{allowed}");
    }
    let methods: Vec<String> = c.api.received_requests().await.unwrap().iter().map(|r| r.method.to_string()).collect();
    assert_eq!(methods, ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]);
}

async fn every_cloud_response_is_sandboxed_and_active_content_is_an_attachment(kind: DbKind) {
    let c = cloud_app(kind, false, "s3cret-sandbox").await;
    Mock::given(method("POST")).respond_with(token_answer(&jwt("user", 1), 3600)).mount(&c.gateway).await;
    let serve = |file: &str, content_type: &str, body: &str| {
        let answer = if content_type.is_empty() {
            ResponseTemplate::new(200).set_body_bytes(body.as_bytes().to_vec())
        } else {
            ResponseTemplate::new(200).set_body_raw(body.as_bytes().to_vec(), content_type)
        };
        // An upstream that asks for inline display does not get it for active types.
        Mock::given(path(format!("/v1/{file}"))).respond_with(answer.insert_header("content-disposition", "inline"))
    };
    let evil = r#"<script src="/cloud/evil.js"></script>"#;
    let cases = [
        ("page.html", "text/html; charset=utf-8", evil, true),
        ("image.svg", "image/svg+xml", "<svg onload=alert(1)></svg>", true),
        ("evil.js", "application/javascript", "alert(1)", true),
        ("style.css", "text/css", "body{}", true),
        ("doc.xml", "application/xml", "<a/>", true),
        ("untyped", "", "<script>alert(1)</script>", true),
        ("data.json", "application/json", "{}", false),
        ("note.txt", "text/plain; charset=utf-8", "hello", false),
        ("a.png", "image/png", "png", false),
        ("a.jpg", "image/jpeg", "jpg", false),
        ("a.gif", "image/gif", "gif", false),
        ("a.webp", "image/webp", "webp", false),
    ];
    for (file, content_type, body, _) in cases {
        serve(file, content_type, body).mount(&c.api).await;
    }
    let sandboxed = |res: &reqwest::Response, what: &str| {
        let csp: Vec<&str> =
            res.headers().get_all("content-security-policy").iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(csp, ["sandbox; default-src 'none'"], "{what}: the dashboard's policy is replaced");
        assert_eq!(res.headers()["x-content-type-options"], "nosniff", "{what}");
    };
    // Signed out: the redirect to the sign-in page is sandboxed too.
    let res = c.app.get("/cloud/page.html").await;
    assert_eq!(res.status(), 303);
    sandboxed(&res, "redirect");
    c.app.login("bob", PASSWORD).await;
    for (file, _, body, attachment) in cases {
        let res = c.app.get(&format!("/cloud/{file}")).await;
        assert_eq!(res.status(), 200, "{file}");
        sandboxed(&res, file);
        let disposition = res.headers().get("content-disposition").map(|v| v.to_str().unwrap().to_owned());
        if attachment {
            assert_eq!(disposition.as_deref(), Some("attachment"), "{file}");
        } else {
            assert_eq!(disposition, None, "{file} is shown inline");
        }
        assert_eq!(res.text().await.unwrap(), body, "{file}: the content itself is passed on");
    }
    // Our own answers under /cloud: 405, 400, 404 from the API, 503.
    let res = c.app.client.request(reqwest::Method::TRACE, c.app.url("/cloud/x")).send().await.unwrap();
    sandboxed(&res, "405");
    let res = c.app.get("/cloud/..;/x").await;
    assert_eq!(res.status(), 400);
    sandboxed(&res, "400");
    let res = c.app.get("/cloud/missing").await;
    assert_eq!(res.status(), 404);
    sandboxed(&res, "upstream 404");
    // Pages elsewhere keep the dashboard's policy.
    let res = c.app.get("/").await;
    assert!(res.headers()["content-security-policy"].to_str().unwrap().starts_with("default-src 'self'"));
}

async fn upstream_401s_force_at_most_one_token_request_per_interval(kind: DbKind) {
    let c = cloud_app(kind, false, "s3cret-401s").await;
    Mock::given(method("POST")).respond_with(token_answer(&jwt("user", 1), 3600)).mount(&c.gateway).await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(401)).mount(&c.api).await;
    c.app.login("bob", PASSWORD).await;
    assert_eq!(c.gateway.received_requests().await.unwrap().len(), 1, "the sign-in's token");
    for _ in 0..10 {
        assert_eq!(c.app.get("/cloud/ping").await.status(), 401, "the Cloud API's answer is passed on");
    }
    assert_eq!(
        c.gateway.received_requests().await.unwrap().len(),
        2,
        "10 upstream 401s cost one forced renewal, not ten"
    );
    // In parallel too.
    let requests = (0..10).map(|_| c.app.get("/cloud/ping"));
    futures_util::future::join_all(requests).await;
    assert_eq!(c.gateway.received_requests().await.unwrap().len(), 2);
    // Another session has its own allowance.
    let other = c.app.browser();
    other.login("bob", PASSWORD).await;
    assert_eq!(other.get("/cloud/ping").await.status(), 401);
    assert_eq!(c.gateway.received_requests().await.unwrap().len(), 4, "its sign-in and its one renewal");
}

async fn parameterised_and_double_encoded_climbs_are_refused(kind: DbKind) {
    let c = cloud_app(kind, false, "s3cret-climb").await;
    Mock::given(method("POST")).respond_with(token_answer(&jwt("user", 1), 3600)).mount(&c.gateway).await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(200).set_body_string("{}")).mount(&c.api).await;
    c.app.login("bob", PASSWORD).await;
    for bad in ["..;/admin", "a/..;x=1/..;/b", "a/%2e%2e;/b", "a/%2E%2E%3B/b", "%252e%252e/admin", "a/%25/b"] {
        let res = c.app.get(&format!("/cloud/{bad}")).await;
        assert_eq!(res.status(), 400, "{bad}");
    }
    assert!(c.api.received_requests().await.unwrap().is_empty(), "none of them forwarded");
    assert_eq!(c.app.get("/cloud/items/x..;y").await.status(), 200, "dots inside a segment are fine");
}
