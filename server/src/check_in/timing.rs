//! Where a check-in sits in time. Phones run fast or slow and stay offline for weeks, so a
//! check-in is never refused for its timestamp: one dated in the future beyond the allowed skew
//! is placed at its receipt (the device's time kept and flagged), and one older than the usual
//! limit is stored and flagged late. Pure: both instants are passed in.

use chrono::{DateTime, TimeDelta, Utc};

/// How far ahead of the server's clock a device's `completed_at` may be and still be believed.
pub const CLOCK_SKEW: TimeDelta = TimeDelta::minutes(5);
/// Check-ins completed longer ago than this when they arrive are late: rules that reason about
/// "today" leave them out (item 9 never does).
pub const LATE_AFTER: TimeDelta = TimeDelta::days(30);

/// How a check-in's time was taken.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[schema(as = CheckInTiming)]
pub enum Timing {
    /// As the device said.
    OnTime,
    /// The device's clock was ahead beyond the skew: placed at receipt.
    ClockAhead,
    /// Completed more than [`LATE_AFTER`] before it arrived.
    Late,
}

impl Timing {
    /// The stored and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Timing::OnTime => "on_time",
            Timing::ClockAhead => "clock_ahead",
            Timing::Late => "late",
        }
    }

    /// Reads a stored name.
    pub fn parse(text: &str) -> Self {
        match text {
            "clock_ahead" => Timing::ClockAhead,
            "late" => Timing::Late,
            _ => Timing::OnTime,
        }
    }
}

/// A check-in placed in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    /// The time the check-in is filed under.
    pub completed_at: DateTime<Utc>,
    /// The device's own time, kept when it was not believed.
    pub device_completed_at: Option<DateTime<Utc>>,
    /// How.
    pub timing: Timing,
}

/// Places a check-in the device says was completed at `device` and the server received at
/// `received`.
pub fn place(device: DateTime<Utc>, received: DateTime<Utc>) -> Placed {
    if device > received + CLOCK_SKEW {
        Placed {
            completed_at: received,
            device_completed_at: Some(device),
            timing: Timing::ClockAhead,
        }
    } else {
        Placed {
            completed_at: device,
            device_completed_at: None,
            timing: if device < received - LATE_AFTER {
                Timing::Late
            } else {
                Timing::OnTime
            },
        }
    }
}

fn span(delta: TimeDelta) -> String {
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if delta >= TimeDelta::days(2) {
        plural(delta.num_days(), "day")
    } else if delta >= TimeDelta::hours(1) {
        plural(delta.num_hours(), "hour")
    } else {
        plural(delta.num_minutes().max(1), "minute")
    }
}

/// What an alert raised by this check-in says about its time, when there is anything to say: a
/// check-in answered an hour or more before it arrived ("answered 41 days ago, received now"),
/// or one whose device clock was ahead.
pub fn note(placed: &Placed, received: DateTime<Utc>) -> Option<String> {
    match (placed.timing, placed.device_completed_at) {
        (Timing::ClockAhead, Some(device)) => Some(format!(
            "device clock {} ahead, filed at receipt",
            span(device - received)
        )),
        _ if received - placed.completed_at >= TimeDelta::hours(1) => Some(format!(
            "answered {} ago, received now",
            span(received - placed.completed_at)
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn a_fast_clock_is_placed_at_receipt_and_a_long_offline_phone_is_late() {
        let now = at("2026-06-01T12:00:00Z");
        let on_time = place(now - TimeDelta::hours(3), now);
        assert_eq!(on_time.timing, Timing::OnTime);
        assert_eq!(on_time.completed_at, now - TimeDelta::hours(3));
        let within_skew = place(now + TimeDelta::minutes(5), now);
        assert_eq!(within_skew.timing, Timing::OnTime);
        let ahead = place(now + TimeDelta::hours(2), now);
        assert_eq!(ahead.timing, Timing::ClockAhead);
        assert_eq!(ahead.completed_at, now);
        assert_eq!(ahead.device_completed_at, Some(now + TimeDelta::hours(2)));
        let late = place(now - TimeDelta::days(41), now);
        assert_eq!(late.timing, Timing::Late);
        assert_eq!(late.completed_at, now - TimeDelta::days(41));
        assert_eq!(place(now - TimeDelta::days(30), now).timing, Timing::OnTime);
    }

    #[test]
    fn the_note_states_the_lag_in_plain_words() {
        let now = at("2026-06-01T12:00:00Z");
        let late = place(now - TimeDelta::days(41), now);
        assert_eq!(
            note(&late, now).as_deref(),
            Some("answered 41 days ago, received now")
        );
        let hours = place(now - TimeDelta::hours(5), now);
        assert_eq!(
            note(&hours, now).as_deref(),
            Some("answered 5 hours ago, received now")
        );
        assert_eq!(note(&place(now - TimeDelta::minutes(10), now), now), None);
        let ahead = place(now + TimeDelta::hours(2), now);
        assert_eq!(
            note(&ahead, now).as_deref(),
            Some("device clock 2 hours ahead, filed at receipt")
        );
        assert_eq!(Timing::parse(Timing::Late.as_str()), Timing::Late);
    }

    #[test]
    fn the_stored_names_are_the_documented_values() {
        for timing in [Timing::OnTime, Timing::ClockAhead, Timing::Late] {
            assert_eq!(
                serde_json::to_value(timing).unwrap(),
                serde_json::json!(timing.as_str())
            );
            assert_eq!(Timing::parse(timing.as_str()), timing);
        }
    }
}
