//! argon2id password hashing (OWASP's default parameters). Hashing costs tens of milliseconds of
//! CPU, so callers run it on the blocking pool, never on the async workers.

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};

use crate::account::model::NewPassword;

/// Hashes a new password into a PHC string.
pub fn hash(password: &NewPassword) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|h| h.to_string())
}

/// Checks a password against a stored PHC string; a malformed hash never matches.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Runs [`hash`] on the blocking pool.
pub async fn hash_blocking(password: NewPassword) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || hash(&password))
        .await?
        .map_err(|e| anyhow::anyhow!("password hashing failed: {e}"))
}

/// Runs [`verify`] on the blocking pool.
pub async fn verify_blocking(password: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || verify(&password, &phc))
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let password = NewPassword::parse("correct horse battery").unwrap();
        let phc = hash(&password).unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", &phc));
        assert!(!verify("correct horse battery!", &phc));
        assert!(!verify("correct horse battery", "not a hash"));
    }
}
