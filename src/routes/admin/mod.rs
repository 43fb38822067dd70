//! `/admin/…`: every live session, user management, the audit log. The `/admin` scope's middleware
//! lets only admins in; the role is read from the database on every request.

pub mod events;
pub mod sessions;
pub mod users;

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use askama::Template;
use serde::Deserialize;

use super::{render, Layout};
use crate::auth::csrf::CsrfToken;
use crate::auth::CurrentUser;
use crate::error::AppError;

/// Rows per page of the admin lists.
pub const PAGE_SIZE: i64 = 50;

/// Fields of the forms that may need a confirmation first.
#[derive(Deserialize, Default)]
pub struct ConfirmForm {
    confirm: Option<String>,
    return_to: Option<String>,
}

impl ConfirmForm {
    fn confirmed(&self) -> bool {
        self.confirm.as_deref() == Some("yes")
    }

    fn back(&self) -> &'static str {
        if self.return_to.as_deref() == Some("sessions") {
            "/admin/sessions"
        } else {
            "/admin/users"
        }
    }
}

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage {
    layout: Layout,
    message: String,
    action: String,
    button: &'static str,
    cancel: &'static str,
    fields: Vec<(&'static str, String)>,
}

/// What the "Are you sure?" page says before an admin signs themselves out: the question and the
/// button.
pub(super) type Question = (&'static str, &'static str);

pub(super) const END_MY_SESSION: Question =
    ("This is the session you are using: ending it signs you out.", "End my session");
pub(super) const DISABLE_MY_ACCOUNT: Question =
    ("Disabling your own account signs you out and blocks your sign-in.", "Disable my account");
pub(super) const RESET_MY_FACTORS: Question = (
    "These are your own second factors: removing them ends all your sessions, including this one.",
    "Remove my second factors",
);
pub(super) const END_ALL_MY_SESSIONS: Question =
    ("These are your own sessions, including the one you are using: ending them signs you out.", "End all my sessions");

/// "Are you sure?" before an admin signs themselves out (ending their own session, or disabling
/// their own account): the form again with `confirm=yes`.
fn confirm_page(
    user: CurrentUser,
    csrf: &CsrfToken,
    form: &ConfirmForm,
    action: String,
    (message, button): Question,
) -> Result<HttpResponse, AppError> {
    let fields = form.return_to.clone().map(|r| vec![("return_to", r)]).unwrap_or_default();
    let page = ConfirmPage {
        layout: Layout::new(Some(user), csrf),
        message: message.to_owned(),
        action,
        button,
        cancel: form.back(),
        fields,
    };
    render(StatusCode::OK, &page)
}
