//! Firebase Cloud Messaging through its HTTP v1 API (the legacy API the `fcm` crate speaks was
//! shut down in 2024): an OAuth2 access token from a service-account assertion (RS256, scope
//! `firebase.messaging`), cached until shortly before it expires, then one POST per message to
//! `{base}/v1/projects/{project}/messages:send`. Base and token URLs are configuration, so tests
//! run against a local fake.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::content::{PushMessage, fcm_message};
use super::gateway::{Attempt, Outcome, PushGateway, Target};

const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// The fields of a Google service-account key file that are used here.
#[derive(Clone, Deserialize)]
pub struct ServiceAccount {
    /// The Firebase project.
    pub project_id: String,
    /// The account's email (the assertion's issuer).
    pub client_email: String,
    /// PEM RSA private key.
    pub private_key: String,
    /// OAuth token endpoint.
    pub token_uri: Option<String>,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("project_id", &self.project_id)
            .field("client_email", &self.client_email)
            .finish_non_exhaustive()
    }
}

/// FCM configuration.
#[derive(Debug, Clone)]
pub struct FcmConfig {
    /// The service account.
    pub account: ServiceAccount,
    /// API base URL (default `https://fcm.googleapis.com`).
    pub base_url: String,
    /// Token URL (default: the key file's `token_uri`).
    pub token_url: String,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// The FCM gateway.
pub struct FcmGateway {
    config: FcmConfig,
    key: EncodingKey,
    /// Messages: one multiplexed HTTP/2 connection.
    client: reqwest::Client,
    /// OAuth token requests (once an hour; whatever the token endpoint speaks).
    token_client: reqwest::Client,
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for FcmGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FcmGateway")
            .field("project", &self.config.account.project_id)
            .field("base_url", &self.config.base_url)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Assertion<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: String,
    expires_in: Option<u64>,
}

impl FcmGateway {
    /// Builds the gateway; fails on an unreadable private key.
    pub fn new(config: FcmConfig) -> anyhow::Result<Self> {
        let key = EncodingKey::from_rsa_pem(config.account.private_key.as_bytes())
            .context("the FCM service account's private_key is not an RSA PEM key")?;
        let token_client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            client: message_client(&config)?,
            config,
            key,
            token_client,
            token: tokio::sync::Mutex::new(None),
        })
    }

    async fn access_token(&self) -> Result<String, String> {
        let mut cached = self.token.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let now = chrono::Utc::now().timestamp();
        let assertion = jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &Assertion {
                iss: &self.config.account.client_email,
                scope: SCOPE,
                aud: &self.config.token_url,
                iat: now,
                exp: now + 3600,
            },
            &self.key,
        )
        .map_err(|e| format!("cannot sign the OAuth assertion: {e}"))?;
        let reply = self
            .token_client
            .post(&self.config.token_url)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|e| format!("OAuth token request failed: {}", without_url(&e)))?;
        if !reply.status().is_success() {
            return Err(format!("OAuth token endpoint answered {}", reply.status()));
        }
        let reply: TokenReply = reply
            .json()
            .await
            .map_err(|_| "OAuth token endpoint answered no token".to_owned())?;
        // Refresh five minutes early so a token never expires in flight.
        let lifetime =
            Duration::from_secs(reply.expires_in.unwrap_or(3600).saturating_sub(300).max(30));
        *cached = Some((reply.access_token.clone(), Instant::now() + lifetime));
        Ok(reply.access_token)
    }

    async fn forget_token(&self) {
        *self.token.lock().await = None;
    }
}

/// The client for messages. FCM v1 takes one message per request, so many requests share one
/// HTTP/2 connection as concurrent streams instead of a connection each: over TLS HTTP/2 is
/// negotiated (ALPN), and a cleartext base URL (a local stand-in) gets HTTP/2 by prior knowledge
/// (h2c). The connection is kept alive with pings so an idle one is found dead before a
/// delivery waits on it.
fn message_client(config: &FcmConfig) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .http2_keep_alive_timeout(config.timeout)
        .http2_keep_alive_while_idle(true)
        .http2_adaptive_window(true);
    if config.base_url.starts_with("http://") {
        builder = builder.http2_prior_knowledge();
    }
    builder.build().context("cannot build the HTTP client")
}

/// A reqwest error without its URL (which can carry a device token in other APIs).
fn without_url(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".into()
    } else if error.is_connect() {
        "could not connect".into()
    } else {
        "request failed".into()
    }
}

/// Classifies an FCM v1 answer: HTTP status, the error's `status` (e.g. `INVALID_ARGUMENT`), the
/// FCM `errorCode` from its details (e.g. `UNREGISTERED`), and `Retry-After`.
pub fn classify(
    status: u16,
    error_status: Option<&str>,
    error_code: Option<&str>,
    retry_after: Option<Duration>,
) -> Outcome {
    let reason = error_code.or(error_status).unwrap_or("").to_owned();
    let reason = if reason.is_empty() {
        format!("HTTP {status}")
    } else {
        reason
    };
    match (status, error_code, error_status) {
        (200..=299, _, _) => Outcome::Delivered,
        (_, Some("UNREGISTERED"), _) | (404, _, _) => Outcome::TokenDead { reason },
        (_, Some("QUOTA_EXCEEDED" | "UNAVAILABLE" | "INTERNAL"), _)
        | (429 | 500..=599, _, _)
        | (_, _, Some("UNAVAILABLE" | "INTERNAL" | "RESOURCE_EXHAUSTED")) => Outcome::RetryLater {
            reason,
            after: retry_after,
        },
        // Our credentials: refresh the token and try again.
        (401, _, _) | (_, Some("THIRD_PARTY_AUTH_ERROR"), _) => Outcome::RetryLater {
            reason,
            after: None,
        },
        (_, Some("INVALID_ARGUMENT"), _) | (400, _, Some("INVALID_ARGUMENT")) => {
            Outcome::Rejected {
                reason,
                invalid_argument: true,
            }
        }
        _ => Outcome::Rejected {
            reason,
            invalid_argument: false,
        },
    }
}

/// A `Retry-After` in seconds.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[async_trait::async_trait]
impl PushGateway for FcmGateway {
    async fn send(&self, target: &Target, message: &PushMessage) -> Attempt {
        let token = match self.access_token().await {
            Ok(token) => token,
            Err(reason) => {
                return Attempt {
                    outcome: Outcome::RetryLater {
                        reason,
                        after: None,
                    },
                    status: None,
                };
            }
        };
        let url = format!(
            "{}/v1/projects/{}/messages:send",
            self.config.base_url.trim_end_matches('/'),
            self.config.account.project_id
        );
        let response = self
            .client
            .post(url)
            .bearer_auth(token)
            .json(&fcm_message(message, &target.token))
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                return Attempt {
                    outcome: Outcome::RetryLater {
                        reason: without_url(&e),
                        after: None,
                    },
                    status: None,
                };
            }
        };
        let status = response.status();
        let after = retry_after(response.headers());
        if status == StatusCode::UNAUTHORIZED {
            self.forget_token().await;
        }
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let error_status = body["error"]["status"].as_str();
        let error_code = body["error"]["details"]
            .as_array()
            .and_then(|details| details.iter().find_map(|d| d["errorCode"].as_str()));
        Attempt {
            outcome: classify(status.as_u16(), error_status, error_code, after),
            status: Some(status.as_u16()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fcm_answers_are_classified() {
        assert_eq!(classify(200, None, None, None), Outcome::Delivered);
        assert!(matches!(
            classify(404, Some("NOT_FOUND"), Some("UNREGISTERED"), None),
            Outcome::TokenDead { .. }
        ));
        assert!(matches!(
            classify(400, Some("INVALID_ARGUMENT"), Some("UNREGISTERED"), None),
            Outcome::TokenDead { .. }
        ));
        assert_eq!(
            classify(
                400,
                Some("INVALID_ARGUMENT"),
                Some("INVALID_ARGUMENT"),
                None
            ),
            Outcome::Rejected {
                reason: "INVALID_ARGUMENT".into(),
                invalid_argument: true
            }
        );
        assert_eq!(
            classify(
                429,
                Some("RESOURCE_EXHAUSTED"),
                Some("QUOTA_EXCEEDED"),
                Some(Duration::from_secs(7))
            ),
            Outcome::RetryLater {
                reason: "QUOTA_EXCEEDED".into(),
                after: Some(Duration::from_secs(7))
            }
        );
        assert!(matches!(
            classify(500, Some("INTERNAL"), None, None),
            Outcome::RetryLater { .. }
        ));
        assert!(matches!(
            classify(503, None, None, None),
            Outcome::RetryLater { .. }
        ));
        assert!(matches!(
            classify(401, Some("UNAUTHENTICATED"), None, None),
            Outcome::RetryLater { .. }
        ));
        assert_eq!(
            classify(
                403,
                Some("PERMISSION_DENIED"),
                Some("SENDER_ID_MISMATCH"),
                None
            ),
            Outcome::Rejected {
                reason: "SENDER_ID_MISMATCH".into(),
                invalid_argument: false
            }
        );
    }
}
