//! The password policy (NIST SP 800-63B): what a new password must be, and the NFKC every password
//! goes through before it is hashed or checked.

use crate::config::PASSWORD_MAX_LENGTH;

/// NFKC, as NIST SP 800-63B asks: the same password typed on two keyboards (composed or
/// decomposed accents, full-width forms) is the same password. Applied before every hash and check.
pub fn normalize(password: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    password.nfkc().collect()
}

/// Why a new password is refused; the text is shown to the person setting it. The rules of NIST
/// SP 800-63B: a minimum length (code points, after NFKC), at most 1024, no composition rules, and no
/// password that is common or guessable (zxcvbn's estimate, with its lists of common passwords,
/// words and names) or that contains the username.
pub fn check_policy(password: &str, username: &str, min_length: usize) -> Result<(), String> {
    let password = normalize(password);
    let password = password.as_str();
    let length = password.chars().count();
    if length < min_length {
        return Err(format!("the password must be at least {min_length} characters long"));
    }
    if length > PASSWORD_MAX_LENGTH {
        return Err(format!("the password must be at most {PASSWORD_MAX_LENGTH} characters long"));
    }
    if !username.is_empty() && password.to_lowercase().contains(&username.to_lowercase()) {
        return Err("the password must not contain the username".into());
    }
    if password.chars().all(|c| c == password.chars().next().unwrap_or(c)) {
        return Err("the password must not be one character repeated".into());
    }
    // The estimator's cost grows with length; the first 256 characters decide whether a password is
    // a common one.
    let head: String = password.chars().take(256).collect();
    let estimate = zxcvbn::zxcvbn(&head, &[username, "dashboard"]);
    if estimate.score() < zxcvbn::Score::Three {
        return Err("the password is too common or too easy to guess; a few unrelated words make a good one".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_explains_each_refusal() {
        assert!(check_policy("short", "bob", 15).unwrap_err().contains("at least 15"));
        assert!(check_policy(&"a".repeat(1025), "bob", 15).unwrap_err().contains("at most 1024"));
        assert!(check_policy("my name is bob!! ok", "bob", 15).unwrap_err().contains("username"));
        assert!(check_policy("aaaaaaaaaaaaaaaa", "bob", 15).unwrap_err().contains("repeated"));
        assert!(check_policy("correct horse battery staple 🐴", "bob", 15).is_ok());
        for common in ["passwordpassword", "qwertyuiopasdfgh", "123456789012345", "iloveyouiloveyou"] {
            assert!(check_policy(common, "bob", 15).unwrap_err().contains("too common"), "{common}");
        }
    }

    #[test]
    fn each_code_point_counts_once() {
        // 14 accented letters (one code point each after NFKC) are short of a minimum of 15.
        assert!(check_policy(&"é".repeat(14), "x", 15).unwrap_err().contains("at least 15"));
        assert!(check_policy(&"e\u{301}".repeat(14), "x", 15).unwrap_err().contains("at least 15"));
    }
}
