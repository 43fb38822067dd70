//! `/healthz` (the process is up) and `/readyz` (the database answers).

use std::time::Duration;

use actix_web::{http::StatusCode, web, HttpResponse};

use crate::db::{self, Pool};
use crate::error::error_page;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body("ok")
}

pub async fn readyz(pool: web::Data<Pool>) -> HttpResponse {
    let check = db::run(&pool, db::ping);
    match tokio::time::timeout(Duration::from_secs(3), check).await {
        Ok(Ok(())) => HttpResponse::Ok().content_type("text/plain; charset=utf-8").body("ready"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            error_page(StatusCode::SERVICE_UNAVAILABLE, Some("The database is not answering."))
        }
        Err(_) => error_page(StatusCode::SERVICE_UNAVAILABLE, Some("The database is not answering.")),
    }
}
