//! What a push notification says. Lock screens and Apple's and Google's servers see it, so it
//! carries no health information: a fixed text per kind and opaque ids, nothing else. The types
//! below cannot hold anything but an id, so no caller can put a score, an instrument name or a
//! clinic name into a payload.

use serde_json::{Value, json};

/// The kinds of push message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushMessage {
    /// A patient's check-in is due.
    CheckInPrompt {
        /// The prompt, for the app to fetch.
        prompt_id: String,
    },
    /// The one reminder of a check-in not answered yet.
    CheckInReminder {
        /// The prompt, for the app to fetch.
        prompt_id: String,
    },
    /// A clinician must look at an alert; an urgent or high one is time-sensitive (breaks
    /// through Focus modes, high priority on every route), medium and low ones are not.
    ClinicianAlert {
        /// The alert, for the app to fetch.
        alert_id: String,
        /// Whether the alert is urgent or high.
        time_sensitive: bool,
    },
    /// To an organisation admin: an alert of a care team reached nobody (nobody on call, no
    /// device, no webhook). Time-sensitive.
    UnreachableAlert {
        /// The care team (clinic) whose readiness needs fixing.
        care_team_id: String,
    },
    /// The user asked to test their notifications.
    Test {
        /// The notification.
        notification_id: String,
    },
}

impl PushMessage {
    /// The stored kind name.
    pub fn kind(&self) -> &'static str {
        match self {
            PushMessage::CheckInPrompt { .. } => "check_in_prompt",
            PushMessage::CheckInReminder { .. } => "check_in_reminder",
            PushMessage::ClinicianAlert {
                time_sensitive: true,
                ..
            } => "care_alert",
            PushMessage::ClinicianAlert {
                time_sensitive: false,
                ..
            } => "care_alert_routine",
            PushMessage::UnreachableAlert { .. } => "care_team_unreachable",
            PushMessage::Test { .. } => "test",
        }
    }

    /// Rebuilds a message from its stored kind and id.
    pub fn from_stored(kind: &str, ref_id: &str) -> Option<Self> {
        let id = ref_id.to_owned();
        match kind {
            "check_in_prompt" => Some(PushMessage::CheckInPrompt { prompt_id: id }),
            "check_in_reminder" => Some(PushMessage::CheckInReminder { prompt_id: id }),
            "care_alert" => Some(PushMessage::ClinicianAlert {
                alert_id: id,
                time_sensitive: true,
            }),
            "care_alert_routine" => Some(PushMessage::ClinicianAlert {
                alert_id: id,
                time_sensitive: false,
            }),
            "care_team_unreachable" => Some(PushMessage::UnreachableAlert { care_team_id: id }),
            "test" => Some(PushMessage::Test {
                notification_id: id,
            }),
            _ => None,
        }
    }

    /// The opaque id the message refers to.
    pub fn ref_id(&self) -> &str {
        match self {
            PushMessage::CheckInPrompt { prompt_id }
            | PushMessage::CheckInReminder { prompt_id } => prompt_id,
            PushMessage::ClinicianAlert { alert_id, .. } => alert_id,
            PushMessage::UnreachableAlert { care_team_id } => care_team_id,
            PushMessage::Test { notification_id } => notification_id,
        }
    }

    /// The identity a device uses to replace an earlier copy of this message instead of showing
    /// it twice (APNs `apns-collapse-id`, FCM `android.notification.tag`): the opaque id the
    /// message refers to, the same on every attempt and from every worker, so a push re-sent after
    /// a worker died mid-delivery, or a reminder of the same prompt, replaces what is on screen.
    /// Ids are UUIDs, well under APNs' 64-byte limit.
    pub fn collapse_id(&self) -> &str {
        self.ref_id()
    }

    /// Title and body shown on the device.
    pub fn text(&self) -> (&'static str, &'static str) {
        match self {
            PushMessage::CheckInPrompt { .. } => ("Check-in", "Time for your check-in"),
            PushMessage::CheckInReminder { .. } => ("Check-in", "Your check-in is still open"),
            PushMessage::ClinicianAlert { .. } => ("Alert", "A patient alert needs your attention"),
            PushMessage::UnreachableAlert { .. } => {
                ("Alert", "An alert could not reach its care team")
            }
            PushMessage::Test { .. } => ("Notifications", "Notifications are working"),
        }
    }

    /// The data the app receives with the notification: kind and opaque id only.
    pub fn data(&self) -> Value {
        let key = match self {
            PushMessage::CheckInPrompt { .. } | PushMessage::CheckInReminder { .. } => "prompt_id",
            PushMessage::ClinicianAlert { .. } => "alert_id",
            PushMessage::UnreachableAlert { .. } => "care_team_id",
            PushMessage::Test { .. } => "notification_id",
        };
        json!({"kind": self.kind(), key: self.ref_id()})
    }

    /// Urgent and high alerts break through Focus modes (iOS time-sensitive, APNs priority 10);
    /// routine ones do not, so that the care team is not trained to ignore them.
    pub fn is_time_sensitive(&self) -> bool {
        matches!(
            self,
            PushMessage::ClinicianAlert {
                time_sensitive: true,
                ..
            } | PushMessage::UnreachableAlert { .. }
        )
    }

    /// Whether the message is about an alert (its delivery's outcome decides whether the alert
    /// reached someone).
    pub fn is_about_an_alert(&self) -> bool {
        matches!(
            self,
            PushMessage::ClinicianAlert { .. } | PushMessage::UnreachableAlert { .. }
        )
    }

    /// How long the push services should keep trying, in seconds.
    pub fn time_to_live_secs(&self) -> u64 {
        match self {
            PushMessage::CheckInPrompt { .. } | PushMessage::CheckInReminder { .. } => 4 * 3600,
            PushMessage::ClinicianAlert { .. } | PushMessage::UnreachableAlert { .. } => 3600,
            PushMessage::Test { .. } => 600,
        }
    }
}

/// The APNs JSON body for `message` (headers are set by the gateway).
pub fn apns_body(message: &PushMessage) -> Value {
    let (title, body) = message.text();
    let mut aps = json!({"alert": {"title": title, "body": body}, "sound": "default"});
    if message.is_time_sensitive() {
        aps["interruption-level"] = json!("time-sensitive");
    }
    let mut payload = json!({"aps": aps});
    if let (Value::Object(target), Value::Object(data)) = (&mut payload, message.data()) {
        target.extend(data);
    }
    payload
}

/// The FCM HTTP v1 `message` object for `message` sent to `token`.
pub fn fcm_message(message: &PushMessage, token: &str) -> Value {
    let (title, body) = message.text();
    let data: serde_json::Map<String, Value> = match message.data() {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    json!({
        "message": {
            "token": token,
            "notification": {"title": title, "body": body},
            "data": data,
            "android": {
                // Every message here shows a visible notification, so high priority is allowed.
                "priority": "high",
                "ttl": format!("{}s", message.time_to_live_secs()),
                // `collapse_key` only collapses messages still waiting in FCM; the tag replaces a
                // notification the phone already shows.
                "collapse_key": message.collapse_id(),
                "notification": {"tag": message.collapse_id()},
            },
            // iOS devices registered through FCM: the same replacing identity, priority and
            // interruption level as direct APNs.
            "apns": apns_override(message),
        }
    })
}

/// The `apns` block of an FCM message: what direct APNs sends in its headers and `aps`, so that
/// an iOS device reached through FCM rings for an alert exactly as one reached directly.
fn apns_override(message: &PushMessage) -> Value {
    let time_sensitive = message.is_time_sensitive();
    let mut block = json!({
        "headers": {
            "apns-collapse-id": message.collapse_id(),
            "apns-priority": if time_sensitive { "10" } else { "5" },
            "apns-push-type": "alert",
        },
    });
    if time_sensitive {
        block["payload"] =
            json!({"aps": {"interruption-level": "time-sensitive", "sound": "default"}});
    }
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<PushMessage> {
        vec![
            PushMessage::CheckInPrompt {
                prompt_id: "0190c1c2-0000-7000-8000-000000000001".into(),
            },
            PushMessage::ClinicianAlert {
                alert_id: "0190c1c2-0000-7000-8000-000000000002".into(),
                time_sensitive: true,
            },
            PushMessage::ClinicianAlert {
                alert_id: "0190c1c2-0000-7000-8000-000000000004".into(),
                time_sensitive: false,
            },
            PushMessage::UnreachableAlert {
                care_team_id: "0190c1c2-0000-7000-8000-000000000005".into(),
            },
            PushMessage::Test {
                notification_id: "0190c1c2-0000-7000-8000-000000000003".into(),
            },
        ]
    }

    /// Words that would reveal health information if they reached a lock screen.
    const FORBIDDEN: &[&str] = &[
        "phq",
        "gad",
        "mood",
        "score",
        "depress",
        "anxi",
        "suicid",
        "self-harm",
        "ketamine",
        "esketamine",
        "infusion",
        "dose",
        "clinic",
        "severe",
        "item",
        "risk",
        "crisis",
        "988",
    ];

    #[test]
    fn no_payload_can_carry_health_information() {
        for message in every_kind() {
            let apns = apns_body(&message).to_string().to_lowercase();
            let fcm = fcm_message(&message, "device-token")
                .to_string()
                .to_lowercase();
            for text in [&apns, &fcm] {
                for word in FORBIDDEN {
                    assert!(!text.contains(word), "{word} in {text}");
                }
            }
        }
    }

    #[test]
    fn payloads_carry_the_fixed_text_and_the_opaque_id_only() {
        let alert = PushMessage::ClinicianAlert {
            alert_id: "a1".into(),
            time_sensitive: true,
        };
        let routine = PushMessage::ClinicianAlert {
            alert_id: "a2".into(),
            time_sensitive: false,
        };
        assert!(
            apns_body(&routine)["aps"]
                .get("interruption-level")
                .is_none(),
            "only urgent alerts are time-sensitive"
        );
        assert_eq!(apns_body(&routine)["kind"], "care_alert_routine");
        let body = apns_body(&alert);
        assert_eq!(
            body["aps"]["alert"]["body"],
            "A patient alert needs your attention"
        );
        assert_eq!(body["aps"]["interruption-level"], "time-sensitive");
        assert_eq!(body["alert_id"], "a1");
        assert_eq!(body["kind"], "care_alert");
        assert_eq!(body.as_object().unwrap().len(), 3);
        let prompt = PushMessage::CheckInPrompt {
            prompt_id: "p1".into(),
        };
        assert!(
            apns_body(&prompt)["aps"]
                .get("interruption-level")
                .is_none()
        );
        let fcm = fcm_message(&prompt, "tok");
        assert_eq!(fcm["message"]["token"], "tok");
        assert_eq!(
            fcm["message"]["notification"]["body"],
            "Time for your check-in"
        );
        assert_eq!(
            fcm["message"]["data"],
            json!({"kind": "check_in_prompt", "prompt_id": "p1"})
        );
        assert_eq!(fcm["message"]["android"]["priority"], "high");
        for message in every_kind() {
            let fcm = fcm_message(&message, "tok");
            let id = message.collapse_id();
            assert!(!id.is_empty() && id.len() <= 64);
            assert_eq!(fcm["message"]["android"]["notification"]["tag"], id);
            assert_eq!(fcm["message"]["android"]["collapse_key"], id);
            assert_eq!(fcm["message"]["apns"]["headers"]["apns-collapse-id"], id);
        }
        for message in every_kind() {
            assert_eq!(
                PushMessage::from_stored(message.kind(), message.ref_id()),
                Some(message)
            );
        }
    }
}
