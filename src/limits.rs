//! Request size bounds beyond actix's own (128 KiB of headers, 96 header lines): a page request has
//! no business with more, and refusing early keeps oversize input cheap. Form bodies are capped at
//! 16 KiB by the CSRF check and `FormConfig`.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;

/// The longest request target (path and query) accepted.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// The most header bytes (names and values) accepted.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

pub async fn bound_request_size(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let uri_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    let header_len: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
    let status = if uri_len > MAX_URI_BYTES {
        Some(StatusCode::URI_TOO_LONG)
    } else if header_len > MAX_HEADER_BYTES {
        Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
    } else {
        None
    };
    if let Some(status) = status {
        return Ok(req.into_response(crate::error::error_page(status, None)).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}
