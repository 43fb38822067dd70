//! The one way a name or id goes into a URL: [`encode`] and [`path`] (for URLs built in Rust, such as
//! a confirmation form's `action`); templates reach the same encoding through the askama filter
//! `url_part` (`crate::routes::filters`).
//!
//! Everything but the unreserved characters (RFC 3986: letters, digits, `-`, `.`, `_`, `~`) is
//! percent-encoded, so the value stays one path segment or one query value whatever it holds: a `/`,
//! `#`, `?`, `&` or `%` in a name can never change where a form posts or a link leads. The same
//! encoding serves path segments and query values, so no template has to pick the right one.
//! (A segment of only dots would still be read as `.`/`..` by browsers; usernames cannot be that,
//! see [`crate::db::users::normalize_username`].)

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// What is encoded: everything but RFC 3986's unreserved characters.
const URL_PART: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `value` percent-encoded for one path segment or one query value.
pub fn encode(value: &str) -> String {
    utf8_percent_encode(value, URL_PART).to_string()
}

/// A local path from its segments, each encoded: `path(&["admin", "users", name, "disable"])`.
pub fn path(segments: &[&str]) -> String {
    segments.iter().fold(String::new(), |mut out, segment| {
        out.push('/');
        out.push_str(&encode(segment));
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_characters_are_encoded_and_unreserved_kept() {
        assert_eq!(encode("dave/disable#"), "dave%2Fdisable%23");
        assert_eq!(encode("a?b&c=d%e f+g"), "a%3Fb%26c%3Dd%25e%20f%2Bg");
        assert_eq!(encode("ada.l_b-c~"), "ada.l_b-c~");
        assert_eq!(encode("é"), "%C3%A9");
        assert_eq!(
            path(&["admin", "users", "dave/disable#", "revoke-sessions"]),
            "/admin/users/dave%2Fdisable%23/revoke-sessions"
        );
    }
}
