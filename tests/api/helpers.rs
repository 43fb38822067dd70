//! Spawns the real app on port 0 with a fresh database, and drives it like a browser.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dashboard::config::Settings;
use dashboard::db::{self, users, Pool};
use dashboard::startup::Application;
use diesel::prelude::*;

/// The password every test user gets (meets the default policy).
pub const PASSWORD: &str = "correct horse battery staple";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

/// PostgreSQL tests run when `TEST_DATABASE_URL` names a server (any database on it; each test
/// creates its own). Whether it was set is decided when the tests are built (see `build.rs`), so
/// without it the PostgreSQL variants show as *ignored* rather than passed.
///
/// Without TLS (`sslmode=disable`, unless the URL asks otherwise): the server is on loopback, and
/// libpq's OpenSSL state is torn down by an exit handler while the pools' background threads may
/// still be inside a TLS connection, which crashed the test binary at exit (SIGSEGV after every
/// test had passed).
pub fn postgres_url() -> Option<String> {
    let url = std::env::var("TEST_DATABASE_URL").ok().filter(|u| !u.is_empty())?;
    if url.contains("sslmode=") {
        return Some(url);
    }
    Some(format!("{url}{}sslmode=disable", if url.contains('?') { '&' } else { '?' }))
}

/// Declares, for each async test function taking a `DbKind`, one test per database: `NAME::sqlite`
/// and `NAME::postgres`, the latter ignored unless `TEST_DATABASE_URL` was set at build time.
/// `both_databases!(cloud: …)` declares tests that also need the Secrets Manager emulator, ignored
/// (on both databases) when it is not installed.
#[macro_export]
macro_rules! both_databases {
    (cloud: $($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(not(dashboard_test_cloud), ignore = "moto[server] is not installed (python3 -m pip install 'moto[server]'; see tests/api/cloud.rs)")]
            async fn sqlite() {
                super::$name($crate::helpers::DbKind::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(not(dashboard_test_cloud), ignore = "moto[server] is not installed (python3 -m pip install 'moto[server]'; see tests/api/cloud.rs)")]
            #[cfg_attr(all(dashboard_test_cloud, not(dashboard_test_postgres)), ignore = "TEST_DATABASE_URL is not set")]
            async fn postgres() {
                super::$name($crate::helpers::DbKind::Postgres).await
            }
        }
    )*};
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::DbKind::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(not(dashboard_test_postgres), ignore = "TEST_DATABASE_URL is not set")]
            async fn postgres() {
                super::$name($crate::helpers::DbKind::Postgres).await
            }
        }
    )*};
}

/// A fresh, empty database, dropped (PostgreSQL) or deleted (SQLite) at the end of the test.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl TestDb {
    pub fn new(kind: DbKind) -> Arc<TestDb> {
        match kind {
            DbKind::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = dir.path().join("test.db").to_string_lossy().into_owned();
                Arc::new(TestDb { url, _dir: Some(dir), pg_name: None })
            }
            DbKind::Postgres => {
                // Built to run on PostgreSQL (TEST_DATABASE_URL was set) but run without it: fail, never pass.
                let server = postgres_url().expect("TEST_DATABASE_URL is not set, but the tests were built with it");
                let name = format!("dashboard_test_{}", dashboard::util::random_alphanumeric(12).to_lowercase());
                let mut conn = diesel::PgConnection::establish(&server).expect("connect to TEST_DATABASE_URL");
                diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn).expect("create database");
                let mut url = url::Url::parse(&server).expect("TEST_DATABASE_URL is a URL");
                url.set_path(&name);
                Arc::new(TestDb { url: url.to_string(), _dir: None, pg_name: Some(name) })
            }
        }
    }

    /// A direct connection, for looking at and back-dating rows.
    pub fn pool(&self) -> Pool {
        let settings = Settings::with_database(&self.url).unwrap();
        dashboard::startup::open_database(&settings).expect("open test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let (Some(name), Some(server)) = (&self.pg_name, postgres_url()) {
            if let Ok(mut conn) = diesel::PgConnection::establish(&server) {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn);
            }
        }
    }
}

/// A running app and a browser-like client (cookie jar, no automatic redirects).
pub struct TestApp {
    pub address: String,
    pub db: Arc<TestDb>,
    pub pool: Pool,
    pub client: reqwest::Client,
    pub jar: Arc<reqwest::cookie::Jar>,
    pub setup_url: Option<String>,
    pub hasher: dashboard::auth::password::Hasher,
    /// The app's clock: tests move it forward instead of sleeping.
    pub clock: dashboard::clock::Clock,
    /// The metrics listener's port, when the test configured one.
    pub metrics_port: Option<u16>,
    state: actix_web::web::Data<dashboard::state::AppState>,
    handle: actix_web::dev::ServerHandle,
}

pub fn test_settings(db: &TestDb) -> Settings {
    let mut settings = Settings::with_database(&db.url).expect("settings");
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.sessions.prune_interval = None;
    settings.hash_concurrency = 2;
    settings
}

pub async fn spawn_app(kind: DbKind) -> TestApp {
    spawn_app_with(TestDb::new(kind), |_| {}).await
}

pub async fn spawn_app_with(db: Arc<TestDb>, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    dashboard::telemetry::init_for_tests();
    let mut settings = test_settings(&db);
    tweak(&mut settings);
    let app = Application::build(settings).await.expect("build app");
    let port = app.port();
    let pool = app.pool().clone();
    let setup_url = app.setup_url().map(str::to_owned);
    let handle = app.handle();
    let state = app.state();
    let hasher = state.hasher.clone();
    let clock = state.clock.clone();
    let metrics_port = app.metrics_port();
    tokio::spawn(app.run_until_stopped());
    let jar = Arc::new(reqwest::cookie::Jar::default());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        db,
        pool,
        client: client_with(jar.clone()),
        jar,
        setup_url,
        hasher,
        clock,
        metrics_port,
        state,
        handle,
    }
}

pub fn client_with(jar: Arc<reqwest::cookie::Jar>) -> reqwest::Client {
    client_as(jar, "")
}

/// A client that sends `user_agent` (none when empty).
pub fn client_as(jar: Arc<reqwest::cookie::Jar>, user_agent: &str) -> reqwest::Client {
    let builder = reqwest::Client::builder();
    let builder = if user_agent.is_empty() { builder } else { builder.user_agent(user_agent.to_owned()) };
    builder
        .cookie_provider(jar)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The argon2 hash of [`PASSWORD`], computed once per test binary.
pub fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| dashboard::auth::password::hash_blocking(PASSWORD).unwrap())
}

/// Extracts `name="csrf_token" value="…"` from a page.
pub fn csrf_from(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).expect("page has a csrf_token field") + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

/// A second browser on the same app.
#[derive(Clone)]
pub struct Browser {
    pub client: reqwest::Client,
    pub jar: Arc<reqwest::cookie::Jar>,
    pub address: String,
}

impl TestApp {
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// The app's session lifetimes and cap, as sign-in hands them to the accounts service.
    pub fn state_timeouts(&self) -> dashboard::session::Timeouts {
        self.state.config.timeouts
    }

    /// The app's shared state (for its test hooks).
    pub fn app_state(&self) -> &dashboard::state::AppState {
        &self.state
    }

    /// How many times cloud access read its secret from Secrets Manager.
    pub fn cloud_reads(&self) -> u64 {
        self.state.cloud.as_ref().map_or(0, |c| c.secrets.reads())
    }

    /// The Secrets Manager secret this app reads.
    pub fn cloud_secret_id(&self) -> String {
        self.state.cloud.as_ref().map(|c| c.secrets.secret_id().to_owned()).unwrap_or_default()
    }

    pub fn browser(&self) -> Browser {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        Browser { client: client_with(jar.clone()), jar, address: self.address.clone() }
    }

    /// A second browser that sends a user agent.
    pub fn browser_as(&self, user_agent: &str) -> Browser {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        Browser { client: client_as(jar.clone(), user_agent), jar, address: self.address.clone() }
    }

    /// This app's default browser.
    pub fn me(&self) -> Browser {
        Browser { client: self.client.clone(), jar: self.jar.clone(), address: self.address.clone() }
    }

    /// The raw session token a session cookie carries: the cookie is encrypted with the server key
    /// (actix-session's private cookie), so this opens it with the key the app keeps in its database.
    pub fn session_token(&self, cookie_value: &str) -> String {
        use actix_web::cookie::{Cookie, CookieJar, Key};
        let key = dashboard::startup::load_or_create_key(None, &self.pool).expect("the server key");
        let mut jar = CookieJar::new();
        // actix-web percent-encodes cookie values when it writes them.
        let value = percent_encoding::percent_decode_str(cookie_value).decode_utf8().expect("UTF-8").into_owned();
        jar.add_original(Cookie::new("dashboard_session", value));
        let opened = jar.private(&Key::from(&key)).get("dashboard_session").expect("the cookie opens with the key");
        opened.value().to_owned()
    }

    pub async fn create_user(&self, name: &str, role: users::Role) -> users::User {
        let name = name.to_owned();
        db::run(&self.pool, move |conn| Ok(users::create(conn, &name, password_hash(), role)?)).await.unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.me().get(path).await
    }

    pub async fn login(&self, username: &str, password: &str) -> reqwest::Response {
        self.me().login(username, password).await
    }

    pub async fn session_rows(&self) -> i64 {
        db::run(&self.pool, |conn| Ok(db::sessions::count_all(conn)?)).await.unwrap()
    }

    /// Runs SQL-free diesel code against the app's database.
    pub async fn with_db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut db::DbConn) -> QueryResult<T> + Send + 'static,
    ) -> T {
        db::run(&self.pool, move |conn| Ok(f(conn)?)).await.unwrap()
    }

    /// Signs `user` in through the accounts service, as `POST /login` does after the password check
    /// (for tests that drive the session store directly); returns the cookie's session key.
    pub async fn sign_in_directly(
        &self,
        user: &users::User,
        timeouts: dashboard::session::Timeouts,
    ) -> actix_session::storage::SessionKey {
        use secrecy::ExposeSecret;
        let token = dashboard::session::NewToken::new("{}".into());
        let sign_in = dashboard::accounts::PasswordSignIn {
            user_id: user.id.clone(),
            verified_hash: user.password_hash.clone(),
            rehash: None,
            throttle_key: "u:test".into(),
            address_key: None,
            trusted_browser: None,
        };
        let session = dashboard::accounts::NewSession {
            token: token.row.clone(),
            ip: "127.0.0.1".into(),
            user_agent: String::new(),
            cloud: None,
            timeouts,
            now: self.clock.now_ms(),
            auth_method: dashboard::accounts::AuthMethod::Password,
            dbsc_challenge: None,
        };
        self.with_db(move |c| Ok(dashboard::accounts::sign_in(c, &sign_in, &session).unwrap())).await;
        actix_session::storage::SessionKey::try_from(token.secret().expose_secret().to_owned()).unwrap()
    }

    /// Moves every session's expiry `ms` milliseconds into the past (as if the time had passed).
    pub async fn expire_all_sessions(&self) {
        use dashboard::db::schema::sessions::dsl::*;
        let past = dashboard::util::now_ms() - 1;
        self.with_db(move |c| diesel::update(sessions).set(idle_expires_at.eq(past)).execute(c)).await;
    }
}

impl Browser {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    /// GETs `page`, then POSTs `fields` plus that page's CSRF token to `action`.
    pub async fn submit(&self, page: &str, action: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let html = self.get(page).await.text().await.unwrap();
        let token = csrf_from(&html);
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf_token", &token));
        self.client.post(self.url(action)).form(&form).send().await.expect("POST")
    }

    pub async fn login(&self, username: &str, password: &str) -> reqwest::Response {
        self.submit("/login", "/login", &[("username", username), ("password", password)]).await
    }

    /// Like [`Browser::submit`], but the POST runs as its own task (to be raced against something
    /// else); the page is fetched first.
    pub async fn submit_in_background(
        &self,
        page: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> tokio::task::JoinHandle<reqwest::Response> {
        let html = self.get(page).await.text().await.unwrap();
        let mut form: Vec<(String, String)> = fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        form.push(("csrf_token".into(), csrf_from(&html)));
        let request = self.client.post(self.url(action)).form(&form);
        tokio::spawn(async move { request.send().await.expect("POST") })
    }

    pub async fn logout(&self) -> reqwest::Response {
        self.submit("/", "/logout", &[]).await
    }

    /// The session cookie's value, if the jar holds one.
    pub fn session_cookie(&self) -> Option<String> {
        use reqwest::cookie::CookieStore;
        let header = self.jar.cookies(&self.address.parse().unwrap())?;
        header.to_str().ok()?.split("; ").find_map(|pair| pair.strip_prefix("dashboard_session=").map(str::to_owned))
    }

    /// The value of the cookie `name`, if the jar holds one.
    pub fn cookie(&self, name: &str) -> Option<String> {
        use reqwest::cookie::CookieStore;
        let header = self.jar.cookies(&self.address.parse().unwrap())?;
        let prefix = format!("{name}=");
        header.to_str().ok()?.split("; ").find_map(|pair| pair.strip_prefix(prefix.as_str()).map(str::to_owned))
    }

    /// Sets the cookie `name` (to copy one from another browser).
    pub fn set_cookie(&self, name: &str, value: &str) {
        self.jar.add_cookie_str(&format!("{name}={value}; Path=/"), &self.address.parse().unwrap());
    }

    /// Replaces the session cookie (to replay an old one, or forge one).
    pub fn set_session_cookie(&self, value: &str) {
        self.jar.add_cookie_str(&format!("dashboard_session={value}; Path=/"), &self.address.parse().unwrap());
    }
}

pub fn location(res: &reqwest::Response) -> String {
    res.headers().get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

/// Stops a server started as a child process the way an operator does (SIGTERM) and waits for it:
/// it finishes what is in flight and has written its log when this returns (no sleep needed).
pub fn stop_gracefully(child: &mut std::process::Child) {
    // SAFETY: kill only sends a signal to the child we started.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let _ = child.wait();
}

/// The path and query of a printed link (`http://localhost:PORT/setup?token=…` → `/setup?token=…`),
/// whichever host the server named.
pub fn link_path(link: &str) -> String {
    let url = reqwest::Url::parse(link).expect("a printed link is a URL");
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}
