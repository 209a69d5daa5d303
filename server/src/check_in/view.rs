//! How a stored check-in is shown: to the patient who sent it, to the care team, and inside an
//! alert.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::check_in::store::CheckInRow;
use crate::instrument::catalogue::Catalogue;
use crate::safety::crisis::CrisisResources;
use crate::time::utc;

/// A stored check-in.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CheckIn {
    /// The app's id.
    pub id: String,
    /// The patient.
    pub patient_id: String,
    /// Catalogue key.
    pub instrument: String,
    /// Catalogue version answered.
    pub instrument_version: i32,
    /// The validated answers.
    #[schema(value_type = Object)]
    pub answers: Value,
    /// When the patient finished: the device's time, or the receipt when the device's clock was
    /// ahead (`timing` says which).
    pub completed_at: DateTime<Utc>,
    /// When the server stored it.
    pub received_at: DateTime<Utc>,
    /// `on_time`; `clock_ahead` (the device's time was more than 5 minutes ahead of the server:
    /// filed at receipt, the device's time in `device_completed_at`); or `late` (completed more
    /// than 30 days before it arrived).
    #[schema(example = "on_time")]
    pub timing: String,
    /// The device's own `completed_at`, when it was not believed.
    pub device_completed_at: Option<DateTime<Utc>>,
    /// The prompt answered, if any.
    pub prompt_id: Option<String>,
    /// The score, for scored instruments.
    pub score: Option<ScoreView>,
    /// True when PHQ-9 item 9 was answered 1 or more.
    pub safety_signal: bool,
    /// In the response to a submission with a safety signal: what to show the patient now.
    pub safety: Option<SafetyNotice>,
}

/// A score.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScoreView {
    /// Total.
    pub total: i64,
    /// Highest possible total.
    pub max: i64,
    /// Severity band key (e.g. `moderately_severe`).
    pub severity: Option<String>,
    /// PHQ-2 total (items 1 and 2) for a PHQ-9.
    pub phq2_total: Option<i64>,
}

/// Shown to a patient whose answers signal risk.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SafetyNotice {
    /// An honest statement of who sees the answer and when.
    pub message: String,
    /// Crisis lines and the emergency number for the clinic's country.
    pub crisis_resources: CrisisResources,
}

/// What a patient whose answers signal risk is told.
pub const SAFETY_MESSAGE: &str = "Thank you for telling us. Your care team has been notified, but they may not be watching in real time.";

/// The API view of a stored check-in.
pub fn view(row: &CheckInRow, catalogue: &Catalogue, safety: Option<SafetyNotice>) -> CheckIn {
    let answers: Value = serde_json::from_str(&row.answers).unwrap_or(Value::Null);
    let max = catalogue
        .find(&row.instrument, Some(row.instrument_version))
        .and_then(|i| i.scoring.as_ref())
        .map(|s| s.max);
    let phq2_total = (row.instrument == "phq9")
        .then(|| answers["q1"].as_i64().unwrap_or(0) + answers["q2"].as_i64().unwrap_or(0));
    CheckIn {
        id: row.id.clone(),
        patient_id: row.patient_id.clone(),
        instrument: row.instrument.clone(),
        instrument_version: row.instrument_version,
        answers,
        completed_at: utc(row.completed_at),
        received_at: utc(row.received_at),
        timing: row.timing.clone(),
        device_completed_at: row.device_completed_at.map(utc),
        prompt_id: row.prompt_id.clone(),
        score: match (row.total, max) {
            (Some(total), Some(max)) => Some(ScoreView {
                total: i64::from(total),
                max,
                severity: row.severity.clone(),
                phq2_total,
            }),
            _ => None,
        },
        safety_signal: row.item9.is_some_and(|v| v >= 1),
        safety,
    }
}
