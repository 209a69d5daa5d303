//! SMART Backend Services rules, pure: which scopes exist and what they allow, whether a
//! registered JWKS is acceptable, and the checks on a signed client assertion (RS384 or ES384;
//! `iss` = `sub` = the client id, `aud` = the token URL, `exp` in the future and at most five
//! minutes away, a `jti`). The database parts (the client, the one-time `jti`, the issued token)
//! are in [`super::clients`].

use std::collections::BTreeSet;

use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::fhir::search::ResourceType;

/// The longest an assertion may live (`exp` at most this far from now).
pub const MAX_ASSERTION_LIFETIME: TimeDelta = TimeDelta::minutes(5);
/// The lifetime of an issued access token, seconds.
pub const ACCESS_TOKEN_SECONDS: i64 = 300;
/// The client assertion type SMART requires.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The scope a client is registered with when none is named.
pub const DEFAULT_SCOPE: &str = "system/*.read";

/// One scope: a resource type (or every type), read access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// `system/*.read`.
    All,
    /// `system/{Type}.read`.
    Type(usize),
}

impl Scope {
    /// Parses `system/*.read`, `system/Observation.read` (or the SMART v2 `.rs`).
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix("system/")?;
        let target = rest
            .strip_suffix(".read")
            .or_else(|| rest.strip_suffix(".rs"))?;
        if target == "*" {
            return Some(Scope::All);
        }
        let resource = ResourceType::parse(target)?;
        ResourceType::ALL
            .iter()
            .position(|t| *t == resource)
            .map(Scope::Type)
    }

    /// The canonical text.
    pub fn text(self) -> String {
        match self {
            Scope::All => "system/*.read".to_owned(),
            Scope::Type(i) => format!("system/{}.read", ResourceType::ALL[i].name()),
        }
    }

    fn covers(self, other: Scope) -> bool {
        self == Scope::All || self == other
    }

    /// Whether this scope lets its holder read `resource`.
    pub fn allows(self, resource: ResourceType) -> bool {
        match self {
            Scope::All => true,
            Scope::Type(i) => ResourceType::ALL[i] == resource,
        }
    }
}

/// A space-separated scope list; `None` when any entry is not a scope we grant.
pub fn parse_scopes(text: &str) -> Option<BTreeSet<Scope>> {
    let scopes: Option<BTreeSet<Scope>> = text.split_whitespace().map(Scope::parse).collect();
    scopes.filter(|s| !s.is_empty())
}

/// The canonical text of a scope set.
pub fn scopes_text(scopes: &BTreeSet<Scope>) -> String {
    scopes
        .iter()
        .map(|s| s.text())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The scopes granted for a request: every requested scope must be covered by a registered one.
pub fn grant(registered: &BTreeSet<Scope>, requested: &BTreeSet<Scope>) -> Option<BTreeSet<Scope>> {
    requested
        .iter()
        .all(|r| registered.iter().any(|g| g.covers(*r)))
        .then(|| requested.clone())
}

/// Whether a scope list lets its holder read `resource`.
pub fn allows(scopes: &str, resource: ResourceType) -> bool {
    scopes
        .split_whitespace()
        .filter_map(Scope::parse)
        .any(|s| s.allows(resource))
}

/// Why a JWKS cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// Not a JWK Set.
    #[error("is not a JWK Set ({{\"keys\": [...]}})")]
    Malformed,
    /// No key.
    #[error("holds no key")]
    Empty,
    /// A private key was sent.
    #[error("must hold public keys only")]
    Private,
    /// A key that is neither RSA nor EC P-384.
    #[error("keys must be RSA (RS384) or EC P-384 (ES384)")]
    Unsupported,
}

/// Checks a JWKS a clinic admin registers: public RSA or P-384 keys only.
pub fn check_jwks(jwks: &serde_json::Value) -> Result<JwkSet, JwksError> {
    let keys = jwks
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or(JwksError::Malformed)?;
    if keys.is_empty() {
        return Err(JwksError::Empty);
    }
    if keys.iter().any(|k| {
        ["d", "p", "q", "dp", "dq", "qi"]
            .iter()
            .any(|m| k.get(m).is_some())
    }) {
        return Err(JwksError::Private);
    }
    let set: JwkSet = serde_json::from_value(jwks.clone()).map_err(|_| JwksError::Malformed)?;
    for key in &set.keys {
        let supported = match &key.algorithm {
            AlgorithmParameters::RSA(_) => true,
            AlgorithmParameters::EllipticCurve(ec) => ec.curve == EllipticCurve::P384,
            _ => false,
        };
        if !supported || DecodingKey::from_jwk(key).is_err() {
            return Err(JwksError::Unsupported);
        }
    }
    Ok(set)
}

/// The claims of a client assertion.
#[derive(Debug, Clone, Deserialize)]
pub struct AssertionClaims {
    /// The client id.
    pub iss: String,
    /// The client id again.
    pub sub: String,
    /// Seconds since the epoch.
    pub exp: i64,
    /// One-time id.
    pub jti: String,
}

/// Why an assertion is refused (each is `invalid_client` to the client; the reason is logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// Not a JWT, or without the claims required.
    #[error("malformed assertion")]
    Malformed,
    /// Signed with an algorithm other than RS384 or ES384.
    #[error("algorithm not allowed")]
    Algorithm,
    /// No registered key verifies the signature (or `aud`/`iss` do not match).
    #[error("signature, audience or issuer not accepted")]
    Signature,
    /// `exp` has passed.
    #[error("expired")]
    Expired,
    /// `exp` is more than five minutes away.
    #[error("lives too long")]
    TooLong,
    /// `iss` and `sub` differ.
    #[error("iss and sub differ")]
    Subject,
}

/// The client id an assertion claims to come from, read before its signature is checked (to
/// find the client's keys). Nothing else in it is trusted yet.
pub fn claimed_client(assertion: &str) -> Result<String, AssertionError> {
    let payload = assertion
        .split('.')
        .nth(1)
        .ok_or(AssertionError::Malformed)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| AssertionError::Malformed)?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| AssertionError::Malformed)?;
    value
        .get("iss")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or(AssertionError::Malformed)
}

/// Verifies an assertion against a client's keys, its audience (the token URL) and `now`.
pub fn verify_assertion(
    assertion: &str,
    client_id: &str,
    jwks: &JwkSet,
    token_url: &str,
    now: DateTime<Utc>,
) -> Result<AssertionClaims, AssertionError> {
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| AssertionError::Malformed)?;
    if !matches!(header.alg, Algorithm::RS384 | Algorithm::ES384) {
        return Err(AssertionError::Algorithm);
    }
    let mut validation = Validation::new(header.alg);
    // Expiry is checked below against the application clock, not the wall clock.
    validation.validate_exp = false;
    validation.leeway = 0;
    validation.set_audience(&[token_url]);
    validation.set_issuer(&[client_id]);
    validation.set_required_spec_claims(&["iss", "sub", "aud", "exp"]);
    let candidates = jwks
        .keys
        .iter()
        .filter(|k| header.kid.is_none() || k.common.key_id == header.kid);
    let mut claims = None;
    for key in candidates {
        let Ok(decoding) = DecodingKey::from_jwk(key) else {
            continue;
        };
        if let Ok(data) = jsonwebtoken::decode::<AssertionClaims>(assertion, &decoding, &validation)
        {
            claims = Some(data.claims);
            break;
        }
    }
    let claims = claims.ok_or(AssertionError::Signature)?;
    if claims.sub != claims.iss {
        return Err(AssertionError::Subject);
    }
    if claims.jti.is_empty() || claims.jti.len() > 255 {
        return Err(AssertionError::Malformed);
    }
    let exp = DateTime::<Utc>::from_timestamp(claims.exp, 0).ok_or(AssertionError::Malformed)?;
    if exp <= now {
        return Err(AssertionError::Expired);
    }
    if exp > now + MAX_ASSERTION_LIFETIME {
        return Err(AssertionError::TooLong);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_narrow() {
        let all = parse_scopes("system/*.read").unwrap();
        let obs = parse_scopes("system/Observation.rs").unwrap();
        assert_eq!(scopes_text(&obs), "system/Observation.read");
        assert_eq!(grant(&all, &obs), Some(obs.clone()));
        assert_eq!(grant(&obs, &all), None);
        assert!(allows("system/Observation.read", ResourceType::Observation));
        assert!(!allows("system/Observation.read", ResourceType::Patient));
        assert!(allows("system/*.read", ResourceType::Patient));
        assert_eq!(parse_scopes("system/*.write"), None);
        assert_eq!(parse_scopes("patient/*.read"), None);
        assert_eq!(parse_scopes("system/Medication.read"), None);
        assert_eq!(parse_scopes(""), None);
    }

    #[test]
    fn a_jwks_must_hold_public_rsa_or_p384_keys() {
        assert_eq!(
            check_jwks(&serde_json::json!({})).unwrap_err(),
            JwksError::Malformed
        );
        assert_eq!(
            check_jwks(&serde_json::json!({"keys": []})).unwrap_err(),
            JwksError::Empty
        );
        let p256 = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]});
        assert_eq!(check_jwks(&p256).unwrap_err(), JwksError::Unsupported);
        let private = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-384", "d": "x", "x": "y", "y": "z"}]});
        assert_eq!(check_jwks(&private).unwrap_err(), JwksError::Private);
    }

    #[test]
    fn the_claimed_client_is_read_from_the_payload() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"iss":"c1"}"#);
        assert_eq!(claimed_client(&format!("h.{payload}.s")), Ok("c1".into()));
        assert_eq!(claimed_client("nonsense"), Err(AssertionError::Malformed));
    }
}
