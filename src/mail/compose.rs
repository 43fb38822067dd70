//! What each mail says: plain text and a simple HTML version of the same words, links to the public
//! URL only — no images, no remote resources, no tracking.

use secrecy::SecretString;

use super::{link_url, Payload};

/// A mail ready for SMTP.
#[derive(Debug)]
pub struct Composed {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Composes the mail of `payload`; `token` is its link's token, already opened from the payload.
pub fn compose(payload: &Payload, token: Option<&SecretString>, public_url: &str) -> Composed {
    let base = public_url.trim_end_matches('/');
    match (payload, token) {
        (Payload::Invitation { username, .. }, Some(token)) => {
            let link = link_url(base, "/invite", token);
            let lines = [
                format!("Hello {username},"),
                format!("an account named {username} was made for you on the dashboard at {base}."),
                "Choose your password with this link. It works once, within 72 hours:".to_owned(),
            ];
            let after = "If you did not expect this mail, you can ignore it.";
            build("You are invited to the dashboard", &lines, Some(&link), after)
        }
        (Payload::PasswordReset { username, .. }, Some(token)) => {
            let link = link_url(base, "/password-reset/confirm", token);
            let lines = [
                format!("Hello {username},"),
                format!("someone asked to reset the password of {username} on the dashboard at {base}."),
                "Choose a new password with this link. It works once, within 30 minutes:".to_owned(),
            ];
            let after = "If it was not you, ignore this mail: your password stays as it is. \
                         Your second factors stay either way.";
            build("Reset your dashboard password", &lines, Some(&link), after)
        }
        (Payload::NewDevice { username, device, ip, at }, _) => {
            let lines = [
                format!("Hello {username},"),
                format!(
                    "your account signed in from a new device: {device}, at {ip}, on {}.",
                    crate::util::format_ms(*at)
                ),
                "If that was you, there is nothing to do.".to_owned(),
            ];
            let after =
                format!("If it was not you, end that session under {base}/account/sessions and change your password.");
            build("New sign-in to your dashboard account", &lines, None, &after)
        }
        // A link mail without its token is not composed (the sender gives up on it).
        (Payload::Invitation { .. } | Payload::PasswordReset { .. }, None) => {
            Composed { subject: String::new(), text: String::new(), html: String::new() }
        }
    }
}

fn build(subject: &str, lines: &[String], link: Option<&str>, after: &str) -> Composed {
    let mut text = lines.join("\n\n");
    let mut html = String::from("<!DOCTYPE html>\n<html><body style=\"font-family: sans-serif\">\n");
    for line in lines {
        html.push_str(&format!("<p>{}</p>\n", escape(line)));
    }
    if let Some(link) = link {
        text.push_str(&format!("\n\n{link}"));
        html.push_str(&format!("<p><a href=\"{0}\">{0}</a></p>\n", escape(link)));
    }
    text.push_str(&format!("\n\n{after}\n"));
    html.push_str(&format!("<p>{}</p>\n</body></html>\n", escape(after)));
    Composed { subject: subject.to_owned(), text, html }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_mail_carries_the_public_link_in_both_parts_and_escapes_names() {
        let payload = Payload::PasswordReset { username: "bob".into(), token: String::new() };
        let token = SecretString::from("T0k".to_owned());
        let m = compose(&payload, Some(&token), "https://dash.example.com/");
        let link = "https://dash.example.com/password-reset/confirm?token=T0k";
        assert!(m.text.contains(link) && m.html.contains(&format!("href=\"{link}\"")), "{m:?}");
        let device =
            Payload::NewDevice { username: "bob".into(), device: "<b>x</b>".into(), ip: "1.2.3.4".into(), at: 0 };
        let m = compose(&device, None, "http://localhost:8080");
        assert!(m.html.contains("&lt;b&gt;x&lt;/b&gt;") && m.text.contains("<b>x</b>"));
        assert!(!m.html.contains("<img"));
    }
}
