//! Static files, compiled into the binary so it runs from any directory.

use actix_web::{http::header, web, HttpResponse};

use crate::error::AppError;

const FILES: &[(&str, &str, &[u8])] = &[
    ("style.css", "text/css; charset=utf-8", include_bytes!("../../static/style.css")),
    // The browser half of the passkey ceremonies (the pages work without it, but for passkeys).
    ("passkeys.js", "text/javascript; charset=utf-8", include_bytes!("../../static/passkeys.js")),
    // Times in the viewer's time zone (the pages show UTC without it).
    ("time.js", "text/javascript; charset=utf-8", include_bytes!("../../static/time.js")),
    ("favicon.svg", "image/svg+xml", include_bytes!("../../static/favicon.svg")),
];

/// `GET /favicon.ico`: browsers ask for it whatever the page links, so it is answered (with the SVG icon,
/// which they accept under that name) instead of a 404 in the log on every first visit.
pub async fn favicon() -> Result<HttpResponse, AppError> {
    serve(web::Path::from("favicon.svg".to_owned())).await
}

pub async fn serve(file: web::Path<String>) -> Result<HttpResponse, AppError> {
    let (_, content_type, body) = FILES.iter().find(|(name, _, _)| *name == file.as_str()).ok_or(AppError::NotFound)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, *content_type))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(*body))
}
