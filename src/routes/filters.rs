//! The askama filter [`url_part`] (`{{ name|url_part }}`): the one way a template puts a name or id
//! into a URL, on [`crate::urls::encode`]. `tests` checks that every template uses it.

use std::fmt::Display;

pub use crate::urls::{encode, path};

/// The askama filter: `action="/admin/users/{{ u.username|url_part }}/disable"`.
pub fn url_part(value: impl Display, _: &dyn askama::Values) -> askama::Result<String> {
    Ok(encode(&value.to_string()))
}

#[cfg(test)]
mod tests {
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
