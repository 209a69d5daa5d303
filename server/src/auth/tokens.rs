//! Access tokens: short-lived JWTs signed with HMAC-SHA256, pinned to that algorithm, with a
//! `kid` so keys can rotate (the first configured key signs; every configured key verifies).
//!
//! HS256 because every request verifies a token and every replica both signs and verifies, so an
//! asymmetric scheme would buy nothing here and cost far more per request (see
//! `benches/token_verification.rs` for the measured figures). Expiry is checked against the
//! application clock, not the library's, so time stays a value the caller passes in.
//!
//! Two kinds are signed, told apart by their audience: API access tokens (the configured
//! audience) and console session tokens (the same audience with `#console` appended), which only
//! the console's cookie carries. Neither verifies as the other, so a console cookie is never a
//! bearer token for the API, and an API token never signs anyone in to the console.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::SigningKey;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// The account id.
    pub sub: String,
    /// The session (refresh family) the token belongs to; revoking it ends the token too.
    pub sid: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// The account's role when the token was signed: lets a request be refused for its role
    /// before anything is read. The stored role is checked again with the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// Why a token was refused. The reasons are for logs and tests; clients get one 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, wrong algorithm, bad signature, missing or wrong claims.
    #[error("token is malformed or its signature does not verify")]
    Invalid,
    /// The header names no key, or one we do not have.
    #[error("token names an unknown key")]
    UnknownKey,
    /// Past its `exp`.
    #[error("token has expired")]
    Expired,
}

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// An API access token (`Authorization: Bearer`).
    Access,
    /// A console session (the console's cookie only).
    Console,
}

/// Signing and verification keys with the validation rules.
pub struct TokenKeys {
    signing_kid: String,
    signing: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
    validation: Validation,
    console_validation: Validation,
    issuer: String,
    audience: String,
}

/// The audience of console session tokens for the API audience `audience`.
pub fn console_audience(audience: &str) -> String {
    format!("{audience}#console")
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("signing_kid", &self.signing_kid)
            .field("kids", &self.verifying.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Leeway for clock skew between replicas, in seconds.
const LEEWAY_SECS: i64 = 30;

impl TokenKeys {
    /// Builds the key set; `keys` must not be empty (the first one signs).
    pub fn new(keys: &[SigningKey], issuer: &str, audience: &str) -> Option<Self> {
        let first = keys.first()?;
        let validation_for = |audience: &str| {
            let mut validation = Validation::new(Algorithm::HS256);
            validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            validation.set_issuer(&[issuer]);
            validation.set_audience(&[audience]);
            validation.validate_exp = false;
            validation.validate_nbf = false;
            validation
        };
        Some(Self {
            signing_kid: first.id.clone(),
            signing: EncodingKey::from_secret(first.secret.expose()),
            verifying: keys
                .iter()
                .map(|k| (k.id.clone(), DecodingKey::from_secret(k.secret.expose())))
                .collect(),
            validation: validation_for(audience),
            console_validation: validation_for(&console_audience(audience)),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        })
    }

    /// Signs an access token for `account_id` in session `session_id`, valid for `ttl_secs`.
    pub fn issue(
        &self,
        account_id: &str,
        session_id: &str,
        role: &str,
        now: DateTime<Utc>,
        ttl_secs: i64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        self.issue_kind(
            TokenKind::Access,
            account_id,
            session_id,
            role,
            now,
            ttl_secs,
        )
    }

    /// Signs a token of `kind` for `account_id` in session `session_id`, valid for `ttl_secs`.
    pub fn issue_kind(
        &self,
        kind: TokenKind,
        account_id: &str,
        session_id: &str,
        role: &str,
        now: DateTime<Utc>,
        ttl_secs: i64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.signing_kid.clone());
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: match kind {
                TokenKind::Access => self.audience.clone(),
                TokenKind::Console => console_audience(&self.audience),
            },
            sub: account_id.to_owned(),
            sid: session_id.to_owned(),
            iat: now.timestamp(),
            exp: now.timestamp() + ttl_secs,
            role: Some(role.to_owned()),
        };
        jsonwebtoken::encode(&header, &claims, &self.signing)
    }

    /// Verifies an access token's algorithm, key, signature, issuer, audience and expiry at
    /// `now`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, TokenError> {
        self.verify_kind(TokenKind::Access, token, now)
    }

    /// Verifies a token of `kind` (its audience must be that kind's) at `now`.
    pub fn verify_kind(
        &self,
        kind: TokenKind,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Claims, TokenError> {
        let validation = match kind {
            TokenKind::Access => &self.validation,
            TokenKind::Console => &self.console_validation,
        };
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::HS256 {
            return Err(TokenError::Invalid);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.verifying.get(kid))
            .ok_or(TokenError::UnknownKey)?;
        let data = jsonwebtoken::decode::<Claims>(token, key, validation)
            .map_err(|_| TokenError::Invalid)?;
        if data.claims.exp + LEEWAY_SECS <= now.timestamp() {
            return Err(TokenError::Expired);
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use base64::Engine as _;

    fn key(id: &str, byte: u8) -> SigningKey {
        SigningKey {
            id: id.into(),
            secret: Secret::new(vec![byte; 32]),
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn an_issued_token_verifies_until_it_expires() {
        let keys = TokenKeys::new(&[key("k1", 1)], "companion", "companion-api").unwrap();
        let token = keys.issue("acct", "sess", "patient", now(), 900).unwrap();
        let claims = keys.verify(&token, now()).unwrap();
        assert_eq!((claims.sub.as_str(), claims.sid.as_str()), ("acct", "sess"));
        let later = now() + chrono::TimeDelta::seconds(900 + LEEWAY_SECS);
        assert_eq!(keys.verify(&token, later), Err(TokenError::Expired));
    }

    #[test]
    fn a_rotated_out_signer_still_verifies_while_listed_and_not_after() {
        let old = TokenKeys::new(&[key("old", 1)], "companion", "companion-api").unwrap();
        let token = old.issue("acct", "sess", "patient", now(), 900).unwrap();
        let rotated = TokenKeys::new(
            &[key("new", 2), key("old", 1)],
            "companion",
            "companion-api",
        )
        .unwrap();
        assert!(rotated.verify(&token, now()).is_ok());
        let retired = TokenKeys::new(&[key("new", 2)], "companion", "companion-api").unwrap();
        assert_eq!(retired.verify(&token, now()), Err(TokenError::UnknownKey));
    }

    #[test]
    fn tokens_from_another_issuer_or_audience_or_key_are_refused() {
        let keys = TokenKeys::new(&[key("k1", 1)], "companion", "companion-api").unwrap();
        let other_iss = TokenKeys::new(&[key("k1", 1)], "evil", "companion-api").unwrap();
        let other_aud = TokenKeys::new(&[key("k1", 1)], "companion", "other").unwrap();
        let other_key = TokenKeys::new(&[key("k1", 9)], "companion", "companion-api").unwrap();
        for signer in [other_iss, other_aud, other_key] {
            let token = signer.issue("acct", "sess", "patient", now(), 900).unwrap();
            assert_eq!(keys.verify(&token, now()), Err(TokenError::Invalid));
        }
    }

    #[test]
    fn console_and_access_tokens_never_verify_as_each_other() {
        let keys = TokenKeys::new(&[key("k1", 1)], "companion", "companion-api").unwrap();
        let console = keys
            .issue_kind(TokenKind::Console, "acct", "sess", "clinician", now(), 900)
            .unwrap();
        let access = keys.issue("acct", "sess", "clinician", now(), 900).unwrap();
        assert!(
            keys.verify_kind(TokenKind::Console, &console, now())
                .is_ok()
        );
        assert_eq!(keys.verify(&console, now()), Err(TokenError::Invalid));
        assert_eq!(
            keys.verify_kind(TokenKind::Console, &access, now()),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn an_unsigned_token_is_refused() {
        let keys = TokenKeys::new(&[key("k1", 1)], "companion", "companion-api").unwrap();
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let token = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT","kid":"k1"}"#),
            b64(
                r#"{"iss":"companion","aud":"companion-api","sub":"a","sid":"s","iat":1,"exp":9999999999}"#
            )
        );
        assert!(keys.verify(&token, now()).is_err());
    }
}
