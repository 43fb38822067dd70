//! What the two link pages share: the form that sets a password through a one-time link
//! (`/invite`, `/password-reset/confirm`).

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use askama::Template;
use serde::Deserialize;

use super::{refuse, render, Layout};
use crate::accounts::AccountError;
use crate::auth::csrf::CsrfToken;
use crate::error::AppError;

/// What a used, expired or unknown link answers (`400`).
pub const LINK_GONE: &str = "This link has been used, has expired or is not valid. Ask for a new one.";

#[derive(Template)]
#[template(path = "link_password.html")]
pub struct LinkPasswordPage {
    pub layout: Layout,
    pub heading: &'static str,
    pub intro: &'static str,
    pub button: &'static str,
    pub action: &'static str,
    pub token: String,
    pub username: String,
    pub min_length: usize,
}

/// Which of the two pages.
#[derive(Clone, Copy)]
pub struct Form {
    pub heading: &'static str,
    pub intro: &'static str,
    pub button: &'static str,
    pub action: &'static str,
}

impl Form {
    pub fn page(self, layout: Layout, token: String, username: String, min_length: usize) -> LinkPasswordPage {
        let Form { heading, intro, button, action } = self;
        LinkPasswordPage { layout, heading, intro, button, action, token, username, min_length }
    }

    pub fn show(
        self,
        csrf: &CsrfToken,
        token: String,
        username: String,
        min_length: usize,
    ) -> Result<HttpResponse, AppError> {
        render(StatusCode::OK, &self.page(Layout::new(None, csrf), token, username, min_length))
    }

    /// The form again with why the password was refused.
    pub fn again(
        self,
        csrf: &CsrfToken,
        why: AccountError,
        token: String,
        username: String,
        min_length: usize,
    ) -> Result<HttpResponse, AppError> {
        refuse(StatusCode::BAD_REQUEST, Layout::new(None, csrf), why.to_string(), |layout| {
            self.page(layout, token, username, min_length)
        })
    }
}

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    pub token: String,
}

#[derive(Deserialize)]
pub struct LinkPasswordForm {
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub new_password: String,
    #[serde(default)]
    pub confirm_password: String,
}

/// A refusal of the link itself: the `400` page; anything else as it is.
pub fn gone(e: AccountError) -> AppError {
    match e {
        AccountError::LinkGone => AppError::BadRequest(LINK_GONE.into()),
        other => other.into(),
    }
}
