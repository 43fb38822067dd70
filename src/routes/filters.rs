//! The one way a name or id goes into a URL of a page: [`url_part`] (the askama filter, `{{ name|url_part }}`)
//! and [`path`] (for URLs built in Rust, such as a confirmation form's `action`), both on [`encode`].
//!
//! Everything but the unreserved characters (RFC 3986: letters, digits, `-`, `.`, `_`, `~`) is
//! percent-encoded, so the value stays one path segment or one query value whatever it holds: a `/`,
//! `#`, `?`, `&` or `%` in a name can never change where a form posts or a link leads. The same
//! encoding serves path segments and query values, so no template has to pick the right one.
//! (A segment of only dots would still be read as `.`/`..` by browsers; usernames cannot be that,
//! see [`crate::db::users::normalize_username`].) `tests` checks that every template uses it.

use std::fmt::Display;

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

/// The askama filter: `action="/admin/users/{{ u.username|url_part }}/disable"`.
pub fn url_part(value: impl Display, _: &dyn askama::Values) -> askama::Result<String> {
    Ok(encode(&value.to_string()))
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

    /// The mechanism: every `{{ … }}` inside an `href` or `action` of every template goes through
    /// `url_part`, unless the whole attribute is one value built in Rust with [`path`].
    #[test]
    fn every_template_encodes_what_it_puts_in_a_url() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");
        let mut checked = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let file = entry.unwrap().path();
            let text = std::fs::read_to_string(&file).unwrap();
            for attr in ["href=\"", "action=\"", "src=\""] {
                for (start, _) in text.match_indices(attr) {
                    let value_start = start + attr.len();
                    let value = &text[value_start..value_start + text[value_start..].find('"').unwrap()];
                    // confirm.html's `action` and `cancel` are whole URLs, built in Rust with `path`.
                    // new_device_notice.html's `end_action()` too.
                    let whole_value_built_in_rust =
                        matches!(value, "{{ action }}" | "{{ cancel }}" | "{{ n.end_action() }}");
                    let mut rest = value;
                    while let Some(open) = rest.find("{{") {
                        let close = open + rest[open..].find("}}").unwrap();
                        let expr = rest[open + 2..close].trim();
                        if !whole_value_built_in_rust {
                            assert!(
                                expr.ends_with("|url_part"),
                                "{}: `{expr}` in {attr}…\" is not encoded with url_part",
                                file.display()
                            );
                        }
                        checked += 1;
                        rest = &rest[close + 2..];
                    }
                }
            }
        }
        assert!(checked > 10, "the templates were read ({checked} values)");
    }
}
