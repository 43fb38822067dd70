//! `/healthz` (the process is up) and `/readyz` (the database answers).

use std::time::Duration;

use actix_web::{http::StatusCode, HttpResponse};

use crate::db;
use crate::error::error_page;
use crate::state::State;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body("ok")
}

pub async fn readyz(state: State) -> HttpResponse {
    let check = db::run(&state.pool, db::ping);
    match tokio::time::timeout(Duration::from_secs(3), check).await {
        Ok(Ok(())) => HttpResponse::Ok().content_type("text/plain; charset=utf-8").body("ready"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            error_page(StatusCode::SERVICE_UNAVAILABLE, Some("The database is not answering."))
        }
        Err(_) => error_page(StatusCode::SERVICE_UNAVAILABLE, Some("The database is not answering.")),
    }
}
