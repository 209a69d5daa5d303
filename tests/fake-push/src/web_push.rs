//! A fake Web Push service (RFC 8030) on a loopback port that checks every request as a strict
//! push service and a browser would together: the VAPID `Authorization` (RFC 8292: an ES256 JWT
//! whose signature verifies with the key the test says the server serves, `aud` this service's
//! origin, `exp` in the future and at most 24 hours away, a `sub`), the `TTL`, `Urgency` and
//! `Topic` headers, and the body, decrypted with the subscription's private key and
//! authentication secret (RFC 8291, `aes128gcm` of RFC 8188) the way a browser does.
//!
//! Each subscription is `POST /push/{id}`; what it answers is set per subscription (201 unless
//! told otherwise). A request that fails a check is answered 400 and its problems recorded.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use p256::ecdsa::signature::Verifier as _;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use rand::RngCore as _;
use serde_json::Value;
use sha2::Sha256;

/// A browser's subscription: what the browser keeps (its private key and secret) and what it
/// hands the web app (`endpoint`, `p256dh`, `auth`).
#[derive(Clone)]
pub struct Subscription {
    /// The id in the endpoint's path.
    pub id: String,
    /// The endpoint the server posts to.
    pub endpoint: String,
    /// The public key, base64url (what `PushSubscription.toJSON().keys.p256dh` holds).
    pub p256dh: String,
    /// The authentication secret, base64url.
    pub auth: String,
    secret: p256::SecretKey,
    auth_bytes: [u8; 16],
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct PushRequest {
    /// The subscription it was for.
    pub subscription: String,
    /// The status answered.
    pub status: u16,
    /// Every check that failed (empty for a well-formed, correctly signed and encrypted push).
    pub problems: Vec<String>,
    /// The decrypted payload, parsed as JSON.
    pub payload: Option<Value>,
    /// The decrypted payload as text.
    pub plaintext: Option<String>,
    /// `TTL`.
    pub ttl: Option<String>,
    /// `Urgency`.
    pub urgency: Option<String>,
    /// `Topic`.
    pub topic: Option<String>,
    /// The VAPID JWT's claims.
    pub claims: Option<Value>,
}

#[derive(Default)]
struct Inner {
    origin: String,
    subscriptions: Mutex<HashMap<String, Subscription>>,
    answers: Mutex<HashMap<String, u16>>,
    server_key: Mutex<Option<String>>,
    received: Mutex<Vec<PushRequest>>,
}

/// A running fake push service.
#[derive(Clone)]
pub struct FakeWebPush {
    /// Its address.
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FakeWebPush {
    /// Starts the fake on 127.0.0.1 on a free port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            origin: format!("http://{addr}"),
            ..Inner::default()
        });
        let router = Router::new()
            .route("/push/{id}", post(receive))
            .with_state(inner.clone());
        // No delayed-ACK stalls on answers, as in `FakeFcm`.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move { axum::serve(listener, router).await.ok() });
        Ok(Self { addr, inner })
    }

    /// The origin (`http://127.0.0.1:port`): what a VAPID JWT's `aud` must be.
    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    /// The VAPID public key (base64url) the server says it signs with; until it is set, every
    /// push is refused.
    pub fn trust_server_key(&self, key: &str) {
        *lock(&self.inner.server_key) = Some(key.to_owned());
    }

    /// A new subscription, as a browser makes one.
    pub fn subscribe(&self) -> Subscription {
        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let mut auth_bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut auth_bytes);
        let mut id_bytes = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut id_bytes);
        let id = URL_SAFE_NO_PAD.encode(id_bytes);
        let subscription = Subscription {
            endpoint: format!("{}/push/{id}", self.inner.origin),
            p256dh: URL_SAFE_NO_PAD.encode(secret.public_key().to_encoded_point(false).as_bytes()),
            auth: URL_SAFE_NO_PAD.encode(auth_bytes),
            id: id.clone(),
            secret,
            auth_bytes,
        };
        lock(&self.inner.subscriptions).insert(id, subscription.clone());
        subscription
    }

    /// Makes the subscription answer `status` from now on (e.g. 410 once the user revoked it,
    /// 500 while the service is failing).
    pub fn answer(&self, subscription: &Subscription, status: u16) {
        lock(&self.inner.answers).insert(subscription.id.clone(), status);
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<PushRequest> {
        lock(&self.inner.received).clone()
    }

    /// What one subscription received.
    pub fn received_by(&self, subscription: &Subscription) -> Vec<PushRequest> {
        self.received()
            .into_iter()
            .filter(|r| r.subscription == subscription.id)
            .collect()
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Checks `Authorization: vapid t=<jwt>, k=<key>` against the trusted key and this origin;
/// returns the claims and the problems found.
fn check_vapid(
    authorization: Option<&str>,
    trusted: Option<&str>,
    origin: &str,
) -> (Option<Value>, Vec<String>) {
    let mut problems = Vec::new();
    let Some(value) = authorization.and_then(|a| a.strip_prefix("vapid ")) else {
        return (None, vec!["no `Authorization: vapid ...` header".into()]);
    };
    let mut token = None;
    let mut key = None;
    for part in value.split(',') {
        let part = part.trim();
        if let Some(t) = part.strip_prefix("t=") {
            token = Some(t.to_owned());
        } else if let Some(k) = part.strip_prefix("k=") {
            key = Some(k.to_owned());
        }
    }
    let (Some(token), Some(key)) = (token, key) else {
        return (None, vec!["the vapid header lacks t= or k=".into()]);
    };
    if Some(key.as_str()) != trusted {
        problems.push("k= is not the key the server serves".into());
    }
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return (None, vec!["the JWT does not have three parts".into()]);
    }
    let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).ok();
    let header: Option<Value> = decode(parts[0]).and_then(|b| serde_json::from_slice(&b).ok());
    if header.as_ref().and_then(|h| h["alg"].as_str()) != Some("ES256") {
        problems.push("the JWT is not ES256".into());
    }
    let verified = decode(&key)
        .and_then(|k| p256::ecdsa::VerifyingKey::from_sec1_bytes(&k).ok())
        .zip(decode(parts[2]).and_then(|s| p256::ecdsa::Signature::from_slice(&s).ok()))
        .is_some_and(|(k, sig)| {
            k.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
                .is_ok()
        });
    if !verified {
        problems.push("the JWT signature does not verify with k=".into());
    }
    let claims: Option<Value> = decode(parts[1]).and_then(|b| serde_json::from_slice(&b).ok());
    match &claims {
        None => problems.push("the JWT claims are not JSON".into()),
        Some(claims) => {
            if claims["aud"] != origin {
                problems.push(format!("aud is {} rather than {origin}", claims["aud"]));
            }
            let now = now_secs();
            match claims["exp"].as_u64() {
                Some(exp) if exp > now && exp <= now + 24 * 3600 => {}
                other => problems.push(format!("exp {other:?} is not within the next 24 hours")),
            }
            let sub = claims["sub"].as_str().unwrap_or_default();
            if !(sub.starts_with("mailto:") || sub.starts_with("https:")) {
                problems.push("sub is not a mailto: or https: contact".into());
            }
        }
    }
    (claims, problems)
}

/// Decrypts an `aes128gcm` body as the browser holding `subscription` does (RFC 8291 and
/// RFC 8188, every record).
fn decrypt(subscription: &Subscription, body: &[u8]) -> Result<Vec<u8>, String> {
    if body.len() < 21 {
        return Err("the body is shorter than the content-coding header".into());
    }
    let salt = &body[..16];
    let rs = u32::from_be_bytes([body[16], body[17], body[18], body[19]]) as usize;
    let idlen = body[20] as usize;
    if rs < 18 || body.len() < 21 + idlen {
        return Err("the content-coding header is malformed".into());
    }
    let as_public_bytes = &body[21..21 + idlen];
    let as_public = p256::PublicKey::from_sec1_bytes(as_public_bytes)
        .map_err(|_| "the keyid is not the sender's P-256 public key".to_owned())?;
    let shared = p256::ecdh::diffie_hellman(
        subscription.secret.to_nonzero_scalar(),
        as_public.as_affine(),
    );
    let mut key_info = b"WebPush: info\0".to_vec();
    key_info.extend_from_slice(
        subscription
            .secret
            .public_key()
            .to_encoded_point(false)
            .as_bytes(),
    );
    key_info.extend_from_slice(as_public_bytes);
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(&subscription.auth_bytes), shared.raw_secret_bytes())
        .expand(&key_info, &mut ikm)
        .map_err(|e| e.to_string())?;
    let content = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let mut cek = [0u8; 16];
    let mut nonce = [0u8; 12];
    content
        .expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .map_err(|e| e.to_string())?;
    content
        .expand(b"Content-Encoding: nonce\0", &mut nonce)
        .map_err(|e| e.to_string())?;
    let cipher = Aes128Gcm::new_from_slice(&cek).map_err(|e| e.to_string())?;
    let records: Vec<&[u8]> = body[21 + idlen..].chunks(rs).collect();
    let mut plaintext = Vec::new();
    for (seq, record) in records.iter().enumerate() {
        let mut record_nonce = nonce;
        for (i, b) in (seq as u64).to_be_bytes().iter().enumerate() {
            record_nonce[4 + i] ^= b;
        }
        let mut opened = cipher
            .decrypt(&Nonce::from(record_nonce), *record)
            .map_err(|_| format!("record {seq} does not decrypt"))?;
        // Padding: zeros after the delimiter, 2 on the last record, 1 on the others.
        while opened.last() == Some(&0) {
            opened.pop();
        }
        let last = seq + 1 == records.len();
        match opened.pop() {
            Some(2) if last => {}
            Some(1) if !last => {}
            _ => return Err(format!("record {seq} has the wrong delimiter")),
        }
        plaintext.extend_from_slice(&opened);
    }
    Ok(plaintext)
}

async fn receive(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(subscription) = lock(&inner.subscriptions).get(&id).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let trusted = lock(&inner.server_key).clone();
    let (claims, mut problems) = check_vapid(
        header(&headers, "authorization").as_deref(),
        trusted.as_deref(),
        &inner.origin,
    );
    if header(&headers, "content-encoding").as_deref() != Some("aes128gcm") {
        problems.push("Content-Encoding is not aes128gcm".into());
    }
    let ttl = header(&headers, "ttl");
    if ttl.as_deref().and_then(|t| t.parse::<u64>().ok()).is_none() {
        problems.push("TTL is missing or not a number".into());
    }
    let urgency = header(&headers, "urgency");
    if !matches!(
        urgency.as_deref(),
        Some("very-low" | "low" | "normal" | "high")
    ) {
        problems.push("Urgency is missing or unknown".into());
    }
    let topic = header(&headers, "topic");
    if let Some(topic) = &topic
        && (topic.is_empty()
            || topic.len() > 32
            || !topic
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        problems.push("Topic is not 1 to 32 URL-safe base64 characters".into());
    }
    if body.len() > 4096 {
        problems.push("the body is over 4096 bytes".into());
    }
    let plaintext = match decrypt(&subscription, &body) {
        Ok(plain) => String::from_utf8(plain).ok(),
        Err(problem) => {
            problems.push(problem);
            None
        }
    };
    let payload = plaintext
        .as_deref()
        .and_then(|p| serde_json::from_str::<Value>(p).ok());
    let status = if problems.is_empty() {
        lock(&inner.answers).get(&id).copied().unwrap_or(201)
    } else {
        400
    };
    lock(&inner.received).push(PushRequest {
        subscription: id,
        status,
        problems,
        payload,
        plaintext,
        ttl,
        urgency,
        topic,
        claims,
    });
    let mut response = StatusCode::from_u16(status)
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        .into_response();
    if status == 429 || status >= 500 {
        response
            .headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("1"));
    }
    response
}
