//! One error type for handlers, and the HTML error pages.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::{header, StatusCode};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

/// What a handler can fail with. Each becomes a page with the right status; causes of internal
/// errors are logged, never shown.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("sign-in required")]
    Unauthenticated,
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("payload too large")]
    PayloadTooLarge,
    /// The password hasher's queue is full ([`crate::auth::password::Busy`]): a quick `503`.
    #[error("busy")]
    Busy,
    /// The database could not be reached: `503` with `Retry-After`.
    #[error("database unavailable")]
    Unavailable,
    #[error(transparent)]
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for AppError {
    fn from(e: anyhow::Error) -> Self {
        if e.is::<crate::db::Unavailable>() {
            AppError::Unavailable
        } else if e.is::<crate::auth::password::Busy>() {
            AppError::Busy
        } else {
            AppError::Internal(e)
        }
    }
}

/// Seconds a client is asked to wait when the hasher is busy.
pub const BUSY_RETRY_AFTER_SECS: u32 = 1;

/// The `503` page while the database is unavailable (logged once per outage, not per request).
pub fn unavailable_page() -> HttpResponse {
    let mut page = error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        Some("The dashboard cannot reach its database right now. Please try again in a moment."),
    );
    page.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
    page
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        AppError::Internal(e.into())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: &'a str,
}

/// The error page for `status`, with `message` (or the status's standard wording).
pub fn error_page(status: StatusCode, message: Option<&str>) -> HttpResponse {
    let (title, default_message) = match status.as_u16() {
        400 => ("Bad request", "The request could not be understood."),
        401 => ("Sign-in required", "You need to sign in to see this page."),
        403 => ("Forbidden", "You are not allowed to do that."),
        404 => ("Page not found", "There is no page at this address."),
        405 => ("Method not allowed", "This page does not accept that kind of request."),
        413 => ("Request too large", "What you sent is larger than this server accepts."),
        414 => ("Address too long", "The address of this request is longer than this server accepts."),
        429 => ("Too many requests", "Please wait a moment and try again."),
        431 => ("Headers too large", "The request's headers are larger than this server accepts."),
        503 => ("Unavailable", "This service is unavailable right now. Please try again shortly."),
        s if s >= 500 => {
            ("Something went wrong", "The server could not complete the request. It has been logged; please try again.")
        }
        _ => ("Error", "The request could not be completed."),
    };
    let page = ErrorPage { status: status.as_u16(), title, message: message.unwrap_or(default_message) };
    let body = page.render().unwrap_or_else(|_| format!("{} {}", status.as_u16(), title));
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::Unauthenticated => StatusCode::SEE_OTHER,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Unavailable | AppError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        match self {
            AppError::Unauthenticated => HttpResponse::SeeOther().insert_header((header::LOCATION, "/login")).finish(),
            AppError::Forbidden(msg) | AppError::BadRequest(msg) => error_page(self.status_code(), Some(msg)),
            AppError::Unavailable => unavailable_page(),
            AppError::Busy => {
                let mut page = error_page(
                    self.status_code(),
                    Some("Too many sign-ins are being checked right now. Please try again in a moment."),
                );
                page.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(BUSY_RETRY_AFTER_SECS));
                page
            }
            AppError::Internal(cause) => {
                tracing::error!(error = %format!("{cause:#}"), "internal error");
                error_page(self.status_code(), None)
            }
            _ => error_page(self.status_code(), None),
        }
    }
}

/// Marks a deliberate JSON error answer (the passkey ceremonies' `{"error": "…"}`, read by their
/// script), which [`render_error_pages`] leaves alone. Nothing else is spared: actix's own errors
/// and whatever the Cloud API answers still become pages.
pub struct JsonAnswer;

/// For `ErrorHandlers`: any 4xx/5xx that is not already an HTML page or a [`JsonAnswer`] (actix's own
/// plain-text errors: a bad form, an oversize body, an unknown method) becomes one, so no response
/// shows internals.
pub fn render_error_pages<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let is_json_answer = res.response().extensions().get::<JsonAnswer>().is_some();
    if is_html || is_json_answer || res.status().is_redirection() {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let (req, old) = res.into_parts();
    if let Some(err) = old.error() {
        tracing::debug!(error = %err, status = old.status().as_u16(), "request failed");
    }
    let mut page = error_page(old.status(), None);
    if let Some(allow) = old.headers().get(header::ALLOW) {
        page.headers_mut().insert(header::ALLOW, allow.clone());
    }
    Ok(ErrorHandlerResponse::Response(ServiceResponse::new(req, page).map_into_right_body()))
}
