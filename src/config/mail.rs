//! Mail settings: `DASHBOARD_SMTP_URL` and `DASHBOARD_MAIL_FROM`.

use super::read::Vars;
use super::ConfigError;

/// Where mail goes, and from whom. Absent (`None` in [`super::Settings`]) when SMTP is off.
#[derive(Clone, Debug)]
pub struct MailSettings {
    /// `DASHBOARD_SMTP_URL`.
    pub smtp: crate::mail::SmtpSettings,
    /// `DASHBOARD_MAIL_FROM`, required with SMTP.
    pub from: lettre::message::Mailbox,
}

impl MailSettings {
    pub(super) fn read(vars: &Vars) -> Result<Option<Self>, ConfigError> {
        let smtp = match vars.get("DASHBOARD_SMTP_URL") {
            None => None,
            Some(raw) if raw.eq_ignore_ascii_case("off") => None,
            Some(raw) => Some(
                crate::mail::SmtpSettings::parse(&raw).map_err(|e| ConfigError::invalid("DASHBOARD_SMTP_URL", e))?,
            ),
        };
        let from = match vars.get("DASHBOARD_MAIL_FROM") {
            None if smtp.is_some() => {
                return Err(ConfigError::invalid("DASHBOARD_MAIL_FROM", "it is required with DASHBOARD_SMTP_URL"))
            }
            None => None,
            Some(raw) => {
                Some(crate::mail::parse_from(&raw).map_err(|e| ConfigError::invalid("DASHBOARD_MAIL_FROM", e))?)
            }
        };
        Ok(smtp.zip(from).map(|(smtp, from)| Self { smtp, from }))
    }
}
