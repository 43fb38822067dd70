//! Recovery codes: 10 single-use codes of 80 random bits each (16 base32 letters and digits, shown
//! as `xxxx-xxxx-xxxx-xxxx`), stored only as hashes. 80 bits make the plain SHA-256 hash of one
//! out of reach of guessing, so a slow hash is not needed (unlike a password, nobody chose them).

use rand::Rng;

/// How many codes a user gets at a time.
pub const COUNT: usize = 10;
/// Characters per code (5 bits each).
const LEN: usize = 16;
// At least 50 bits per code (enough that guessing one online is hopeless), checked when compiling.
const _: () = assert!(LEN * 5 >= 50);
/// RFC 4648 base32, lowercased: no 0/1/8/9, so no 0/o or 1/l confusion.
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";

/// [`COUNT`] new codes, as shown to the user.
pub fn generate() -> Vec<String> {
    let mut rng = rand::rngs::OsRng;
    (0..COUNT)
        .map(|_| {
            let raw: String = (0..LEN).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
            raw.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("-")
        })
        .collect()
}

/// A submitted code without its dashes and spaces, lowercased; `None` when it cannot be one.
pub fn normalize(input: &str) -> Option<String> {
    let code: String =
        input.chars().filter(|c| !c.is_whitespace() && *c != '-').map(|c| c.to_ascii_lowercase()).collect();
    (code.len() == LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// What is stored for a (normalized) code of `user_id`.
pub fn hash(user_id: &str, normalized: &str) -> String {
    crate::util::sha256_hex(&format!("recovery-code|{user_id}|{normalized}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_carry_80_bits_read_back_in_any_case_and_differ() {
        let codes = generate();
        assert_eq!(codes.len(), COUNT);
        for code in &codes {
            assert_eq!(code.len(), 19, "{code}");
            let n = normalize(code).unwrap();
            assert_eq!(normalize(&code.to_uppercase()), Some(n.clone()));
            assert_eq!(normalize(&format!(" {} ", n)), Some(n.clone()));
            assert_ne!(hash("u1", &n), hash("u2", &n), "bound to the user");
        }
        let mut unique = codes.clone();
        unique.dedup();
        assert_eq!(unique.len(), COUNT);
        assert_eq!(normalize("123456"), None);
        assert_eq!(normalize("abcd-efgh-ijkl-mno1"), None, "1 is not in the alphabet");
    }
}
