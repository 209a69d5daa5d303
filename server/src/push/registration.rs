//! Devices as they are registered: the platforms a device can be pushed on, and a registration
//! (`POST /v1/devices`, the console's browser-notifications form) read and checked into what the
//! use case stores, or refused with each field at fault.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::Refusal;
use crate::http::outbound::OutboundPolicy;

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

/// A Web Push subscription's keys, as the browser gives them (base64url, padding optional).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebPushSubscriptionKeys {
    /// The browser's ECDH public key: an uncompressed P-256 point (65 bytes), base64url.
    #[schema(
        pattern = "^[A-Za-z0-9_-]{87}=?$",
        example = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
    )]
    pub p256dh: String,
    /// The authentication secret (16 bytes), base64url. Never shown again.
    #[schema(
        pattern = "^[A-Za-z0-9_-]{22}(==)?$",
        example = "BTBZMqHH6r4Tts7J_aSIgg"
    )]
    pub auth: String,
}

/// The phone platforms, as a registration names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum NativePlatform {
    Ios,
    Android,
}

/// A phone's registration as read (the tagged union `RegisterDevice` is what the document shows;
/// reading each shape on its own names the field at fault).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeBody {
    platform: NativePlatform,
    token: String,
    app_version: Option<String>,
    locale: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum WebPlatform {
    Web,
}

/// A browser's registration as read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebBody {
    #[expect(
        dead_code,
        reason = "read to refuse a body without it; the caller matched it"
    )]
    platform: WebPlatform,
    endpoint: String,
    keys: WebPushSubscriptionKeys,
    app_version: Option<String>,
    locale: Option<String>,
}

/// A registration, read and checked.
#[derive(Debug)]
pub struct Registration {
    /// Where it is pushed.
    pub platform: Platform,
    /// The push token, or a subscription's endpoint.
    pub token: String,
    /// A subscription's keys (`p256dh`, `auth`; base64url without padding).
    pub web: Option<(String, String)>,
    /// The app's version.
    pub app_version: Option<String>,
    /// The device's locale.
    pub locale: Option<String>,
}

type Problems = std::collections::BTreeMap<String, String>;

fn check_short(value: &Option<String>, field: &str, problems: &mut Problems) {
    if value.as_ref().is_some_and(|v| {
        v.is_empty() || v.len() > 64 || !v.chars().all(|c| (' '..='~').contains(&c))
    }) {
        problems.insert(
            field.to_owned(),
            "must be 1 to 64 printable ASCII characters".to_owned(),
        );
    }
}

/// Reads and checks a registration body: the shape its `platform` names, every field valid (a
/// subscription's endpoint also where `policy` lets pushes go).
pub fn parse(body: serde_json::Value, policy: &OutboundPolicy) -> Result<Registration, Refusal> {
    let mut problems = Problems::new();
    let registration = match body.get("platform").and_then(|p| p.as_str()) {
        Some("web") => {
            let body: WebBody = crate::http::extract::read_value(body)?;
            let endpoint = body.endpoint.trim().to_owned();
            match url::Url::parse(&endpoint) {
                Ok(url)
                    if endpoint.len() <= 4096
                        && url.username().is_empty()
                        && url.password().is_none()
                        && url.fragment().is_none() =>
                {
                    if let Err(refused) = policy.check_url(&url) {
                        problems.insert(
                            "endpoint".to_owned(),
                            format!("must be a push service's https URL ({refused})"),
                        );
                    }
                }
                _ => {
                    problems.insert(
                        "endpoint".to_owned(),
                        "must be an absolute https URL of at most 4096 characters, without \
                         credentials or fragment"
                            .to_owned(),
                    );
                }
            }
            let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let p256dh = match super::web_push::parse_p256dh(&body.keys.p256dh) {
                Ok(key) => Some(engine.encode(key.to_sec1_bytes())),
                Err(problem) => {
                    problems.insert("keys.p256dh".to_owned(), problem.to_string());
                    None
                }
            };
            let auth = match super::web_push::parse_auth(&body.keys.auth) {
                Ok(secret) => Some(engine.encode(secret)),
                Err(problem) => {
                    problems.insert("keys.auth".to_owned(), problem.to_string());
                    None
                }
            };
            Registration {
                platform: Platform::Web,
                token: endpoint,
                web: p256dh.zip(auth),
                app_version: body.app_version,
                locale: body.locale,
            }
        }
        Some(other) if other != "ios" && other != "android" => {
            return Err(Refusal::invalid_field(
                "platform",
                "must be `ios`, `android` or `web`",
            ));
        }
        _ => {
            let body: NativeBody = crate::http::extract::read_value(body)?;
            let token = body.token.trim().to_owned();
            if token.is_empty()
                || token.len() > 4096
                || !token.chars().all(|c| c.is_ascii_graphic())
            {
                problems.insert(
                    "token".to_owned(),
                    "must be a push token (printable ASCII, at most 4096)".to_owned(),
                );
            }
            Registration {
                platform: match body.platform {
                    NativePlatform::Ios => Platform::Ios,
                    NativePlatform::Android => Platform::Android,
                },
                token,
                web: None,
                app_version: body.app_version,
                locale: body.locale,
            }
        }
    };
    check_short(&registration.app_version, "app_version", &mut problems);
    check_short(&registration.locale, "locale", &mut problems);
    if problems.is_empty() {
        Ok(registration)
    } else {
        Err(Refusal::validation(problems))
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
