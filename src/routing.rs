//! What a request is, decided once, the way the router decides it.
//!
//! Every check (the sign-in guard, the second-factor policy, re-authentication, CSRF, admin-only,
//! the `/cloud` sandbox) is a property of a route of the table, so it must apply to the route the
//! router runs, whatever the spelling of the path. Two things make that hold:
//!
//! - [`resolve`], the outermost middleware, first puts the path in normal form — every
//!   percent-escape of an unreserved character (`A–Z a–z 0–9 - . _ ~`) decoded once, so
//!   `/adm%69n/users` *is* `/admin/users`; `%2F` stays an escape, never a separator — and then
//!   finds its route with the router's own matcher ([`actix_router::ResourceDef`]) on the path the
//!   router matches (the decoded one), leaving a [`Resolved`] in the request for every check to read.
//!   No check compares path strings.
//! - [`confirm`] wraps each route's handler: the handler runs only when the route resolved is that
//!   very route, so if the two ever disagreed the request would fail closed with a `404` instead of
//!   running with another route's checks.

use actix_router::ResourceDef;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, Uri};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};

/// Who may reach a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Outside the session scope altogether: no cookie is read, no session row is touched.
    Open,
    /// In the session scope, but anyone may reach it (the sign-in and setup pages).
    Public,
    /// A signed-in user.
    SignedIn,
    /// A signed-in admin (others get `403`).
    Admin,
}

/// Whether a route is a sensitive action: one that needs an authentication within
/// `DASHBOARD_REAUTH_MAX_AGE` (see [`crate::auth::reauth`]); a sensitive action done restarts the
/// window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sensitive {
    No,
    /// Without a recent authentication: `303` to `/reauth?next=PAGE`, `PAGE` being the page that
    /// holds the form, and nothing done.
    Reauth(&'static str),
    /// Its own form asks for the password (`POST /account/password`): for a user without a second
    /// factor that counts as the authentication, so it is never redirected; for a user with one it
    /// is [`Sensitive::Reauth`] of this page, since a password alone never proves such a user.
    ProvesItself(&'static str),
}

/// What the checks need to know of a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    /// `GET`, `POST`, … or `*` for any method.
    pub method: &'static str,
    /// The path pattern, with `{name}` segments (the router's syntax).
    pub path: &'static str,
    pub access: Access,
    pub sensitive: Sensitive,
    /// A page or endpoint of the second factors: `404` when `DASHBOARD_MFA=off`, and reachable by
    /// a user who must still add a factor.
    pub factor: bool,
    /// Reachable by a signed-in user whom the policy requires to add a second factor (besides the
    /// factor routes and the public ones): sign-out and confirming who you are.
    pub without_factor: bool,
    /// The Cloud proxy: its responses are sandboxed, and its unsafe requests carry the CSRF token
    /// in the `X-CSRF-Token` header.
    pub cloud: bool,
    /// Called by the browser itself, not by a page (no CSRF token can come with it): the request
    /// proves itself by a signature over a challenge of the server's, which a cross-site request
    /// cannot make.
    pub signed: bool,
}

impl RouteSpec {
    pub const fn new(method: &'static str, path: &'static str, access: Access) -> Self {
        Self {
            method,
            path,
            access,
            sensitive: Sensitive::No,
            factor: false,
            without_factor: false,
            cloud: false,
            signed: false,
        }
    }

    /// A sensitive action whose form is on `page`.
    pub const fn sensitive(self, page: &'static str) -> Self {
        Self { sensitive: Sensitive::Reauth(page), ..self }
    }

    /// A second-factor route.
    pub const fn factor(self) -> Self {
        Self { factor: true, ..self }
    }

    /// See [`RouteSpec::without_factor`].
    pub const fn without_factor(self) -> Self {
        Self { without_factor: true, ..self }
    }

    /// The Cloud proxy.
    pub const fn cloud(self) -> Self {
        Self { cloud: true, ..self }
    }

    /// See [`RouteSpec::signed`].
    pub const fn signed(self) -> Self {
        Self { signed: true, ..self }
    }

    /// Whether anyone may reach it without a session.
    pub fn is_public(&self) -> bool {
        matches!(self.access, Access::Open | Access::Public)
    }

    fn takes(&self, method: &Method) -> bool {
        self.method == "*" || self.method == method.as_str()
    }
}

/// What a request reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// A route of the table: its handler runs if the checks let it.
    Route(&'static RouteSpec),
    /// A path of the table with none of its methods: the router answers `405` without running a
    /// handler. `public` when the path's routes are public.
    OtherMethod { public: bool },
    /// No route: `404` for the signed in, the sign-in page for visitors.
    Unknown,
}

impl Resolved {
    /// The route, when a handler will run.
    pub fn route(&self) -> Option<&'static RouteSpec> {
        match self {
            Resolved::Route(spec) => Some(spec),
            _ => None,
        }
    }

    /// Whether a visitor may reach it.
    pub fn is_public(&self) -> bool {
        match self {
            Resolved::Route(spec) => spec.is_public(),
            Resolved::OtherMethod { public } => *public,
            Resolved::Unknown => false,
        }
    }

    /// The route's flag, or `false` where no handler runs.
    pub fn has(&self, flag: impl Fn(&RouteSpec) -> bool) -> bool {
        self.route().is_some_and(flag)
    }
}

/// The resolution of a request, as a request extension (every check reads it from there).
pub fn of(req: &ServiceRequest) -> Resolved {
    req.extensions().get::<Resolved>().copied().unwrap_or(Resolved::Unknown)
}

/// The table's paths, in the order the app registers them, each with its routes in table order
/// (the order the router tries them in).
pub struct Resolver {
    resources: Vec<(ResourceDef, Vec<&'static RouteSpec>)>,
}

impl Resolver {
    /// From the route table. The app registers the [`Access::Open`] routes first (outside the
    /// session scope), then the rest, each path once with all its methods: so does this.
    pub fn new(table: impl Iterator<Item = &'static RouteSpec> + Clone) -> Self {
        let mut resources: Vec<(ResourceDef, Vec<&'static RouteSpec>)> = Vec::new();
        let open = table.clone().filter(|s| s.access == Access::Open);
        let scoped = table.filter(|s| s.access != Access::Open);
        for spec in open.chain(scoped) {
            match resources.iter_mut().find(|(def, _)| def.pattern() == Some(spec.path)) {
                Some((_, specs)) => specs.push(spec),
                None => resources.push((ResourceDef::new(spec.path), vec![spec])),
            }
        }
        Self { resources }
    }

    /// What `method` on `path` (as the router matches it: percent-decoded but for `%2F`, `%25`
    /// and `%2B`) reaches.
    pub fn resolve(&self, method: &Method, path: &str) -> Resolved {
        let Some((_, specs)) = self.resources.iter().find(|(def, _)| def.is_match(path)) else {
            return Resolved::Unknown;
        };
        match specs.iter().find(|s| s.takes(method)) {
            Some(spec) => Resolved::Route(spec),
            None => Resolved::OtherMethod { public: specs.iter().all(|s| s.is_public()) },
        }
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// `path` with every percent-escape of an unreserved character decoded (once: `%2569` stays
/// `%2569`), or `None` when it has none. Every other escape is left as it is: `%2F` must never
/// become a separator, and the router itself decodes the rest without them ever matching a
/// pattern's fixed segment.
pub fn normalise(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let escaped_unreserved = |i: usize| {
        bytes.get(i) == Some(&b'%')
            && match (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
                (Some(h), Some(l)) => is_unreserved(h << 4 | l).then_some(h << 4 | l),
                _ => None,
            }
            .is_some()
    };
    if !(0..bytes.len()).any(escaped_unreserved) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if escaped_unreserved(i) {
            // Both are hex digits: checked by `escaped_unreserved`.
            let (h, l) = (hex(bytes[i + 1]).unwrap_or(0), hex(bytes[i + 2]).unwrap_or(0));
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    // Only ASCII was decoded into ASCII, so the bytes stay what they were: valid UTF-8.
    String::from_utf8(out).ok()
}

/// The outermost middleware: the path in normal form, then its route, into the request.
pub async fn resolve(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if let Some(path) = normalise(req.path()) {
        let uri = match req.query_string() {
            "" => path,
            q => format!("{path}?{q}"),
        };
        let mut parts = req.head().uri.clone().into_parts();
        match uri.parse() {
            Ok(pq) => parts.path_and_query = Some(pq),
            Err(_) => return Ok(refuse(req, StatusCode::BAD_REQUEST)),
        }
        let Ok(uri) = Uri::from_parts(parts) else {
            return Ok(refuse(req, StatusCode::BAD_REQUEST));
        };
        req.match_info_mut().get_mut().update(&uri);
        req.head_mut().uri = uri;
    }
    let resolved = match req.app_data::<web::Data<Resolver>>() {
        Some(resolver) => resolver.resolve(req.method(), req.match_info().as_str()),
        None => Resolved::Unknown,
    };
    req.extensions_mut().insert(resolved);
    Ok(next.call(req).await?.map_into_left_body())
}

fn refuse<B>(req: ServiceRequest, status: StatusCode) -> ServiceResponse<EitherBody<B>> {
    req.into_response(crate::error::error_page(status, None)).map_into_right_body()
}

/// Wraps the handler of `spec`: it runs only when `spec` is the route resolved for the request.
pub async fn confirm(
    spec: &'static RouteSpec,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if of(&req).route().is_some_and(|resolved| std::ptr::eq(resolved, spec)) {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    tracing::error!(method = %req.method(), path = %req.path(), route = spec.path, resolved = ?of(&req), "the router ran a route other than the one its checks saw");
    Ok(refuse(req, StatusCode::NOT_FOUND))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_of_unreserved_characters_are_decoded_once() {
        assert_eq!(normalise("/adm%69n/users").as_deref(), Some("/admin/users"));
        assert_eq!(normalise("/%61dmin/user%73").as_deref(), Some("/admin/users"));
        assert_eq!(normalise("/a%2db%2E%5Fc%7e").as_deref(), Some("/a-b._c~"));
        // Once: the escape of `%` is not unreserved, so what follows it stays.
        assert_eq!(normalise("/adm%2569n"), None);
        // Separators and other reserved characters stay escaped.
        for kept in ["/admin%2Fusers", "/admin%2fusers", "/a%3Bb", "/a%20b", "/a%25", "/a%2", "/a%zz", "/%"] {
            assert_eq!(normalise(kept), None, "{kept}");
        }
        assert_eq!(normalise("/x%2F%41").as_deref(), Some("/x%2FA"));
    }

    static TABLE: &[RouteSpec] = &[
        RouteSpec::new("GET", "/healthz", Access::Open),
        RouteSpec::new("GET", "/login", Access::Public),
        RouteSpec::new("POST", "/login", Access::Public),
        RouteSpec::new("POST", "/admin/users/{name}/role", Access::Admin).sensitive("/admin/users"),
        RouteSpec::new("*", "/cloud/{path:.*}", Access::SignedIn).cloud(),
    ];

    #[test]
    fn requests_resolve_as_the_router_matches_them() {
        let r = Resolver::new(TABLE.iter());
        assert_eq!(r.resolve(&Method::POST, "/login"), Resolved::Route(&TABLE[2]));
        assert_eq!(r.resolve(&Method::GET, "/login"), Resolved::Route(&TABLE[1]));
        assert_eq!(r.resolve(&Method::PUT, "/login"), Resolved::OtherMethod { public: true });
        assert_eq!(r.resolve(&Method::PUT, "/healthz"), Resolved::OtherMethod { public: true });
        assert_eq!(r.resolve(&Method::POST, "/admin/users/bob/role"), Resolved::Route(&TABLE[3]));
        assert_eq!(r.resolve(&Method::GET, "/admin/users/bob/role"), Resolved::OtherMethod { public: false });
        for unknown in ["/admin/users//role", "/admin/users/bob/role/", "/Admin/users/bob/role", "/login;x", "/login/"]
        {
            assert_eq!(r.resolve(&Method::POST, unknown), Resolved::Unknown, "{unknown}");
        }
        assert_eq!(r.resolve(&Method::DELETE, "/cloud/a/b"), Resolved::Route(&TABLE[4]));
        assert_eq!(r.resolve(&Method::GET, "/cloud"), Resolved::Unknown);
    }
}
