//! Push notifications: devices, the fixed PHI-free message content, the gateways (APNs through
//! `a2`, FCM through its HTTP v1 API, Web Push to browsers, a logging one for development, an
//! in-memory one for tests),
//! and delivery as one job per notification with a row per attempt.

pub mod apns;
pub mod content;
pub mod deliver;
pub mod fcm;
pub mod gateway;
pub mod handlers;
pub mod registration;
pub mod settle;
pub mod store;
pub mod use_cases;
pub mod web_push;

/// Job kinds of push.
pub mod kinds {
    /// Deliver one push notification to one device. Payload: `{"notification_id": "...", "v": 1}`.
    pub const PUSH_DELIVER: &str = "push.deliver";
    /// What became of a push about an alert, for the safety path to judge (run by
    /// `escalation`). Payload: [`super::deliver::AlertPushOutcome`].
    pub const ALERT_PUSH_OUTCOME: &str = "alert.push_outcome";

    /// The `push.deliver` payload.
    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
    pub struct DeliverPushPayload {
        /// The notification to deliver.
        pub notification_id: String,
    }

    /// The `push.deliver` job: enqueued by the store with each notification, run by
    /// [`super::deliver`].
    #[derive(Debug, Clone, Copy)]
    pub struct DeliverPush;

    impl crate::jobs::JobKind for DeliverPush {
        const KIND: &'static str = PUSH_DELIVER;
        type Payload = DeliverPushPayload;
    }
}

// What other domains use of this one's tables: the rows it hands out and the operations
// that run inside another domain's transaction. Its store is private to it.
pub use store::{
    DeviceRow, ExportedDevice, active_devices, active_devices_of, erase_account_devices,
    exported_devices_of, notify_device, notify_device_at, notify_devices, withdraw_waiting,
};
