//! The Prometheus metrics on their own listener (`DASHBOARD_METRICS_LISTEN`), and never on the main
//! one. The recorder is global to the test process (apps of other tests running meanwhile record
//! into it too), so the checks are on how much a counter grew, at least.

use std::collections::BTreeMap;
use std::time::Duration;

use dashboard::cloud::gateway;
use dashboard::cloud::secrets::Credentials;
use dashboard::db::{self, users};
use dashboard::session::pruner;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::both_databases;
use crate::helpers::{location, spawn_app_with, DbKind, TestApp, TestDb, PASSWORD};

both_databases!(
    the_metrics_listener_counts_requests_sign_ins_and_the_work_behind_them,
    the_main_listener_answers_metrics_like_any_unknown_protected_path,
);

/// One scrape: every sample, as (name, labels) → value.
struct Scrape(Vec<(String, BTreeMap<String, String>, f64)>);

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("NAME{LABELS} VALUE");
                let (name, labels) = match series.split_once('{') {
                    Some((name, rest)) => (name, rest.trim_end_matches('}')),
                    None => (series, ""),
                };
                let labels = labels
                    .split("\",")
                    .filter(|l| !l.is_empty())
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').expect("label=value");
                        (k.to_owned(), v.trim_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels, value.parse::<f64>().expect("a number"))
            })
            .collect();
        Scrape(samples)
    }

    /// The sum over the samples of `name` that carry all of `labels` (0 when there are none).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
            .map(|(_, _, v)| v)
            .sum()
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _, _)| n == name)
    }
}

async fn scrape(app: &TestApp) -> Scrape {
    let port = app.metrics_port.expect("the metrics listener is on");
    let res = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.unwrap();
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    Scrape::parse(&res.text().await.unwrap())
}

async fn spawn_with_metrics(kind: DbKind) -> TestApp {
    spawn_app_with(TestDb::new(kind), |s| {
        s.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        s.sign_in.max_failures = 2;
    })
    .await
}

async fn the_metrics_listener_counts_requests_sign_ins_and_the_work_behind_them(kind: DbKind) {
    let app = spawn_with_metrics(kind).await;
    app.create_user("alice", users::Role::User).await;
    app.create_user("bob", users::Role::User).await;
    let before = scrape(&app).await;

    // A right sign-in, pages; a wrong one; bob locked out by two wrong ones, then refused.
    assert_eq!(app.login("alice", PASSWORD).await.status(), 303);
    for _ in 0..3 {
        assert_eq!(app.get("/").await.status(), 200);
    }
    assert_eq!(app.get("/account/sessions").await.status(), 200);
    let other = app.browser();
    assert_eq!(other.login("alice", "not the password at all").await.status(), 401);
    assert_eq!(other.login("bob", "wrong password number one").await.status(), 401);
    assert_eq!(other.login("bob", "wrong password number two").await.status(), 401);
    assert_eq!(other.login("bob", PASSWORD).await.status(), 429);
    // An expired session pruned; a failing statement; gateway token requests, good and bad.
    let expired = app.browser();
    assert_eq!(expired.login("alice", PASSWORD).await.status(), 303);
    app.with_db(|c| {
        use dashboard::db::schema::sessions::dsl::*;
        use diesel::prelude::*;
        diesel::update(sessions).set(idle_expires_at.eq(1)).execute(c)?;
        Ok(())
    })
    .await;
    let pruned = db::run(&app.pool, |c| pruner::prune_expired(c, || {})).await.unwrap();
    assert_eq!(pruned, 2);
    let failed = db::run(&app.pool, |c| {
        use diesel::RunQueryDsl;
        Ok(diesel::sql_query("SELECT no_such_column FROM sessions").execute(c)?)
    })
    .await;
    assert!(failed.is_err());
    let gateway_ok = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"access_token":"t","expires_in":300}"#))
        .mount(&gateway_ok)
        .await;
    let gateway_down = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(503)).mount(&gateway_down).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let creds = Credentials { client_id: "id".into(), client_secret: "secret".to_owned().into() };
    for server in [&gateway_ok, &gateway_down] {
        let url = url::Url::parse(&format!("{}/token", server.uri())).unwrap();
        let _ = gateway::request_token(&http, &url, &creds, users::Role::User).await;
    }

    let after = scrape(&app).await;
    let grew = |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);

    // Requests by route pattern (not path) and status, with latency buckets.
    assert!(grew("dashboard_http_requests_total", &[("method", "GET"), ("route", "/"), ("status", "200")]) >= 3.0);
    assert!(
        grew("dashboard_http_requests_total", &[("method", "POST"), ("route", "/login"), ("status", "303")]) >= 2.0
    );
    assert!(
        grew("dashboard_http_requests_total", &[("method", "POST"), ("route", "/login"), ("status", "401")]) >= 3.0
    );
    assert!(
        grew("dashboard_http_requests_total", &[("method", "POST"), ("route", "/login"), ("status", "429")]) >= 1.0
    );
    let route = [("method", "GET"), ("route", "/")];
    assert!(grew("dashboard_http_request_duration_seconds_count", &route) >= 3.0);
    let bucket = |le: &str| {
        let labels = [route[0], route[1], ("le", le)];
        assert!(
            after.0.iter().any(|(n, l, _)| n == "dashboard_http_request_duration_seconds_bucket"
                && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))),
            "no bucket le={le}"
        );
        after.get("dashboard_http_request_duration_seconds_bucket", &labels)
    };
    let (fast, slow, all) = (bucket("0.001"), bucket("10"), bucket("+Inf"));
    assert!(fast <= slow && slow <= all, "{fast} {slow} {all}");
    assert_eq!(all, after.get("dashboard_http_request_duration_seconds_count", &route));

    // Sign-ins by outcome, lockouts.
    assert!(grew("dashboard_sign_ins_total", &[("outcome", "success")]) >= 2.0);
    assert!(grew("dashboard_sign_ins_total", &[("outcome", "wrong")]) >= 3.0);
    assert!(grew("dashboard_sign_ins_total", &[("outcome", "locked")]) >= 1.0);
    assert!(
        after.has("dashboard_sign_ins_total")
            && after.0.iter().any(|(n, l, _)| n == "dashboard_sign_ins_total"
                && l.get("outcome").map(String::as_str) == Some("second_factor_failed"))
    );
    assert!(grew("dashboard_lockouts_total", &[("what", "username")]) >= 1.0);

    // The work behind them: hashing, session lookups, pruning, database errors, the gateway.
    assert!(grew("dashboard_password_hash_wait_seconds_count", &[]) >= 5.0);
    assert!(after.has("dashboard_password_hash_queue_depth"));
    assert!(grew("dashboard_session_lookup_batch_size_count", &[]) >= 4.0);
    assert!(grew("dashboard_session_lookup_batch_size_sum", &[]) >= 4.0);
    assert!(grew("dashboard_pruned_rows_total", &[("table", "sessions")]) >= 2.0);
    assert!(grew("dashboard_database_errors_total", &[("kind", "query")]) >= 1.0);
    assert!(grew("dashboard_cloud_token_requests_total", &[("result", "success")]) >= 1.0);
    assert!(grew("dashboard_cloud_token_requests_total", &[("result", "unavailable")]) >= 1.0);
    assert!(grew("dashboard_cloud_token_request_duration_seconds_count", &[]) >= 2.0);

    // Live sessions are counted at the scrape (scrapes take turns, so this one renders its own count):
    // none after the prune, then one.
    assert_eq!(scrape(&app).await.get("dashboard_sessions_live", &[]), 0.0);
    assert_eq!(app.login("alice", PASSWORD).await.status(), 303);
    assert_eq!(scrape(&app).await.get("dashboard_sessions_live", &[]), 1.0);
}

async fn the_main_listener_answers_metrics_like_any_unknown_protected_path(kind: DbKind) {
    let app = spawn_with_metrics(kind).await;
    app.create_user("alice", users::Role::User).await;

    // Signed out: the same redirect to sign in as any unknown path.
    for path in ["/metrics", "/no-such-page"] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 303, "{path}");
        let encoded = path.replace('/', "%2F");
        assert_eq!(location(&res), format!("/login?next={encoded}"));
    }
    // Signed in: a 404 page, not the metrics.
    assert_eq!(app.login("alice", PASSWORD).await.status(), 303);
    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 404);
    let body = res.text().await.unwrap();
    assert!(!body.contains("dashboard_http_requests_total"));

    // The metrics listener serves /metrics and nothing else; unknown paths there are labelled as
    // such, never by their raw path.
    let port = app.metrics_port.unwrap();
    let other = reqwest::get(format!("http://127.0.0.1:{port}/")).await.unwrap();
    assert_eq!(other.status(), 404);
    let text = scrape(&app).await;
    assert!(!text.0.iter().any(|(_, l, _)| l.get("route").is_some_and(|r| r.contains("no-such-page"))));
    assert!(text.get("dashboard_http_requests_total", &[("route", "unmatched")]) >= 1.0);
}
