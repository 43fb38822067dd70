//! The security headers of every response, as one prebuilt set: the header names and values are
//! made once per worker, and each response gets room for all of them at once before they are added
//! (`DefaultHeaders` grew the response's header map as it inserted them one by one). A header the
//! response already has is kept (the `/cloud` sandbox policy replaces the dashboard's this way).

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::Error;

/// The dashboard's policy: scripts, styles and forms from this origin only, no framing, no
/// sniffing, no referrer to other origins, no powerful features.
const HEADERS: [(&str, &str); 5] = [
    (
        "content-security-policy",
        "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("x-frame-options", "DENY"),
    ("permissions-policy", "camera=(), microphone=(), geolocation=(), payment=()"),
];

/// Under `https://` public URLs only.
const HSTS: (&str, &str) = ("strict-transport-security", "max-age=31536000; includeSubDomains");

/// The middleware (built per worker: it holds an `Rc`).
#[derive(Clone)]
pub struct SecurityHeaders {
    headers: Rc<[(HeaderName, HeaderValue)]>,
}

impl SecurityHeaders {
    /// The set for this server: with `Strict-Transport-Security` when `secure`.
    pub fn new(secure: bool) -> Self {
        let headers = HEADERS
            .iter()
            .chain(secure.then_some(&HSTS))
            .map(|(name, value)| (HeaderName::from_static(name), HeaderValue::from_static(value)))
            .collect();
        Self { headers }
    }
}

impl<S, B> Transform<S, ServiceRequest> for SecurityHeaders
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    S::Future: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = SecurityHeadersMiddleware<S>;
    type InitError = ();
    type Future = std::future::Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        std::future::ready(Ok(SecurityHeadersMiddleware { service, headers: self.headers.clone() }))
    }
}

pub struct SecurityHeadersMiddleware<S> {
    service: S,
    headers: Rc<[(HeaderName, HeaderValue)]>,
}

impl<S, B> Service<ServiceRequest> for SecurityHeadersMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    S::Future: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = WithHeaders<S::Future>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        WithHeaders { fut: self.service.call(req), headers: self.headers.clone() }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's response, with the headers added.
    pub struct WithHeaders<F> {
        #[pin]
        fut: F,
        headers: Rc<[(HeaderName, HeaderValue)]>,
    }
}

impl<F, B> Future for WithHeaders<F>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = ready!(this.fut.poll(cx))?;
        let headers = res.headers_mut();
        headers.reserve(this.headers.len());
        for (name, value) in this.headers.iter() {
            if !headers.contains_key(name) {
                headers.insert(name.clone(), value.clone());
            }
        }
        Poll::Ready(Ok(res))
    }
}

#[cfg(test)]
mod tests {
    use actix_web::{test, web, App, HttpResponse};

    use super::SecurityHeaders;

    #[actix_web::test]
    async fn every_response_gets_the_set_and_keeps_its_own_values() {
        let app = test::init_service(
            App::new().wrap(SecurityHeaders::new(true)).route("/", web::get().to(HttpResponse::Ok)).route(
                "/own",
                web::get()
                    .to(|| async { HttpResponse::Ok().insert_header(("Content-Security-Policy", "sandbox")).finish() }),
            ),
        )
        .await;
        let res = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
        for (name, value) in super::HEADERS.iter().chain([&super::HSTS]) {
            assert_eq!(res.headers().get(*name).unwrap(), value, "{name}");
        }
        let res = test::call_service(&app, test::TestRequest::get().uri("/own").to_request()).await;
        assert_eq!(res.headers().get("content-security-policy").unwrap(), "sandbox");
        assert_eq!(res.headers().get("x-frame-options").unwrap(), "DENY");

        let plain = test::init_service(
            App::new().wrap(SecurityHeaders::new(false)).route("/", web::get().to(HttpResponse::Ok)),
        )
        .await;
        let res = test::call_service(&plain, test::TestRequest::get().uri("/").to_request()).await;
        assert!(res.headers().get("strict-transport-security").is_none());
    }
}
