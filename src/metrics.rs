//! Prometheus metrics, recorded with the `metrics` crate and served by a listener of their own
//! (`DASHBOARD_METRICS_LISTEN`, `GET /metrics`), never by the main one: the numbers tell an outsider
//! how many people sign in and fail, which is for the operator's network only.
//!
//! Every metric is recorded through one function of this module, so each name is written once (the
//! docs/metrics.md lists them). Without a metrics listener no recorder is installed and
//! every function here is a no-op; the request middleware then returns before reading a clock.
//!
//! Labels are bounded: routes are the route table's patterns (`/account/sessions/{id}/revoke`), never
//! raw paths, and every other label takes a fixed set of values.

use std::net::TcpListener;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ::metrics::{counter, gauge, histogram};
use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, App, HttpResponse, HttpServer};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::clock::Clock;

/// The installed recorder's handle; unset when metrics are off.
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets (seconds): a cached page takes about a millisecond, a sign-in (argon2) tens to
/// hundreds, a cloud call up to its 10 s timeout.
const SECONDS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Session lookup batch sizes: 1 to the lookup thread's maximum of 128.
const BATCH_SIZES: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// How a sign-in attempt ended (`dashboard_sign_ins_total{outcome}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignIn {
    /// A session was created.
    Success,
    /// Wrong username or password (unknown users and disabled accounts included).
    Wrong,
    /// Refused without checking: the username or the address is locked.
    Locked,
    /// The password was right, the second factor was not.
    SecondFactorFailed,
    /// The password was right but the sign-in could not complete: required cloud access was
    /// unavailable, or the account changed while the password was checked.
    Refused,
}

impl SignIn {
    pub const ALL: [SignIn; 5] =
        [SignIn::Success, SignIn::Wrong, SignIn::Locked, SignIn::SecondFactorFailed, SignIn::Refused];

    pub fn as_str(self) -> &'static str {
        match self {
            SignIn::Success => "success",
            SignIn::Wrong => "wrong",
            SignIn::Locked => "locked",
            SignIn::SecondFactorFailed => "second_factor_failed",
            SignIn::Refused => "refused",
        }
    }
}

/// Installs the Prometheus recorder for this process (once; later calls return the same handle, so
/// several apps in one test process share it) and starts its upkeep.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    // One installation at a time: two first calls at once would otherwise see the loser's
    // `set_global_recorder` fail before the winner had set `HANDLE`.
    static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _installing = INSTALLING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)?
        .set_buckets_for_metric(Matcher::Full("dashboard_session_lookup_batch_size".into()), BATCH_SIZES)?
        .build_recorder();
    let handle = recorder.handle();
    // Losing a race with another caller leaves the other one's recorder in place: use its handle.
    if ::metrics::set_global_recorder(recorder).is_ok() {
        let _ = HANDLE.set(handle);
        describe();
    }
    let handle = HANDLE.get().cloned().ok_or_else(|| anyhow::anyhow!("another metrics recorder is installed"))?;
    // Counters that may stay at zero for long are shown from the start, so a dashboard or an alert
    // can tell "none yet" from "not exported".
    for outcome in SignIn::ALL {
        counter!("dashboard_sign_ins_total", "outcome" => outcome.as_str()).increment(0);
    }
    for what in ["username", "client_address"] {
        counter!("dashboard_lockouts_total", "what" => what).increment(0);
    }
    for kind in ["unavailable", "query"] {
        counter!("dashboard_database_errors_total", "kind" => kind).increment(0);
    }
    Ok(handle)
}

fn describe() {
    use ::metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!("dashboard_http_requests_total", "HTTP requests answered, by method, route pattern and status");
    describe_histogram!(
        "dashboard_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer a request, by method and route pattern"
    );
    describe_gauge!("dashboard_sessions_live", "Live (unexpired) sessions, counted at each scrape");
    describe_counter!("dashboard_sign_ins_total", "Sign-in attempts by outcome");
    describe_counter!("dashboard_lockouts_total", "Locks set by failed sign-ins, by what was locked");
    describe_gauge!("dashboard_password_hash_queue_depth", "Password hashing jobs waiting for a hashing thread");
    describe_histogram!(
        "dashboard_password_hash_wait_seconds",
        Unit::Seconds,
        "Time a password hashing job waited for a thread"
    );
    describe_histogram!("dashboard_session_lookup_batch_size", "Session lookups answered by one database query");
    describe_counter!("dashboard_pruned_rows_total", "Rows deleted by pruning, by table");
    describe_counter!("dashboard_database_errors_total", "Failed database calls, by kind");
    describe_counter!("dashboard_cloud_token_requests_total", "Gateway token requests, by result");
    describe_gauge!("dashboard_mail_outbox_depth", "Mails waiting in the outbox, counted at each scrape");
    describe_counter!("dashboard_mail_total", "Mail sending attempts, by result (sent, failed, expired)");
    describe_histogram!(
        "dashboard_cloud_token_request_duration_seconds",
        Unit::Seconds,
        "Time of a gateway token request"
    );
}

/// Whether metrics are being recorded (a recorder is installed).
pub fn enabled() -> bool {
    HANDLE.get().is_some()
}

/// Middleware: counts and times every request by method, route pattern and status.
pub async fn record_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if !enabled() {
        return next.call(req).await;
    }
    let start = Instant::now();
    let method = method_label(req.method());
    let res = next.call(req).await;
    let (route, status) = match &res {
        Ok(res) => (res.request().match_pattern(), res.status().as_u16()),
        Err(e) => (None, e.as_response_error().status_code().as_u16()),
    };
    // A path no route matches is labelled as such: raw paths would grow the label set without bound.
    let route = route.filter(|r| !r.is_empty()).unwrap_or_else(|| "unmatched".to_owned());
    histogram!("dashboard_http_request_duration_seconds", "method" => method, "route" => route.clone())
        .record(start.elapsed().as_secs_f64());
    counter!("dashboard_http_requests_total", "method" => method, "route" => route, "status" => status.to_string())
        .increment(1);
    res
}

/// The method as a label: the standard ones by name, anything else as `other`.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// A sign-in attempt ended so. (The second-factor step calls this with [`SignIn::SecondFactorFailed`]
/// when a code or passkey is refused, and with [`SignIn::Success`] when it creates the session.)
pub fn sign_in(outcome: SignIn) {
    counter!("dashboard_sign_ins_total", "outcome" => outcome.as_str()).increment(1);
}

/// A failed attempt locked a counter: `what` is the audit log's `username` or `client address`.
pub fn lockout(what: &str) {
    let what = if what == "username" { "username" } else { "client_address" };
    counter!("dashboard_lockouts_total", "what" => what).increment(1);
}

/// Password hashing jobs now waiting for a thread.
pub fn hash_queue_depth(waiting: usize) {
    gauge!("dashboard_password_hash_queue_depth").set(waiting as f64);
}

/// A hashing job waited this long for a thread.
pub fn hash_wait(waited: Duration) {
    histogram!("dashboard_password_hash_wait_seconds").record(waited.as_secs_f64());
}

/// One query of the session lookup thread answered `n` requests.
pub fn lookup_batch(n: usize) {
    histogram!("dashboard_session_lookup_batch_size").record(n as f64);
}

/// Counts mail sending attempts by result (`sent`, `failed` to be retried, `expired` unsent).
pub fn mail_sent(result: &'static str, n: usize) {
    counter!("dashboard_mail_total", "result" => result).increment(n as u64);
}

/// Pruning deleted `n` rows of `table` (`sessions`, `auth_events`, `login_throttle`).
pub fn pruned(table: &'static str, n: usize) {
    counter!("dashboard_pruned_rows_total", "table" => table).increment(n as u64);
}

/// A database call failed: `unavailable` (no connection, or it broke) or `query` (the database
/// refused a statement).
pub fn database_error(kind: &'static str) {
    counter!("dashboard_database_errors_total", "kind" => kind).increment(1);
}

/// A gateway token request ended with `result` (`success`, `rejected`, `unavailable`) after `took`.
pub fn cloud_token(result: &'static str, took: Duration) {
    counter!("dashboard_cloud_token_requests_total", "result" => result).increment(1);
    histogram!("dashboard_cloud_token_request_duration_seconds").record(took.as_secs_f64());
}

/// Where a scrape counts the live sessions. Implemented by the database pool (`crate::db`); this
/// module names no database type, so the database layer can record its errors here without an
/// import cycle.
pub trait LiveSessions: Clone + Send + Sync + 'static {
    /// The sessions live at `now_ms` (one indexed count).
    fn count_live(&self, now_ms: i64) -> impl std::future::Future<Output = anyhow::Result<i64>> + Send;
    /// The mail waiting in the outbox.
    fn outbox_depth(&self) -> impl std::future::Future<Output = anyhow::Result<i64>> + Send;
}

/// What the metrics listener needs to answer a scrape.
struct Scrape<S> {
    handle: PrometheusHandle,
    sessions: S,
    clock: Clock,
}

/// The metrics listener: `GET /metrics` only (anything else `404`), one worker. It does not stop on
/// signals itself; the application stops it when the main server stops.
pub fn server<S: LiveSessions>(
    listener: TcpListener,
    handle: PrometheusHandle,
    sessions: S,
    clock: Clock,
) -> std::io::Result<Server> {
    let scrape = web::Data::new(Scrape { handle, sessions, clock });
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(scrape.clone())
            .route("/metrics", web::get().to(render::<S>))
            .default_service(web::to(HttpResponse::NotFound))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run())
}

/// One scrape: the live sessions are counted now (one indexed count; when the database does not
/// answer, the gauge keeps its last value and the rest is still served), then everything is rendered.
async fn render<S: LiveSessions>(scrape: web::Data<Scrape<S>>) -> HttpResponse {
    // One scrape at a time per process (the recorder is the process's): the gauge a scrape sets is
    // the one it renders, and concurrent scrapers do not each pay for a count.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let now = scrape.clock.now_ms();
    match scrape.sessions.count_live(now).await {
        Ok(n) => gauge!("dashboard_sessions_live").set(n as f64),
        Err(e) => tracing::warn!(error = %e, "metrics: cannot count live sessions"),
    }
    match scrape.sessions.outbox_depth().await {
        Ok(n) => gauge!("dashboard_mail_outbox_depth").set(n as f64),
        Err(e) => tracing::warn!(error = %e, "metrics: cannot count the mail outbox"),
    }
    scrape.handle.run_upkeep();
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"))
        .body(scrape.handle.render())
}
