//! Apple Push Notification service through the `a2` crate (token auth with a .p8 key). a2's hosts
//! and trust roots are built in, so no fake server can stand behind it: this adapter stays thin,
//! and its payload and its mapping of a2's answers are unit-tested. a2 renews its provider token
//! every 55 minutes (APNs wants 20 to 60).

use std::time::Duration;

use a2::request::notification::{CollapseId, NotificationOptions, Priority, PushType};
use a2::request::payload::PayloadLike;
use a2::response::ErrorReason;
use serde::Serialize;
use serde_json::Value;

use super::content::{PushMessage, apns_body};
use super::gateway::{Attempt, Outcome, PushGateway, Target};

/// APNs configuration.
#[derive(Clone)]
pub struct ApnsConfig {
    /// The .p8 key (PKCS#8 PEM).
    pub key_pem: crate::config::Secret<String>,
    /// Key id.
    pub key_id: String,
    /// Team id.
    pub team_id: String,
    /// The app's bundle id (`apns-topic`).
    pub topic: String,
    /// Sandbox (development builds) or production.
    pub sandbox: bool,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl std::fmt::Debug for ApnsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApnsConfig")
            .field("key_id", &self.key_id)
            .field("team_id", &self.team_id)
            .field("topic", &self.topic)
            .field("sandbox", &self.sandbox)
            .finish_non_exhaustive()
    }
}

/// Our payload: the fixed APS alert (with `interruption-level`, which a2's own APS type lacks)
/// and opaque ids, with the headers a2 sends from the options.
#[derive(Debug, Serialize)]
pub struct ApnsPayload<'a> {
    #[serde(skip)]
    options: NotificationOptions<'a>,
    #[serde(skip)]
    device_token: &'a str,
    #[serde(flatten)]
    body: Value,
}

impl PayloadLike for ApnsPayload<'_> {
    fn get_device_token(&self) -> &str {
        self.device_token
    }

    fn get_options(&self) -> &NotificationOptions<'_> {
        &self.options
    }
}

/// Builds the payload: alert push type, collapse id per prompt or alert, an expiry, and high
/// priority for clinician alerts (normal for the rest).
pub fn payload<'a>(
    message: &'a PushMessage,
    token: &'a str,
    topic: &'a str,
    now_unix: u64,
) -> ApnsPayload<'a> {
    let options = NotificationOptions {
        apns_push_type: Some(PushType::Alert),
        apns_topic: Some(topic),
        apns_collapse_id: CollapseId::new(message.collapse_id()).ok(),
        apns_expiration: Some(now_unix + message.time_to_live_secs()),
        apns_priority: Some(if message.is_time_sensitive() {
            Priority::High
        } else {
            Priority::Normal
        }),
        ..Default::default()
    };
    ApnsPayload {
        options,
        device_token: token,
        body: apns_body(message),
    }
}

/// Maps a2's answer to an outcome.
pub fn classify(result: &Result<a2::Response, a2::Error>) -> Attempt {
    let (outcome, status) = match result {
        Ok(response) => (Outcome::Delivered, Some(response.code)),
        Err(a2::Error::ResponseError(response)) => {
            let reason = response.error.as_ref().map(|e| &e.reason);
            let name =
                reason.map_or_else(|| format!("HTTP {}", response.code), |r| format!("{r:?}"));
            let outcome = match (response.code, reason) {
                (410, _) | (_, Some(ErrorReason::Unregistered)) => {
                    Outcome::TokenDead { reason: name }
                }
                (_, Some(ErrorReason::BadDeviceToken | ErrorReason::DeviceTokenNotForTopic)) => {
                    Outcome::Rejected {
                        reason: name,
                        invalid_argument: true,
                    }
                }
                (
                    _,
                    Some(
                        ErrorReason::ExpiredProviderToken
                        | ErrorReason::TooManyProviderTokenUpdates
                        | ErrorReason::TooManyRequests
                        | ErrorReason::InternalServerError
                        | ErrorReason::ServiceUnavailable
                        | ErrorReason::Shutdown
                        | ErrorReason::IdleTimeout,
                    ),
                )
                | (429 | 500..=599, _) => Outcome::RetryLater {
                    reason: name,
                    after: None,
                },
                _ => Outcome::Rejected {
                    reason: name,
                    invalid_argument: false,
                },
            };
            (outcome, Some(response.code))
        }
        Err(a2::Error::RequestTimeout(_)) => (
            Outcome::RetryLater {
                reason: "timed out".into(),
                after: None,
            },
            None,
        ),
        Err(a2::Error::ConnectionError(_) | a2::Error::ClientError(_)) => (
            Outcome::RetryLater {
                reason: "could not connect".into(),
                after: None,
            },
            None,
        ),
        Err(other) => (
            Outcome::RetryLater {
                reason: format!("APNs client error: {other}"),
                after: None,
            },
            None,
        ),
    };
    Attempt { outcome, status }
}

/// The APNs gateway.
pub struct ApnsGateway {
    client: a2::Client,
    topic: String,
}

impl std::fmt::Debug for ApnsGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApnsGateway")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl ApnsGateway {
    /// Builds the client; fails on an unreadable key.
    pub fn new(apns: &ApnsConfig) -> anyhow::Result<Self> {
        let endpoint = if apns.sandbox {
            a2::Endpoint::Sandbox
        } else {
            a2::Endpoint::Production
        };
        let mut config = a2::ClientConfig::new(endpoint);
        config.request_timeout_secs = Some(apns.timeout.as_secs().max(1));
        let client = a2::Client::token(
            apns.key_pem.expose().as_bytes(),
            apns.key_id.clone(),
            apns.team_id.clone(),
            config,
        )
        .map_err(|e| anyhow::anyhow!("the APNs key cannot be used: {e}"))?;
        Ok(Self {
            client,
            topic: apns.topic.clone(),
        })
    }
}

#[async_trait::async_trait]
impl PushGateway for ApnsGateway {
    async fn send(&self, target: &Target, message: &PushMessage) -> Attempt {
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        let result = self
            .client
            .send(payload(message, &target.token, &self.topic, now))
            .await;
        classify(&result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use a2::response::{ErrorBody, Response};

    fn error(
        code: u16,
        reason: Option<ErrorReason>,
        timestamp: Option<u64>,
    ) -> Result<Response, a2::Error> {
        Err(a2::Error::ResponseError(Response {
            error: reason.map(|reason| ErrorBody { reason, timestamp }),
            apns_id: None,
            code,
        }))
    }

    #[test]
    fn the_payload_json_has_the_fixed_alert_and_the_headers_are_set() {
        let alert = PushMessage::ClinicianAlert {
            alert_id: "0190c1c2-0000-7000-8000-00000000000a".into(),
            time_sensitive: true,
        };
        let payload = payload(&alert, "devtoken", "org.example.companion", 1_800_000_000);
        let json: Value = serde_json::from_str(&payload.to_json_string().unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "aps": {
                    "alert": {"title": "Alert", "body": "A patient alert needs your attention"},
                    "sound": "default",
                    "interruption-level": "time-sensitive"
                },
                "kind": "care_alert",
                "alert_id": "0190c1c2-0000-7000-8000-00000000000a"
            })
        );
        let options = payload.get_options();
        assert!(matches!(options.apns_push_type, Some(PushType::Alert)));
        assert!(matches!(options.apns_priority, Some(Priority::High)));
        assert_eq!(options.apns_topic, Some("org.example.companion"));
        assert_eq!(
            options.apns_collapse_id.as_ref().map(|c| c.value),
            Some("0190c1c2-0000-7000-8000-00000000000a")
        );
        assert_eq!(options.apns_expiration, Some(1_800_000_000 + 3600));
        assert_eq!(payload.get_device_token(), "devtoken");

        let prompt = PushMessage::CheckInPrompt {
            prompt_id: "p".into(),
        };
        let payload = super::payload(&prompt, "devtoken", "t", 0);
        assert!(matches!(
            payload.get_options().apns_priority,
            Some(Priority::Normal)
        ));
        let json: Value = serde_json::from_str(&payload.to_json_string().unwrap()).unwrap();
        assert!(json["aps"].get("interruption-level").is_none());
    }

    #[test]
    fn a2_answers_are_classified() {
        let ok = Ok(Response {
            error: None,
            apns_id: Some("x".into()),
            code: 200,
        });
        assert_eq!(classify(&ok).outcome, Outcome::Delivered);
        let gone = classify(&error(
            410,
            Some(ErrorReason::Unregistered),
            Some(1_700_000_000_000),
        ));
        assert!(matches!(gone.outcome, Outcome::TokenDead { .. }));
        assert_eq!(gone.status, Some(410));
        assert!(matches!(
            classify(&error(400, Some(ErrorReason::BadDeviceToken), None)).outcome,
            Outcome::Rejected {
                invalid_argument: true,
                ..
            }
        ));
        for reason in [
            ErrorReason::ExpiredProviderToken,
            ErrorReason::TooManyProviderTokenUpdates,
        ] {
            assert!(matches!(
                classify(&error(403, Some(reason), None)).outcome,
                Outcome::RetryLater { .. }
            ));
        }
        assert!(matches!(
            classify(&error(503, Some(ErrorReason::ServiceUnavailable), None)).outcome,
            Outcome::RetryLater { .. }
        ));
        assert!(matches!(
            classify(&Err(a2::Error::RequestTimeout(10))).outcome,
            Outcome::RetryLater { .. }
        ));
        assert!(matches!(
            classify(&error(400, Some(ErrorReason::PayloadTooLarge), None)).outcome,
            Outcome::Rejected {
                invalid_argument: false,
                ..
            }
        ));
    }
}
