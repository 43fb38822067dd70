//! The askama filter [`url_part`] (`{{ name|url_part }}`): the one way a template puts a name or id
//! into a URL, on [`crate::urls::encode`]. `tests` checks that every template uses it.

use std::fmt::Display;

pub use crate::urls::{encode, path};

/// The askama filter: `action="/admin/users/{{ u.username|url_part }}/disable"`.
pub fn url_part(value: impl Display, _: &dyn askama::Values) -> askama::Result<String> {
    Ok(encode(&value.to_string()))
}

/// The askama filter for a time from [`crate::util::format_ms`] (`2026-12-03 13:04:46 UTC`), used as
/// `{{ s.created|timestamp|safe }}`: a `<time datetime>` element whose text is the UTC time (what a page
/// without JavaScript shows, and the hover title), which `static/time.js` rewrites in the viewer's zone.
/// Anything else (`never`, `-`) is written as escaped text.
pub fn timestamp(value: impl Display, _: &dyn askama::Values) -> askama::Result<String> {
    let text = value.to_string();
    let b = text.as_bytes();
    let shaped = b.len() == 23
        && text.ends_with(" UTC")
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 | 19 => *c == b' ',
            13 | 16 => *c == b':',
            20.. => true,
            _ => c.is_ascii_digit(),
        });
    if !shaped {
        return Ok(text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;"));
    }
    Ok(format!("<time datetime=\"{}T{}Z\" title=\"{text}\">{text}</time>", &text[..10], &text[11..19]))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_timestamp_becomes_a_time_element_and_anything_else_stays_text() {
        let none = askama::NO_VALUES;
        assert_eq!(
            super::timestamp("2026-12-03 13:04:46 UTC", none).unwrap(),
            "<time datetime=\"2026-12-03T13:04:46Z\" title=\"2026-12-03 13:04:46 UTC\">2026-12-03 13:04:46 UTC</time>"
        );
        assert_eq!(super::timestamp("never", none).unwrap(), "never");
        assert_eq!(super::timestamp("<b>", none).unwrap(), "&lt;b&gt;");
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
