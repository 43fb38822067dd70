//! The deployment of `docs/deploy.md`, for real: nginx terminating TLS on 127.0.0.1 and balancing
//! round-robin over two `dashboard` processes on one fresh PostgreSQL database, with
//! `DASHBOARD_PUBLIC_URL=https://…` and `DASHBOARD_TRUSTED_PROXIES=127.0.0.1`. nginx runs as a child
//! process with its own prefix in a temporary directory (never the system service), configured with
//! the `nginx` block of docs/deploy.md, so the documentation cannot drift from what is tested. The
//! client connects from 127.0.0.2 and sends an `X-Forwarded-For` of its own, which must not be
//! believed.
//!
//! Needs nginx, openssl and `TEST_DATABASE_URL`; reported as ignored when they were missing as the
//! tests were built (see `build.rs`), unless `DASHBOARD_REQUIRE_NGINX=1` (set by `.ci/run`).

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashboard::db::{self, schema, users};
use diesel::prelude::*;

use crate::helpers::{csrf_from, location, password_hash, stop_gracefully, DbKind, TestDb, PASSWORD};

/// What the client claims to be; the dashboard must record 127.0.0.2 instead.
const SPOOFED: &str = "203.0.113.9";
const CLIENT: &str = "127.0.0.2";

/// The `nginx` code block of docs/deploy.md.
fn documented_site() -> String {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/deploy.md")).unwrap();
    let start = doc.find("```nginx\n").expect("docs/deploy.md has an nginx block") + "```nginx\n".len();
    doc[start..start + doc[start..].find("```").unwrap()].to_owned()
}

/// The documented site with this test's ports, addresses and certificate: each replaced text must
/// be in the document, so a change there that the test does not follow fails here.
fn site_for_test(upstreams: [u16; 2], https: u16, http: u16, dir: &Path) -> String {
    let mut site = documented_site();
    let replacements = [
        ("server 127.0.0.1:8081;", format!("server 127.0.0.1:{};", upstreams[0])),
        ("server 127.0.0.1:8082;", format!("server 127.0.0.1:{};", upstreams[1])),
        ("listen 443 ssl;", format!("listen 127.0.0.1:{https} ssl;")),
        ("listen 80;", format!("listen 127.0.0.1:{http};")),
        ("/etc/ssl/dashboard/fullchain.pem", dir.join("cert.pem").display().to_string()),
        ("/etc/ssl/dashboard/privkey.pem", dir.join("key.pem").display().to_string()),
    ];
    for (from, to) in replacements {
        assert!(site.contains(from), "docs/deploy.md's nginx block no longer contains `{from}`");
        site = site.replace(from, &to);
    }
    site
}

/// nginx's own frame around the site (Debian's nginx.conf gives it in production): everything in
/// the temporary directory, in the foreground, one process, so round-robin is strict alternation.
fn nginx_conf(site: &str, dir: &Path) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log notice;\n\
         events {{ worker_connections 128; }}\n\
         http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/client_body;\n  proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n{site}\n}}\n"
    )
}

fn nginx_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|d| d.join("nginx")).find(|p| p.is_file()));
    on_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx"))
}

fn run(program: &str, args: &[&str], dir: &Path) {
    let out = Command::new(program).args(args).current_dir(dir).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A throw-away CA and a certificate for 127.0.0.1 signed by it (rustls accepts no self-signed leaf).
fn make_certificate(dir: &Path) {
    std::fs::write(
        dir.join("leaf.ext"),
        "basicConstraints=critical,CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=dashboard test CA"]);
    run("openssl", &ca, dir);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend(["-keyout", "key.pem", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1"]);
    run("openssl", &csr, dir);
    let sign = [
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "1",
        "-extfile",
        "leaf.ext",
    ];
    run("openssl", &sign, dir);
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Child processes, stopped (SIGTERM, then waited for) however the test ends.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            stop_gracefully(child);
        }
    }
}

/// One `dashboard serve` behind the proxy; its JSON log goes to `log`.
struct Instance {
    port: u16,
    log: PathBuf,
}

impl Instance {
    /// The request lines of this instance's log: (method, path, status, public session id or `-`).
    fn requests(&self) -> Vec<(String, String, u64, String)> {
        let text = std::fs::read_to_string(&self.log).unwrap();
        text.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|v| v["target"] == "dashboard::request")
            .map(|v| {
                let f = &v["fields"];
                let s = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
                (s("method"), s("path"), f["status"].as_u64().unwrap_or_default(), s("session"))
            })
            .collect()
    }

    fn served(&self, method: &str, path: &str) -> bool {
        self.requests().iter().any(|(m, p, _, _)| m == method && p == path)
    }
}

/// Starts both instances at once on one database (they race for the migrations and the generated
/// cookie key, as a fleet starting together does), and waits for each to print its address.
fn start_instances(database_url: &str, public_url: &str, dir: &Path, children: &mut Children) -> [Instance; 2] {
    let mut started = Vec::new();
    for n in 0..2 {
        let log = dir.join(format!("instance{n}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_dashboard"))
            .arg("serve")
            .current_dir(dir) // no stray .env is read
            .env("DATABASE_URL", database_url)
            .env("DASHBOARD_LISTEN", "127.0.0.1:0")
            .env("DASHBOARD_PUBLIC_URL", public_url)
            .env("DASHBOARD_TRUSTED_PROXIES", "127.0.0.1")
            .env("DASHBOARD_PRUNE_INTERVAL", "off")
            .env("DASHBOARD_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env_remove("DASHBOARD_SECRET_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start dashboard");
        children.0.push(child);
        started.push((children.0.len() - 1, log));
    }
    started
        .into_iter()
        .map(|(i, log)| {
            let stdout = children.0[i].stdout.take().unwrap();
            let mut lines = BufReader::new(stdout).lines();
            let port = loop {
                let line = lines
                    .next()
                    .unwrap_or_else(|| panic!("instance exited: {}", std::fs::read_to_string(&log).unwrap()))
                    .unwrap();
                if let Some(addr) = line.strip_prefix("listening on http://") {
                    break addr.rsplit(':').next().unwrap().parse().unwrap();
                }
            };
            // Keep reading: a closed pipe would fail the instance's next line (the setup link).
            std::thread::spawn(move || lines.for_each(drop));
            Instance { port, log }
        })
        .collect::<Vec<_>>()
        .try_into()
        .ok()
        .unwrap()
}

/// Waits until nginx accepts connections (it has no "ready" line to read); fails if it exits.
fn wait_for_nginx(nginx: &mut Child, port: u16, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = nginx.try_wait() {
            panic!("nginx exited ({status}): {}", std::fs::read_to_string(dir.join("error.log")).unwrap_or_default());
        }
        assert!(Instant::now() < deadline, "nginx did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A browser on 127.0.0.2 that trusts the test CA and always claims another address.
fn browser(dir: &Path) -> (reqwest::Client, Arc<reqwest::cookie::Jar>) {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(dir.join("ca.pem")).unwrap()).unwrap();
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let mut spoof = reqwest::header::HeaderMap::new();
    spoof.insert("x-forwarded-for", SPOOFED.parse().unwrap());
    let client = reqwest::Client::builder()
        .local_address(CLIENT.parse::<IpAddr>().unwrap())
        .add_root_certificate(ca)
        .tls_built_in_root_certs(false)
        .default_headers(spoof)
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    (client, jar)
}

async fn get(client: &reqwest::Client, url: String) -> reqwest::Response {
    client.get(url).send().await.expect("GET through nginx")
}

/// GETs `page`, then POSTs `fields` with that page's CSRF token to `action`.
async fn submit(
    client: &reqwest::Client,
    base: &str,
    page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let res = get(client, format!("{base}{page}")).await;
    let status = res.status();
    let html = res.text().await.unwrap();
    assert!(status == 200 && html.contains("csrf_token"), "GET {page}: {status} {html}");
    let mut form = fields.to_vec();
    let token = csrf_from(&html);
    form.push(("csrf_token", &token));
    client.post(format!("{base}{action}")).form(&form).send().await.expect("POST through nginx")
}

/// `data-session-id` of the `<tr>` of /account/sessions that is (or is not) the current session.
fn session_id(html: &str, current: bool) -> String {
    html.split("<tr ")
        .skip(1)
        .find(|row| row.contains("data-current=\"true\"") == current && row.contains("data-session-id=\""))
        .and_then(|row| row.split("data-session-id=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .expect("a session row")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(dashboard_test_nginx),
    ignore = "nginx or openssl is not installed (Debian packages nginx, openssl; see tests/api/deploy.rs)"
)]
#[cfg_attr(all(dashboard_test_nginx, not(dashboard_test_postgres)), ignore = "TEST_DATABASE_URL is not set")]
async fn two_instances_behind_nginx_with_tls_act_as_one_and_see_the_real_client() {
    let db = TestDb::new(DbKind::Postgres);
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    make_certificate(dir);
    let (https, http) = (free_port(), free_port());
    let base = format!("https://127.0.0.1:{https}");

    let mut children = Children(Vec::new());
    let instances = start_instances(&db.url, &base, dir, &mut children);
    db::run(&db.pool(), |c| Ok(users::create(c, "alice", password_hash(), users::Role::Admin)?)).await.unwrap();

    let site = site_for_test([instances[0].port, instances[1].port], https, http, dir);
    std::fs::write(dir.join("nginx.conf"), nginx_conf(&site, dir)).unwrap();
    let error_log = dir.join("error.log");
    let prefix = format!("{}/", dir.display());
    let conf = dir.join("nginx.conf");
    let mut nginx = Command::new(nginx_binary())
        .args(["-p", &prefix, "-e", &error_log.display().to_string(), "-c", &conf.display().to_string()])
        .stdin(Stdio::null())
        .spawn()
        .expect("start nginx");
    wait_for_nginx(&mut nginx, https, dir);
    children.0.push(nginx);

    // Plain HTTP is sent to HTTPS.
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let res = plain.get(format!("http://127.0.0.1:{http}/account/sessions")).send().await.unwrap();
    assert_eq!(res.status(), 301);
    assert!(location(&res).starts_with("https://127.0.0.1"), "{}", location(&res));

    // Sign in: a Secure __Host- cookie, and HSTS.
    let (a, _) = browser(dir);
    let res = submit(&a, &base, "/login", "/login", &[("username", "alice"), ("password", PASSWORD)]).await;
    assert_eq!(res.status(), 303, "sign-in through nginx");
    assert_eq!(location(&res), "/");
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("__Host-dashboard_session="))
        .expect("a __Host-dashboard_session cookie");
    for attribute in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.split("; ").any(|a| a == attribute), "{attribute} missing: {cookie}");
    }
    assert!(!cookie.contains("Domain="), "{cookie}");
    let hsts = res.headers().get("strict-transport-security").expect("HSTS").to_str().unwrap();
    assert!(hsts.starts_with("max-age="), "{hsts}");

    // Pages, alternately from both instances: every one signed in, every one with HSTS.
    for path in ["/", "/account/sessions", "/admin/events", "/admin/sessions"] {
        let res = get(&a, format!("{base}{path}")).await;
        assert_eq!(res.status(), 200, "{path}");
        assert!(res.headers().contains_key("strict-transport-security"), "{path}");
    }
    let sessions_page = get(&a, format!("{base}/account/sessions")).await.text().await.unwrap();
    let a_id = session_id(&sessions_page, true);
    for instance in &instances {
        let signed_in =
            instance.requests().into_iter().filter(|(_, _, status, s)| *status == 200 && *s == a_id).count();
        assert!(
            signed_in >= 2,
            "instance on port {} served {signed_in} of alice's pages ({a_id}): {:?}",
            instance.port,
            instance.requests()
        );
    }

    // The client's own address, never the proxy's nor the one it claimed.
    assert!(sessions_page.contains(CLIENT), "the sessions page shows 127.0.0.2");
    assert!(!sessions_page.contains(SPOOFED), "the spoofed address is not believed");
    let events = get(&a, format!("{base}/admin/events")).await.text().await.unwrap();
    assert!(events.contains(CLIENT) && !events.contains(SPOOFED), "the audit log shows 127.0.0.2 only");
    let pool = db.pool();
    let (ips, event_ips) = db::run(&pool, |c| {
        let ips: Vec<String> = schema::sessions::table.select(schema::sessions::ip).load(c)?;
        let event_ips: Vec<Option<String>> =
            schema::auth_events::table.select(schema::auth_events::client_ip).load(c)?;
        Ok((ips, event_ips))
    })
    .await
    .unwrap();
    assert_eq!(ips, [CLIENT]);
    assert!(!event_ips.is_empty() && event_ips.iter().all(|ip| ip.as_deref() == Some(CLIENT)), "{event_ips:?}");

    // A second browser; alice ends its session from the first. The next request of the second,
    // on the other instance, is refused.
    let (b, _) = browser(dir);
    let res = submit(&b, &base, "/login", "/login", &[("username", "alice"), ("password", PASSWORD)]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(get(&b, format!("{base}/")).await.status(), 200);
    let page = get(&a, format!("{base}/account/sessions")).await.text().await.unwrap();
    let b_id = session_id(&page, false);
    let revoke = format!("/account/sessions/{b_id}/revoke");
    let res = submit(&a, &base, "/account/sessions", &revoke, &[]).await;
    assert_eq!(res.status(), 303, "revoke");
    let res = get(&b, format!("{base}/account/password")).await;
    assert_eq!(res.status(), 303, "the ended session is refused");
    assert!(location(&res).starts_with("/login?next="), "{}", location(&res));
    let revoked_by = instances.iter().position(|i| i.served("POST", &revoke)).expect("an instance ended the session");
    let refused_by = instances
        .iter()
        .position(|i| i.requests().iter().any(|(m, p, s, _)| m == "GET" && p == "/account/password" && *s == 303))
        .expect("an instance refused the ended session");
    assert_ne!(revoked_by, refused_by, "ended on one instance, refused on the other");

    // Sign out: the cookie is removed and the session is gone everywhere.
    let res = submit(&a, &base, "/", "/logout", &[]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login");
    for _ in 0..2 {
        assert_eq!(get(&a, format!("{base}/")).await.status(), 303, "signed out on both instances");
    }
    let left = db::run(&pool, |c| Ok(schema::sessions::table.count().get_result::<i64>(c)?)).await.unwrap();
    assert_eq!(left, 0);
    drop(children);
}
