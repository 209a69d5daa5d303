//! Devices as they are registered: the platforms a device can be pushed on.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The platform a device is pushed on: APNs (`ios`), FCM (`android`) or Web Push (`web`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// An iPhone or iPad, pushed through APNs.
    Ios,
    /// An Android phone, pushed through FCM.
    Android,
    /// A browser, pushed through its push service (Web Push).
    Web,
}

impl Platform {
    /// The stored and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Ios => "ios",
            Platform::Android => "android",
            Platform::Web => "web",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_names_are_the_documented_values() {
        for platform in [Platform::Ios, Platform::Android, Platform::Web] {
            assert_eq!(
                serde_json::to_value(platform).unwrap(),
                serde_json::json!(platform.as_str())
            );
        }
    }
}
