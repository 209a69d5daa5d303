//! Web Push (RFC 8030) to browsers' push services: the payload encrypted for the subscription
//! (RFC 8291, `aes128gcm` content coding of RFC 8188), the server identified by VAPID (RFC 8292:
//! an ES256 JWT for the endpoint's origin), the replacing identity as `Topic` and the urgency as
//! `Urgency`. Endpoints come from users, so every request goes through the same outbound policy
//! as clinic webhooks (`http/outbound.rs`): resolved, checked, connected to the checked address,
//! no redirect followed.
//!
//! The primitives are RustCrypto's (`p256` for ECDH and ECDSA, `hkdf`, `aes-gcm`, `sha2`); this
//! file only arranges them as the RFCs say, and is checked against RFC 8291's worked example.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use p256::ecdsa::signature::Signer as _;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::pkcs8::DecodePrivateKey as _;
use rand::RngCore as _;
use serde_json::{Value, json};
use sha2::Sha256;

use super::content::PushMessage;
use super::gateway::{Attempt, Outcome, PushGateway, Target};
use crate::http::outbound::Outbound;

/// The record size written in the content-coding header: one record holds every payload this
/// server sends (well under 4 KiB).
const RECORD_SIZE: u32 = 4096;

/// The longest payload a push service must accept (RFC 8291 section 4: 4096 octets of
/// ciphertext, header included).
const MAX_BODY: usize = 4096;

/// How long a VAPID token is valid (RFC 8292 allows at most 24 hours).
const VAPID_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// A subscription's keys, as the browser gave them (`PushSubscription.toJSON().keys`): both
/// base64url.
#[derive(Clone)]
pub struct WebPushKeys {
    /// The browser's ECDH public key: an uncompressed P-256 point (65 bytes).
    pub p256dh: String,
    /// The authentication secret (16 bytes). Never logged, never returned.
    pub auth: String,
}

impl std::fmt::Debug for WebPushKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebPushKeys([redacted])")
    }
}

/// Why a subscription's keys cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyProblem {
    /// `p256dh` is not base64url of an uncompressed P-256 point on the curve.
    #[error("must be the base64url encoding of an uncompressed P-256 public key (65 bytes)")]
    P256dh,
    /// `auth` is not base64url of 16 bytes.
    #[error("must be the base64url encoding of 16 bytes")]
    Auth,
}

/// Reads base64url as browsers and libraries write it: with or without padding, and forgiving
/// non-zero bits after the last byte (a strict decoder refuses those, though the bytes are the
/// same).
fn base64url(text: &str) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    LENIENT.decode(text.trim().trim_end_matches('=')).ok()
}

/// The browser's public key, checked to be an uncompressed point on P-256.
pub fn parse_p256dh(text: &str) -> Result<p256::PublicKey, KeyProblem> {
    let bytes = base64url(text).ok_or(KeyProblem::P256dh)?;
    if bytes.len() != 65 || bytes[0] != 0x04 {
        return Err(KeyProblem::P256dh);
    }
    p256::PublicKey::from_sec1_bytes(&bytes).map_err(|_| KeyProblem::P256dh)
}

/// The subscription's authentication secret (16 bytes).
pub fn parse_auth(text: &str) -> Result<[u8; 16], KeyProblem> {
    base64url(text)
        .and_then(|bytes| <[u8; 16]>::try_from(bytes.as_slice()).ok())
        .ok_or(KeyProblem::Auth)
}

/// The uncompressed SEC1 encoding of a public key (65 bytes).
fn uncompressed(key: &p256::PublicKey) -> Vec<u8> {
    key.to_encoded_point(false).as_bytes().to_vec()
}

/// Encrypts `plaintext` for the subscription whose keys are `ua_public` and `auth`
/// (RFC 8291 section 3.4), with a fresh ephemeral key and salt: the whole request body, the
/// `aes128gcm` header followed by one record.
pub fn encrypt(
    plaintext: &[u8],
    ua_public: &p256::PublicKey,
    auth: &[u8; 16],
) -> Result<Vec<u8>, EncryptError> {
    let ephemeral = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    encrypt_with(plaintext, ua_public, auth, &ephemeral, &salt)
}

/// Why a payload could not be encrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncryptError {
    /// Larger than one record (never for this server's fixed payloads).
    #[error("the payload is too large for one record")]
    TooLarge,
    /// The key derivation or the cipher refused its input.
    #[error("the payload could not be encrypted")]
    Cipher,
}

/// [`encrypt`] with a given ephemeral key and salt (what RFC 8291's example fixes).
fn encrypt_with(
    plaintext: &[u8],
    ua_public: &p256::PublicKey,
    auth: &[u8; 16],
    ephemeral: &p256::SecretKey,
    salt: &[u8; 16],
) -> Result<Vec<u8>, EncryptError> {
    // One record: the plaintext, the last-record delimiter 0x02, and the 16-byte tag.
    if plaintext.len() + 1 + 16 > RECORD_SIZE as usize {
        return Err(EncryptError::TooLarge);
    }
    let as_public = uncompressed(&ephemeral.public_key());
    let ua_bytes = uncompressed(ua_public);
    let shared = p256::ecdh::diffie_hellman(ephemeral.to_nonzero_scalar(), ua_public.as_affine());
    // IKM = HKDF(auth, ecdh_secret, "WebPush: info" || 0x00 || ua_public || as_public, 32)
    let mut key_info = Vec::with_capacity(14 + 65 + 65);
    key_info.extend_from_slice(b"WebPush: info\0");
    key_info.extend_from_slice(&ua_bytes);
    key_info.extend_from_slice(&as_public);
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(auth), shared.raw_secret_bytes())
        .expand(&key_info, &mut ikm)
        .map_err(|_| EncryptError::Cipher)?;
    // CEK and nonce from the salt (RFC 8188 section 2.2 and 2.3).
    let content = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let mut cek = [0u8; 16];
    let mut nonce = [0u8; 12];
    content
        .expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .map_err(|_| EncryptError::Cipher)?;
    content
        .expand(b"Content-Encoding: nonce\0", &mut nonce)
        .map_err(|_| EncryptError::Cipher)?;
    let mut record = Vec::with_capacity(plaintext.len() + 1);
    record.extend_from_slice(plaintext);
    record.push(0x02);
    let cipher = Aes128Gcm::new_from_slice(&cek).map_err(|_| EncryptError::Cipher)?;
    // The first (and only) record: its sequence number 0 leaves the nonce as derived.
    let sealed = cipher
        .encrypt(&Nonce::from(nonce), record.as_slice())
        .map_err(|_| EncryptError::Cipher)?;
    let mut body = Vec::with_capacity(16 + 4 + 1 + 65 + sealed.len());
    body.extend_from_slice(salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(65);
    body.extend_from_slice(&as_public);
    body.extend_from_slice(&sealed);
    Ok(body)
}

/// The server's VAPID key pair (P-256): signs the JWT each request carries; its public half is
/// what browsers subscribe with (`applicationServerKey`).
#[derive(Clone)]
pub struct VapidKey {
    signing: p256::ecdsa::SigningKey,
    public: String,
}

impl std::fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl VapidKey {
    /// Reads a private key: PEM (PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`), or the
    /// base64url encoding of the 32-byte private scalar (what `web-push generate-vapid-keys`
    /// and most libraries print).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let secret = if text.starts_with("-----BEGIN") {
            p256::SecretKey::from_pkcs8_pem(text)
                .or_else(|_| p256::SecretKey::from_sec1_pem(text))
                .map_err(|_| "is not a P-256 private key in PEM (PKCS#8 or SEC1)".to_owned())?
        } else {
            let bytes = base64url(text)
                .filter(|b| b.len() == 32)
                .ok_or("must be a PEM P-256 private key or the base64url encoding of its 32-byte private scalar")?;
            p256::SecretKey::from_slice(&bytes)
                .map_err(|_| "is not a valid P-256 private scalar".to_owned())?
        };
        Ok(Self::from_secret(&secret))
    }

    /// A new random key (the development key).
    pub fn generate() -> Self {
        Self::from_secret(&p256::SecretKey::random(&mut rand::rngs::OsRng))
    }

    fn from_secret(secret: &p256::SecretKey) -> Self {
        let public = URL_SAFE_NO_PAD.encode(uncompressed(&secret.public_key()));
        Self {
            signing: p256::ecdsa::SigningKey::from(secret),
            public,
        }
    }

    /// The base64url encoding of the private scalar (how the development key is stored).
    pub fn private_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.signing.to_bytes())
    }

    /// The public key browsers subscribe with: base64url of the uncompressed point (65 bytes).
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// A VAPID JWT (ES256) for `audience` (an origin) signed by this key, valid until `exp`
    /// (seconds since the epoch).
    pub fn token(&self, audience: &str, subject: &str, exp: u64) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = URL_SAFE_NO_PAD
            .encode(json!({"aud": audience, "exp": exp, "sub": subject}).to_string());
        let signing_input = format!("{header}.{claims}");
        let signature: p256::ecdsa::Signature = self.signing.sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }
}

/// What the browser's service worker receives (after decryption): the same fixed, PHI-free text
/// as the APNs and FCM payloads, the kind, the opaque id, and the page a click opens.
pub fn payload(message: &PushMessage) -> Value {
    let (title, body) = message.text();
    let mut payload = json!({"title": title, "body": body});
    if let (Value::Object(target), Value::Object(data)) = (&mut payload, message.data()) {
        target.extend(data);
    }
    payload["url"] = json!(match message {
        PushMessage::CheckInPrompt { prompt_id } | PushMessage::CheckInReminder { prompt_id } =>
            format!("/app/#/check-in/{prompt_id}"),
        PushMessage::ClinicianAlert { .. } => "/console/alerts".to_owned(),
        PushMessage::UnreachableAlert { .. } => "/console/admin".to_owned(),
        PushMessage::Test { .. } => "/app/".to_owned(),
    });
    payload
}

/// The `Topic` header: the replacing identity (a later message with the same topic replaces one
/// the push service still holds), at most 32 characters of the URL-safe base64 alphabet. The
/// message's opaque id without its hyphens (a UUID is then exactly 32 hex digits); any other id
/// is hashed.
pub fn topic(message: &PushMessage) -> String {
    let id: String = message
        .collapse_id()
        .chars()
        .filter(|c| *c != '-')
        .collect();
    if !id.is_empty()
        && id.len() <= 32
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return id;
    }
    use sha2::Digest as _;
    let digest = Sha256::digest(message.collapse_id().as_bytes());
    URL_SAFE_NO_PAD.encode(digest)[..32].to_owned()
}

/// The `Urgency` header: `high` for alerts that must ring now (urgent and high clinician alerts,
/// an unreachable care team), `normal` for prompts, reminders, routine alerts and tests.
pub fn urgency(message: &PushMessage) -> &'static str {
    if message.is_time_sensitive() {
        "high"
    } else {
        "normal"
    }
}

/// What a push service's answer means (RFC 8030 section 5 and the services' documented codes).
pub fn classify(status: u16, retry_after: Option<Duration>) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        // The subscription expired or was withdrawn: never send to it again.
        404 | 410 => Outcome::TokenDead {
            reason: format!("subscription gone ({status})"),
        },
        429 | 500..=599 => Outcome::RetryLater {
            reason: format!("push service answered {status}"),
            after: retry_after,
        },
        // Too large: this message, not the subscription, is at fault.
        413 => Outcome::Rejected {
            reason: "payload too large (413)".into(),
            invalid_argument: false,
        },
        // A malformed request, a subscription made with another server key (401/403), or an
        // endpoint that redirects: repeated, the device is deactivated.
        _ => Outcome::Rejected {
            reason: format!("push service refused the request ({status})"),
            invalid_argument: true,
        },
    }
}

/// The Web Push gateway.
#[derive(Debug)]
pub struct WebPushGateway {
    key: VapidKey,
    subject: String,
    outbound: Outbound,
}

impl WebPushGateway {
    /// A gateway signing with `key` for `subject` (`mailto:` or `https:`), sending through
    /// `outbound` (the webhooks' policy and resolver).
    pub fn new(key: VapidKey, subject: String, outbound: Outbound) -> Self {
        Self {
            key,
            subject,
            outbound,
        }
    }

    /// The public key browsers subscribe with.
    pub fn public_key(&self) -> &str {
        self.key.public_key()
    }

    fn rejected(reason: impl Into<String>) -> Attempt {
        Attempt {
            outcome: Outcome::Rejected {
                reason: reason.into(),
                invalid_argument: true,
            },
            status: None,
        }
    }
}

#[async_trait::async_trait]
impl PushGateway for WebPushGateway {
    async fn send(&self, target: &Target, message: &PushMessage) -> Attempt {
        let Ok(endpoint) = url::Url::parse(&target.token) else {
            return Self::rejected("the endpoint is not a URL");
        };
        let Some(keys) = &target.web else {
            return Self::rejected("the subscription has no keys");
        };
        let (Ok(ua_public), Ok(auth)) = (parse_p256dh(&keys.p256dh), parse_auth(&keys.auth)) else {
            return Self::rejected("the subscription's keys are unusable");
        };
        let pinned = match self.outbound.pin(&endpoint).await {
            Ok(pinned) => pinned,
            Err(refused) if refused.is_transient() => {
                return Attempt {
                    outcome: Outcome::RetryLater {
                        reason: refused.to_string(),
                        after: None,
                    },
                    status: None,
                };
            }
            Err(refused) => return Self::rejected(format!("refused: {refused}")),
        };
        let plaintext = payload(message).to_string();
        let body = match encrypt(plaintext.as_bytes(), &ua_public, &auth) {
            Ok(body) if body.len() <= MAX_BODY => body,
            Ok(_) => return Self::rejected("the encrypted payload is too large"),
            Err(e) => return Self::rejected(e.to_string()),
        };
        let audience = endpoint.origin().ascii_serialization();
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(VAPID_LIFETIME)
            .as_secs();
        let jwt = self.key.token(&audience, &self.subject, exp);
        let request = pinned
            .client
            .post(endpoint)
            .header(
                reqwest::header::AUTHORIZATION,
                format!("vapid t={jwt}, k={}", self.key.public_key()),
            )
            .header("TTL", message.time_to_live_secs().to_string())
            .header("Urgency", urgency(message))
            .header("Topic", topic(message))
            .header(reqwest::header::CONTENT_ENCODING, "aes128gcm")
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body);
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let after = super::fcm::retry_after(response.headers());
                Attempt {
                    outcome: classify(status, after),
                    status: Some(status),
                }
            }
            Err(error) => Attempt {
                outcome: Outcome::RetryLater {
                    // reqwest's message names the URL, which is the subscription's capability:
                    // say what kind of failure it was, nothing more.
                    reason: if error.is_timeout() {
                        "push service timed out".into()
                    } else {
                        "push service unreachable".into()
                    },
                    after: None,
                },
                status: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(text: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(text).unwrap()
    }

    /// RFC 8291 Appendix A: the worked example, byte for byte.
    #[test]
    fn encryption_reproduces_the_rfc_8291_example() {
        let plaintext = b"When I grow up, I want to be a watermelon";
        let as_private =
            p256::SecretKey::from_slice(&b64("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"))
                .unwrap();
        let ua_public = parse_p256dh(
            "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
        )
        .unwrap();
        let auth = parse_auth("BTBZMqHH6r4Tts7J_aSIgg").unwrap();
        let salt: [u8; 16] = b64("DGv6ra1nlYgDCS1FRnbzlw").try_into().unwrap();
        let body = encrypt_with(plaintext, &ua_public, &auth, &as_private, &salt).unwrap();
        assert_eq!(
            URL_SAFE_NO_PAD.encode(&body),
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
        );
    }

    #[test]
    fn subscription_keys_are_checked() {
        let point = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
        assert!(parse_p256dh(point).is_ok());
        assert!(parse_p256dh(&format!("{point}==")).is_ok());
        // Off the curve, compressed, short, not base64url.
        let mut off = b64(point);
        off[64] ^= 1;
        assert_eq!(
            parse_p256dh(&URL_SAFE_NO_PAD.encode(&off)),
            Err(KeyProblem::P256dh)
        );
        assert_eq!(
            parse_p256dh(&URL_SAFE_NO_PAD.encode(&b64(point)[..33])),
            Err(KeyProblem::P256dh)
        );
        assert_eq!(parse_p256dh("not base64!"), Err(KeyProblem::P256dh));
        assert!(parse_auth("BTBZMqHH6r4Tts7J_aSIgg").is_ok());
        assert!(parse_auth("BTBZMqHH6r4Tts7J_aSIgg==").is_ok());
        assert_eq!(
            parse_auth("BTBZMqHH6r4Tts7J_aSIgh"),
            parse_auth("BTBZMqHH6r4Tts7J_aSIgg"),
            "bits after the last byte do not matter"
        );
        assert_eq!(parse_auth("BTBZMqHH6r4Tts7J"), Err(KeyProblem::Auth));
    }

    #[test]
    fn a_vapid_token_verifies_with_the_public_key_and_names_the_origin() {
        use p256::ecdsa::signature::Verifier as _;
        let key = VapidKey::generate();
        let again = VapidKey::parse(&key.private_base64url()).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        let jwt = key.token(
            "https://push.example.net",
            "mailto:ops@example.org",
            1_900_000_000,
        );
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: Value = serde_json::from_slice(&b64(parts[1])).unwrap();
        assert_eq!(claims["aud"], "https://push.example.net");
        assert_eq!(claims["sub"], "mailto:ops@example.org");
        let public = p256::ecdsa::VerifyingKey::from_sec1_bytes(&b64(key.public_key())).unwrap();
        let signature = p256::ecdsa::Signature::from_slice(&b64(parts[2])).unwrap();
        public
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .unwrap();
        assert!(VapidKey::parse("short").is_err());
        assert!(
            VapidKey::parse("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")
                .is_err()
        );
    }

    #[test]
    fn topics_are_short_url_safe_and_stable() {
        let prompt = PushMessage::CheckInPrompt {
            prompt_id: "0190c1c2-0000-7000-8000-000000000001".into(),
        };
        assert_eq!(topic(&prompt), "0190c1c2000070008000000000000001");
        assert_eq!(topic(&prompt).len(), 32);
        let odd = PushMessage::Test {
            notification_id: "x".repeat(80),
        };
        let hashed = topic(&odd);
        assert_eq!(hashed.len(), 32);
        assert!(
            hashed
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        );
        assert_eq!(urgency(&prompt), "normal");
        let alert = PushMessage::ClinicianAlert {
            alert_id: "a".into(),
            time_sensitive: true,
        };
        assert_eq!(urgency(&alert), "high");
        assert_eq!(
            payload(&prompt)["url"],
            "/app/#/check-in/0190c1c2-0000-7000-8000-000000000001"
        );
        assert_eq!(payload(&alert)["alert_id"], "a");
    }

    #[test]
    fn push_service_answers_are_classified() {
        assert_eq!(classify(201, None), Outcome::Delivered);
        assert!(matches!(classify(410, None), Outcome::TokenDead { .. }));
        assert!(matches!(classify(404, None), Outcome::TokenDead { .. }));
        assert_eq!(
            classify(429, Some(Duration::from_secs(7))),
            Outcome::RetryLater {
                reason: "push service answered 429".into(),
                after: Some(Duration::from_secs(7))
            }
        );
        assert!(matches!(classify(503, None), Outcome::RetryLater { .. }));
        assert!(matches!(
            classify(413, None),
            Outcome::Rejected {
                invalid_argument: false,
                ..
            }
        ));
        assert!(matches!(
            classify(400, None),
            Outcome::Rejected {
                invalid_argument: true,
                ..
            }
        ));
    }
}
