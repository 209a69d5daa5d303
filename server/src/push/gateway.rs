//! The gateway trait every push service implements, the classification of outcomes, and the
//! logging (development) and in-memory (tests) gateways.

use std::sync::Mutex;
use std::time::Duration;

use super::content::PushMessage;

/// Where to send. Its `Debug` leaves the token out.
#[derive(Clone)]
pub struct Target {
    /// The notification id (the only thing ever logged about a delivery).
    pub notification_id: String,
    /// The device token (a Web Push subscription's endpoint). Never logged.
    pub token: String,
    /// A Web Push subscription's keys (none for APNs and FCM). Never logged.
    pub web: Option<super::web_push::WebPushKeys>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("notification_id", &self.notification_id)
            .finish_non_exhaustive()
    }
}

/// What came of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted by the push service.
    Delivered,
    /// The token is dead (app uninstalled, token rotated): deactivate the device now.
    TokenDead {
        /// The provider's reason.
        reason: String,
    },
    /// Worth retrying later, after the provider's `Retry-After` if it gave one.
    RetryLater {
        /// The provider's reason.
        reason: String,
        /// The provider's requested delay.
        after: Option<Duration>,
    },
    /// Nothing was sent: no push service is configured for this platform (the development
    /// stand-in logged the delivery). Never counts as reaching anyone.
    NotSent {
        /// Why.
        reason: String,
    },
    /// The provider refused this message for good.
    Rejected {
        /// The provider's reason.
        reason: String,
        /// True for a malformed-request answer (FCM `INVALID_ARGUMENT`, APNs `BadDeviceToken`):
        /// repeated ones deactivate the device.
        invalid_argument: bool,
    },
}

impl Outcome {
    /// A short stable name for attempt rows and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::TokenDead { .. } => "token_dead",
            Outcome::RetryLater { .. } => "retry_later",
            Outcome::Rejected { .. } => "rejected",
            Outcome::NotSent { .. } => "not_sent",
        }
    }
}

/// A provider's answer to one attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// What it means.
    pub outcome: Outcome,
    /// The HTTP status, when there was one.
    pub status: Option<u16>,
}

/// A push service.
#[async_trait::async_trait]
pub trait PushGateway: Send + Sync + std::fmt::Debug {
    /// Sends `message` to `target`. Never fails: every failure is an [`Outcome`].
    async fn send(&self, target: &Target, message: &PushMessage) -> Attempt;

    /// Whether this gateway reaches real devices: false for the development stand-in, whose
    /// devices are never counted as a way to reach anyone.
    fn reaches_devices(&self) -> bool {
        true
    }
}

/// Logs a line per delivery (notification id only) and reports it not sent: the development
/// stand-in when no credentials are configured. Refused in production unless an operator accepts
/// the risk by name (`COMPANION_ACCEPT_PUSH_NOT_CONFIGURED`).
#[derive(Debug, Default)]
pub struct LoggingGateway {
    /// `apns`, `fcm` or `web`, for the log line.
    pub platform: &'static str,
}

#[async_trait::async_trait]
impl PushGateway for LoggingGateway {
    async fn send(&self, target: &Target, message: &PushMessage) -> Attempt {
        tracing::info!(
            platform = self.platform,
            notification_id = %target.notification_id,
            kind = message.kind(),
            "push not configured: delivery logged only"
        );
        Attempt {
            outcome: Outcome::NotSent {
                reason: format!("no {} credentials configured", self.platform),
            },
            status: None,
        }
    }

    fn reaches_devices(&self) -> bool {
        false
    }
}

/// Records what it was asked to send and answers with scripted outcomes (tests).
#[derive(Debug, Default)]
pub struct MemoryGateway {
    sent: Mutex<Vec<(String, PushMessage)>>,
    script: Mutex<Vec<Outcome>>,
}

impl MemoryGateway {
    /// Answers `outcomes` in order, then `Delivered`.
    pub fn scripted(outcomes: Vec<Outcome>) -> Self {
        Self {
            sent: Mutex::new(Vec::new()),
            script: Mutex::new(outcomes),
        }
    }

    /// Every (token, message) sent so far.
    pub fn sent(&self) -> Vec<(String, PushMessage)> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl PushGateway for MemoryGateway {
    async fn send(&self, target: &Target, message: &PushMessage) -> Attempt {
        if let Ok(mut sent) = self.sent.lock() {
            sent.push((target.token.clone(), message.clone()));
        }
        let outcome = self
            .script
            .lock()
            .ok()
            .and_then(|mut s| (!s.is_empty()).then(|| s.remove(0)))
            .unwrap_or(Outcome::Delivered);
        Attempt {
            outcome,
            status: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_tokens_never_reach_debug_output() {
        let target = Target {
            notification_id: "n1".into(),
            token: "secret-device-token".into(),
            web: None,
        };
        assert!(!format!("{target:?}").contains("secret-device-token"));
        let now = chrono::Utc::now().naive_utc();
        let device = crate::push::store::DeviceRow {
            id: "d".into(),
            account_id: "a".into(),
            platform: "ios".into(),
            token: "secret-device-token".into(),
            web_p256dh: None,
            web_auth: None,
            app_version: None,
            locale: None,
            active: true,
            invalid_argument_count: 0,
            deactivated_reason: None,
            created_at: now,
            last_seen_at: now,
        };
        assert!(!format!("{device:?}").contains("secret-device-token"));
    }
}
