//! Invitation codes: 10 characters of Crockford base32 (50 bits), shown as `XXXXX-XXXXX`.
//! Crockford's alphabet has no I, L, O or U, and reading accepts the usual confusions (o for 0,
//! i and l for 1), case and stray separators, so a code read aloud or retyped still works.

use rand::Rng;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const LENGTH: usize = 10;

/// A new code for display, e.g. `7KQ2M-XC9TD`.
pub fn generate() -> String {
    let mut rng = rand::rngs::OsRng;
    let raw: String = (0..LENGTH)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    format!("{}-{}", &raw[..5], &raw[5..])
}

/// The canonical form of a typed code, or `None` if it cannot be one.
pub fn normalise(typed: &str) -> Option<String> {
    let mut out = String::with_capacity(LENGTH);
    for c in typed.chars() {
        let c = match c.to_ascii_uppercase() {
            '-' | ' ' | '\t' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            other => other,
        };
        if !ALPHABET.contains(&(c as u8)) || !c.is_ascii() {
            return None;
        }
        out.push(c);
    }
    (out.len() == LENGTH).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_normalise_to_themselves_without_the_dash() {
        for _ in 0..100 {
            let code = generate();
            assert_eq!(code.len(), 11);
            assert_eq!(normalise(&code), Some(code.replace('-', "")));
        }
    }

    #[test]
    fn typing_slips_are_forgiven_and_garbage_refused() {
        assert_eq!(normalise("o1lik-abcde"), Some("0111KABCDE".to_owned()));
        assert_eq!(normalise(" 7kq2m xc9td "), Some("7KQ2MXC9TD".to_owned()));
        assert_eq!(normalise("7KQ2M"), None);
        assert_eq!(normalise("7KQ2M-XC9TDX"), None);
        assert_eq!(normalise("7KQ2M-XC9TU"), None);
        assert_eq!(normalise("7KQ2M-XC9T\u{e9}"), None);
    }
}
