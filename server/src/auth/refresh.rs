//! Opaque secrets handed to clients (refresh tokens, invitation codes): generated from the OS
//! random source and stored only as SHA-256 digests, so a database leak yields nothing usable.

use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A new refresh token: 256 random bits, base64url.
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored digest of a secret.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_digests_stable() {
        let a = new_refresh_token();
        let b = new_refresh_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(digest(&a), digest(&a));
        assert_ne!(digest(&a), digest(&b));
        assert!(!digest(&a).contains(&a));
    }
}
