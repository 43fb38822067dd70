//! Logging: `tracing` to standard error, text or JSON, and one line per request.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use tracing_subscriber::EnvFilter;

use crate::auth::CurrentUser;
use crate::config::LogFormat;

/// Installs the global subscriber (once; later calls are ignored, which tests rely on).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// For tests: the same text logs, written through the test harness's capture (`print!`), so a
/// passing test shows none of them and a failing one shows its own. Threads a test starts (the
/// server's workers among them) inherit its capture. Installed once; later calls are ignored.
pub fn init_for_tests() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().with_ansi(false).try_init();
}

/// One line per request: method, path (never the query, which may hold a setup token), status,
/// latency and the public session id — never the cookie or its token.
pub async fn log_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if !tracing::enabled!(target: "dashboard::request", tracing::Level::INFO) {
        return next.call(req).await;
    }
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.path().to_owned();
    let res = next.call(req).await?;
    let session = res.request().extensions().get::<CurrentUser>().map(|u| u.session_id.clone());
    tracing::info!(
        target: "dashboard::request",
        method = %method,
        path = %path,
        status = res.status().as_u16(),
        latency_ms = (start.elapsed().as_secs_f64() * 10_000.0).round() / 10.0,
        session = session.as_deref().unwrap_or("-"),
        "request"
    );
    Ok(res)
}
