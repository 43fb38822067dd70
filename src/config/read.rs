//! Reading one variable: trimmed, empty meaning unset, and every refusal naming the variable.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::ConfigError;

/// The variables, from any lookup (the environment, or a test's map).
pub(super) struct Vars<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    /// Every name asked for: the known variables, so the list of them cannot drift from the reading.
    asked: RefCell<BTreeSet<&'static str>>,
}

impl<'a> Vars<'a> {
    pub(super) fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self { lookup, asked: RefCell::default() }
    }

    /// The names asked for so far.
    pub(super) fn asked(&self) -> BTreeSet<&'static str> {
        self.asked.borrow().clone()
    }

    /// The value, trimmed; `None` when unset or empty.
    pub(super) fn get(&self, name: &'static str) -> Option<String> {
        self.asked.borrow_mut().insert(name);
        (self.lookup)(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    /// A duration longer than zero; `off` refused.
    pub(super) fn duration(&self, name: &'static str, default: &str) -> Result<Duration, ConfigError> {
        self.duration_or(name, default, false).map(Option::unwrap_or_default)
    }

    /// A duration longer than zero, or `off` (`None`).
    pub(super) fn duration_or_off(&self, name: &'static str, default: &str) -> Result<Option<Duration>, ConfigError> {
        self.duration_or(name, default, true)
    }

    fn duration_or(&self, name: &'static str, default: &str, allow_off: bool) -> Result<Option<Duration>, ConfigError> {
        let raw = self.get(name).unwrap_or_else(|| default.to_owned());
        if raw.eq_ignore_ascii_case("off") {
            return if allow_off { Ok(None) } else { Err(ConfigError::invalid(name, "`off` is not allowed here")) };
        }
        let d = humantime::parse_duration(&raw).map_err(|e| ConfigError::invalid(name, duration_error(&raw, &e)))?;
        if d.is_zero() {
            return Err(ConfigError::invalid(name, "must be longer than zero"));
        }
        Ok(Some(d))
    }

    /// A whole number within `min..=max`.
    pub(super) fn number(
        &self,
        name: &'static str,
        default: usize,
        min: usize,
        max: usize,
    ) -> Result<usize, ConfigError> {
        let raw = self.get(name).unwrap_or_else(|| default.to_string());
        let n: usize = raw.parse().map_err(|_| ConfigError::invalid(name, format!("`{raw}` is not a whole number")))?;
        if n < min || n > max {
            return Err(ConfigError::invalid(name, format!("{n} is outside {min}..={max}")));
        }
        Ok(n)
    }

    /// An `http://` or `https://` URL with a host, when set.
    pub(super) fn http_url(&self, name: &'static str) -> Result<Option<url::Url>, ConfigError> {
        self.get(name).map(|raw| parse_http_url(&raw).map_err(|e| ConfigError::invalid(name, e))).transpose()
    }

    /// `HOST:PORT`, resolved to its first address.
    pub(super) fn socket_addr(&self, name: &'static str, raw: &str) -> Result<SocketAddr, ConfigError> {
        raw.to_socket_addrs()
            .map_err(|e| ConfigError::invalid(name, format!("`{raw}` is not HOST:PORT ({e})")))?
            .next()
            .ok_or_else(|| ConfigError::invalid(name, format!("`{raw}` resolves to no address")))
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`); `false` when unset.
    pub(super) fn flag(&self, name: &'static str) -> Result<bool, ConfigError> {
        match self.get(name).map(|v| v.to_ascii_lowercase()).as_deref() {
            None | Some("false") | Some("0") | Some("no") => Ok(false),
            Some("true") | Some("1") | Some("yes") => Ok(true),
            Some(other) => Err(ConfigError::invalid(name, format!("`{other}` is not true or false"))),
        }
    }
}

/// What was wrong with a duration, in words (humantime's own messages name parser positions).
fn duration_error(raw: &str, e: &humantime::DurationError) -> String {
    let why = match e {
        humantime::DurationError::UnknownUnit { unit, .. } if unit.is_empty() => "the unit is missing".to_owned(),
        humantime::DurationError::UnknownUnit { unit, .. } => format!("`{unit}` is not a unit"),
        humantime::DurationError::NumberOverflow => "it is too long".to_owned(),
        humantime::DurationError::NumberExpected(_) | humantime::DurationError::InvalidCharacter(_) => {
            "it is not a number followed by a unit".to_owned()
        }
        humantime::DurationError::Empty => "it is empty".to_owned(),
    };
    format!("`{raw}` is not a duration ({why}); write a number and a unit, like 90s, 15m, 2h or 7days")
}

fn parse_http_url(raw: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("`{raw}` is not a URL ({e})"))?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        "http" | "https" => Err(format!("`{raw}` has no host")),
        other => Err(format!("scheme `{other}` is not http or https")),
    }
}
