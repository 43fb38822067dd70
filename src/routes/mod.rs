//! The route table and what every page shares.

pub mod account;
pub mod admin;
pub mod charts;
pub mod cloud;
pub mod dashboard;
pub mod dbsc;
pub mod filters;
pub mod health;
pub mod invite;
pub mod links;
pub mod login;
pub mod logout;
pub mod mfa;
pub mod passkeys;
pub mod password_reset;
pub mod reauth;
pub mod security;
pub mod setup;
pub mod static_files;
pub mod trusted;
pub mod views;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use askama::Template;

use crate::auth::csrf::CsrfToken;
use crate::auth::CurrentUser;
use crate::error::AppError;

pub use crate::routing::{Access, RouteSpec, Sensitive};

/// One route of the table: what the checks need to know of it, and its handler.
pub struct Route {
    pub spec: RouteSpec,
    handler: fn() -> actix_web::Route,
}

impl std::ops::Deref for Route {
    type Target = RouteSpec;

    fn deref(&self) -> &RouteSpec {
        &self.spec
    }
}

const fn route(method: &'static str, path: &'static str, access: Access, handler: fn() -> actix_web::Route) -> Route {
    Route { spec: RouteSpec::new(method, path, access), handler }
}

/// A sensitive route whose form is on `page`.
const fn sensitive(
    method: &'static str,
    path: &'static str,
    access: Access,
    page: &'static str,
    handler: fn() -> actix_web::Route,
) -> Route {
    Route { spec: RouteSpec::new(method, path, access).sensitive(page), handler }
}

impl Route {
    /// A second-factor route (see [`RouteSpec::factor`]).
    const fn factor(self) -> Self {
        Route { spec: self.spec.factor(), handler: self.handler }
    }

    /// See [`RouteSpec::without_factor`].
    const fn without_factor(self) -> Self {
        Route { spec: self.spec.without_factor(), handler: self.handler }
    }

    /// See [`RouteSpec::signed`].
    const fn signed(self) -> Self {
        Route { spec: self.spec.signed(), handler: self.handler }
    }

    const fn cloud(self) -> Self {
        Route { spec: self.spec.cloud(), handler: self.handler }
    }
}

/// Every route of the app. [`configure`] builds the app from it, the guard reads the public paths
/// from it, and the tests generate their protected-route and CSRF checks from it: a route added
/// here is protected and tested without anyone remembering to.
pub static ROUTES: &[Route] = {
    use Access::*;
    &[
        route("GET", "/healthz", Open, || web::get().to(health::healthz)),
        route("GET", "/readyz", Open, || web::get().to(health::readyz)),
        route("GET", "/static/{file}", Open, || web::get().to(static_files::serve)),
        route("GET", "/favicon.ico", Open, || web::get().to(static_files::favicon)),
        // The page asked for most, first: both routers try paths in this order.
        route("GET", "/", SignedIn, || web::get().to(dashboard::show)),
        route("GET", "/login", Public, || web::get().to(login::form)),
        route("POST", "/login", Public, || web::post().to(login::submit)),
        route("POST", "/login/passkey/start", Public, || web::post().to(passkeys::sign_in_start)).factor(),
        // Device-bound sessions: the browser's own requests, each a JWT signed with its key.
        route("POST", "/login/dbsc/register", Public, || web::post().to(dbsc::register)).signed(),
        route("POST", "/login/dbsc/refresh", Public, || web::post().to(dbsc::refresh)).signed(),
        route("POST", "/login/passkey/finish", Public, || web::post().to(passkeys::sign_in_finish)).factor(),
        route("GET", "/login/mfa", Public, || web::get().to(mfa::form)).factor(),
        route("POST", "/login/mfa", Public, || web::post().to(mfa::submit)).factor(),
        route("POST", "/login/mfa/passkey/start", Public, || web::post().to(passkeys::second_step_start)).factor(),
        route("POST", "/login/mfa/passkey/finish", Public, || web::post().to(passkeys::second_step_finish)).factor(),
        route("GET", "/setup", Public, || web::get().to(setup::form)),
        route("POST", "/setup", Public, || web::post().to(setup::submit)),
        route("GET", "/invite", Public, || web::get().to(invite::form)),
        route("POST", "/invite", Public, || web::post().to(invite::submit)),
        route("GET", "/password-reset", Public, || web::get().to(password_reset::form)),
        route("POST", "/password-reset", Public, || web::post().to(password_reset::request)),
        route("GET", "/password-reset/confirm", Public, || web::get().to(password_reset::confirm_form)),
        route("POST", "/password-reset/confirm", Public, || web::post().to(password_reset::confirm)),
        route("POST", "/logout", SignedIn, || web::post().to(logout::submit)).without_factor(),
        route("GET", "/reauth", SignedIn, || web::get().to(reauth::form)).without_factor(),
        route("POST", "/reauth", SignedIn, || web::post().to(reauth::submit)).without_factor(),
        route("POST", "/reauth/passkey/start", SignedIn, || web::post().to(passkeys::reauth_start)).without_factor(),
        route("POST", "/reauth/passkey/finish", SignedIn, || web::post().to(passkeys::reauth_finish)).without_factor(),
        route("GET", "/account/sessions", SignedIn, || web::get().to(account::sessions)),
        sensitive("POST", "/account/sessions/revoke-others", SignedIn, "/account/sessions", || {
            web::post().to(account::revoke_others)
        }),
        sensitive("POST", "/account/sessions/{id}/revoke", SignedIn, "/account/sessions", || {
            web::post().to(account::revoke)
        }),
        route("GET", "/account/security", SignedIn, || web::get().to(security::show)).factor(),
        route("GET", "/account/totp", SignedIn, || web::get().to(security::totp_form)).factor(),
        sensitive("POST", "/account/totp", SignedIn, "/account/totp", || web::post().to(security::totp_enable))
            .factor(),
        sensitive("POST", "/account/totp/disable", SignedIn, "/account/security", || {
            web::post().to(security::totp_disable)
        })
        .factor(),
        sensitive("POST", "/account/recovery-codes", SignedIn, "/account/security", || {
            web::post().to(security::new_recovery_codes)
        })
        .factor(),
        // Forgetting trust only takes a privilege away: no recent authentication needed.
        route("POST", "/account/trusted-browsers/forget-all", SignedIn, || web::post().to(trusted::forget_all)),
        route("POST", "/account/trusted-browsers/{id}/forget", SignedIn, || web::post().to(trusted::forget)),
        sensitive("POST", "/account/passkeys/{id}/delete", SignedIn, "/account/security", || {
            web::post().to(security::delete_passkey)
        })
        .factor(),
        route("GET", "/account/password", SignedIn, || web::get().to(account::password_form)),
        Route {
            spec: RouteSpec {
                sensitive: Sensitive::ProvesItself("/account/password"),
                ..RouteSpec::new("POST", "/account/password", SignedIn)
            },
            handler: || web::post().to(account::change_password),
        },
        sensitive("POST", "/account/passkeys/register/start", SignedIn, "/account/security", || {
            web::post().to(passkeys::register_start)
        })
        .factor(),
        sensitive("POST", "/account/passkeys/register/finish", SignedIn, "/account/security", || {
            web::post().to(passkeys::register_finish)
        })
        .factor(),
        route("*", "/cloud/{path:.*}", SignedIn, || web::route().to(cloud::proxy)).cloud(),
        route("POST", "/account/notices/dismiss", SignedIn, || web::post().to(account::dismiss_notices)),
        route("GET", "/admin", Admin, || web::get().to(admin::overview::show)),
        route("GET", "/admin/sessions", Admin, || web::get().to(admin::sessions::list)),
        sensitive("POST", "/admin/sessions/{id}/revoke", Admin, "/admin/sessions", || {
            web::post().to(admin::sessions::revoke)
        }),
        route("GET", "/admin/users", Admin, || web::get().to(admin::users::list)),
        sensitive("POST", "/admin/users", Admin, "/admin/users", || web::post().to(admin::users::create)),
        sensitive("POST", "/admin/users/{name}/role", Admin, "/admin/users", || web::post().to(admin::users::set_role)),
        sensitive("POST", "/admin/users/{name}/disable", Admin, "/admin/users", || {
            web::post().to(admin::users::disable)
        }),
        sensitive("POST", "/admin/users/{name}/enable", Admin, "/admin/users", || web::post().to(admin::users::enable)),
        sensitive("POST", "/admin/users/{name}/revoke-sessions", Admin, "/admin/users", || {
            web::post().to(admin::users::revoke_sessions)
        }),
        sensitive("POST", "/admin/users/{name}/unlock", Admin, "/admin/users", || web::post().to(admin::users::unlock)),
        sensitive("POST", "/admin/users/{name}/reset-mfa", Admin, "/admin/users", || {
            web::post().to(admin::users::reset_mfa)
        }),
        route("GET", "/admin/events", Admin, || web::get().to(admin::events::list)),
        // Last of the admin routes: any other path under /admin is an admin route too, so a
        // non-admin learns nothing of which exist (403 for all), and an admin gets 404.
        route("*", "/admin/{path:.*}", Admin, || web::route().to(not_found)),
    ]
};

/// The checks' view of the table, for [`crate::routing::Resolver`].
pub fn specs() -> impl Iterator<Item = &'static RouteSpec> + Clone {
    ROUTES.iter().map(|r| &r.spec)
}

/// Each path of `routes` once (in table order), as a resource with all its methods, each method's
/// handler wrapped by [`crate::routing::confirm`] so it runs only as the route its checks saw.
fn resources(routes: impl Iterator<Item = &'static Route> + Clone) -> Vec<actix_web::Resource> {
    let mut seen: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for r in routes.clone() {
        if seen.contains(&r.path) {
            continue;
        }
        seen.push(r.path);
        let mut resource = web::resource(r.path);
        for same in routes.clone().filter(|s| s.path == r.path) {
            let spec: &'static RouteSpec = &same.spec;
            let confirmed = actix_web::middleware::from_fn(move |req, next| crate::routing::confirm(spec, req, next));
            resource = resource.route((same.handler)().wrap(confirmed));
        }
        out.push(resource);
    }
    out
}

/// Routes outside the session scope ([`Access::Open`]).
pub fn configure_open(cfg: &mut web::ServiceConfig) {
    for resource in resources(ROUTES.iter().filter(|r| r.access == Access::Open)) {
        cfg.service(resource);
    }
}

/// Routes behind the session middleware and the checks (the admin check included: it reads the
/// route's access like every other check).
pub fn configure(cfg: &mut web::ServiceConfig) {
    for resource in resources(ROUTES.iter().filter(|r| r.access != Access::Open)) {
        cfg.service(resource);
    }
}

/// For paths no route matches (inside the guard, so only signed-in users get this 404).
pub async fn not_found() -> Result<HttpResponse, AppError> {
    Err(AppError::NotFound)
}

/// What the base layout needs: the signed-in user (for the header), the CSRF token, messages.
pub struct Layout {
    pub user: Option<CurrentUser>,
    pub csrf: String,
    pub notice: Option<String>,
    pub success: Option<String>,
    pub error: Option<String>,
}

impl Layout {
    pub fn new(user: Option<CurrentUser>, csrf: &CsrfToken) -> Self {
        Self { user, csrf: csrf.0.clone(), notice: None, success: None, error: None }
    }
}

/// Renders a form page again with `message` as its error (the one way a handler refuses what was
/// submitted): `page` builds the page around the layout.
pub fn refuse<P: Template>(
    status: StatusCode,
    mut layout: Layout,
    message: impl Into<String>,
    page: impl FnOnce(Layout) -> P,
) -> Result<HttpResponse, AppError> {
    layout.error = Some(message.into());
    render(status, &page(layout))
}

/// One page of a keyset-paged list: at most `size` items, and the cursor of the next page when
/// there is one. The query asks for `size + 1` rows; the extra one only says that more follow.
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    pub fn from_rows(mut rows: Vec<T>, size: usize, cursor_of: impl Fn(&T) -> String) -> Self {
        let has_more = rows.len() > size;
        rows.truncate(size);
        let next_cursor = if has_more { rows.last().map(cursor_of) } else { None };
        Page { items: rows, next_cursor }
    }
}

/// A `TIME.ID` cursor from a page link; `None` when there is none, a `400` when it is malformed.
pub fn parse_cursor<C>(raw: Option<&str>, parse: impl Fn(&str) -> Option<C>) -> Result<Option<C>, AppError> {
    match raw.filter(|a| !a.is_empty()) {
        Some(raw) => Ok(Some(parse(raw).ok_or_else(|| AppError::BadRequest("That page link is not valid.".into()))?)),
        None => Ok(None),
    }
}

/// Renders a page with a status.
pub fn render(status: StatusCode, page: &impl Template) -> Result<HttpResponse, AppError> {
    let body = page.render().map_err(|e| AppError::Internal(e.into()))?;
    Ok(HttpResponse::build(status).insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8")).body(body))
}

/// `303 See Other` to `location`.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, location)).finish()
}

/// " Ended N other sessions." when some were.
fn ended_others(n: u32) -> String {
    match n {
        0 => String::new(),
        n => format!(" Ended {}.", crate::util::count(n as usize, "other session")),
    }
}

/// `?done=…&n=…` after a redirect: which success message to show. Only known codes are shown, so
/// the query string cannot put words on a page.
#[derive(serde::Deserialize)]
pub struct Done {
    done: Option<String>,
    n: Option<u32>,
}

impl Done {
    pub fn message(&self) -> Option<String> {
        let n = self.n.unwrap_or(0);
        let plural = if n == 1 { "" } else { "s" };
        Some(match self.done.as_deref()? {
            "session-ended" => "The session was ended.".to_owned(),
            "others-ended" => format!("Ended {n} other session{plural}."),
            "user-sessions-ended" => format!("Ended {n} session{plural}."),
            "password-changed" => "Your password was changed. Your other sessions were ended.".to_owned(),
            "passkey-added" => "The passkey was added. You can now sign in with it alone.".to_owned(),
            "user-created" => "The user was created.".to_owned(),
            "user-invited" => "The user was created and an invitation is on its way by mail.".to_owned(),
            "role-changed" => "The role was changed. It applies from the user's next request.".to_owned(),
            "user-disabled" => format!("The user was disabled and {n} session{plural} ended."),
            "user-enabled" => "The user was enabled.".to_owned(),
            "totp-enabled" => "The authenticator app is on.".to_owned(),
            "totp-disabled" => format!("The authenticator app is off.{}", ended_others(n)),
            "passkey-deleted" => format!("The passkey was removed.{}", ended_others(n)),
            "recovery-code-used" => {
                format!("You signed in with a recovery code. You have {n} left; make new ones below if you need more.")
            }
            "factors-reset" => format!("The user's second factors were removed and {n} session{plural} ended."),
            "unlocked" => "The lock was ended: the user can sign in again.".to_owned(),
            "browser-forgotten" => "That browser is no longer trusted.".to_owned(),
            "browsers-forgotten" => format!("{n} browser{plural} no longer trusted."),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::Method;

    use super::*;
    use crate::routing::{Resolved, Resolver};

    fn find(method: Method, path: &str) -> Option<&'static str> {
        Resolver::new(specs()).resolve(&method, path).route().map(|r| r.path)
    }

    #[test]
    fn paths_find_their_route_of_the_table() {
        assert_eq!(find(Method::POST, "/admin/users/bob/role"), Some("/admin/users/{name}/role"));
        assert_eq!(find(Method::POST, "/admin/users"), Some("/admin/users"));
        assert_eq!(find(Method::GET, "/cloud/a/b"), Some("/cloud/{path:.*}"));
        // Unknown admin paths are the admin catch-all's; other unknown paths nobody's.
        assert_eq!(find(Method::POST, "/admin/users//role"), Some("/admin/{path:.*}"));
        assert_eq!(find(Method::POST, "/admin/users/bob/role/x"), Some("/admin/{path:.*}"));
        assert_eq!(find(Method::POST, "/account//sessions"), None);
        assert_eq!(
            Resolver::new(specs()).resolve(&Method::DELETE, "/admin/users"),
            Resolved::OtherMethod { public: false }
        );
    }

    #[test]
    fn every_post_of_an_admin_and_every_account_change_is_sensitive() {
        for r in ROUTES {
            let admin_post = r.access == Access::Admin && r.method == "POST";
            // The account changes that need a recent authentication. (Dismissing a new-device
            // notice changes nothing that matters.)
            let sensitive_account = ["/account/password", "/account/totp", "/account/recovery-codes"]
                .into_iter()
                .chain(["/account/passkeys", "/account/sessions/"])
                .any(|prefix| r.path.starts_with(prefix));
            let account_post = r.method == "POST" && sensitive_account;
            if admin_post || account_post {
                assert_ne!(r.sensitive, Sensitive::No, "{} {}", r.method, r.path);
            }
            if r.method == "GET" {
                assert_eq!(r.sensitive, Sensitive::No, "{} {}: only actions are sensitive", r.method, r.path);
            }
            if let Sensitive::Reauth(page) | Sensitive::ProvesItself(page) = r.sensitive {
                assert!(find(Method::GET, page).is_some(), "{} {}: its page {page} is a page", r.method, r.path);
            }
        }
    }

    #[test]
    fn the_second_factor_routes_are_marked() {
        for r in ROUTES {
            let factor_page = ["/account/security", "/account/totp", "/account/recovery-codes", "/account/passkeys"]
                .into_iter()
                .chain(["/login/mfa", "/login/passkey"])
                .any(|prefix| r.path == prefix || r.path.starts_with(&format!("{prefix}/")));
            assert_eq!(r.factor, factor_page, "{} {}", r.method, r.path);
            assert_eq!(r.cloud, r.path.starts_with("/cloud/"), "{} {}", r.method, r.path);
        }
    }
}
