//! How a stored check-in is shown: to the patient who sent it, to the care team, and inside an
//! alert.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::check_in::store::{CheckInRow, INCOMPLETE};
use crate::check_in::timing::Timing;
use crate::escalation::decide::CareTeam;
use crate::instrument::catalogue::{Catalogue, InstrumentKey};
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
    #[schema(value_type = InstrumentKey)]
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
    #[schema(value_type = Timing, example = "on_time")]
    pub timing: String,
    /// The device's own `completed_at`, when it was not believed.
    pub device_completed_at: Option<DateTime<Utc>>,
    /// The prompt answered, if any.
    pub prompt_id: Option<String>,
    /// The score, for scored instruments.
    pub score: Option<ScoreView>,
    /// True when PHQ-9 item 9 was answered 1 or more.
    pub safety_signal: bool,
    /// `complete`, or `incomplete`: a safety answer (PHQ-9 item 9 answered 1 or more) kept
    /// although other answers were missing, out of range or unknown. An incomplete check-in has
    /// no `score`, keeps only the answers that validated, and lists what was wrong in `problems`.
    #[schema(example = "complete")]
    pub status: CheckInStatus,
    /// What was wrong with the submission, by field (`answers.q3`, `prompt_id`, ...); empty when
    /// nothing was. Only a check-in carrying a safety answer is stored with problems.
    pub problems: BTreeMap<String, String>,
    /// When the check-in was last amended: the same `id` re-sent with a higher item 9 answer.
    pub amended_at: Option<DateTime<Utc>>,
    /// The versions amendments replaced, oldest first.
    pub earlier_versions: Vec<EarlierVersionView>,
    /// For a check-in with a safety signal (item 9 answered 1 or more) or a dangerous home blood
    /// pressure: what to show the patient, with where the care team stands now
    /// (`care_team`). Present in the answer to the submission and whenever the check-in is read
    /// again, with the current `care_team`.
    pub safety: Option<SafetyNotice>,
}

/// Whether a check-in's answers all validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckInStatus {
    /// Every answer validated; scored.
    Complete,
    /// A safety answer kept with problems; not scored.
    Incomplete,
}

/// A version of a check-in that an amendment replaced.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EarlierVersionView {
    /// Its answers.
    #[schema(value_type = Object)]
    pub answers: Value,
    /// Its total, if it was scored.
    pub total: Option<i64>,
    /// `complete` or `incomplete`.
    pub status: CheckInStatus,
    /// When it said it was completed.
    pub completed_at: DateTime<Utc>,
    /// When the amendment replaced it.
    pub replaced_at: DateTime<Utc>,
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
    /// What to tell the patient, matching `care_team`: "Your care team has been told" only when
    /// something that counts happened; otherwise that the care team is being contacted, or could
    /// not be reached, and whom to call if in danger.
    pub message: String,
    /// Where the care team stands: `reached` (a person's device, a webhook answering 2xx or a
    /// mail server took the alert, or someone on the care team acted on it), `trying` (alerting
    /// has started and nothing has counted yet) or `unreachable` (nothing can count now). Read
    /// the check-in again (`GET /v1/me/check-ins/{check_in_id}`) for the current value.
    pub care_team: CareTeam,
    /// For a dangerous home blood pressure (systolic 180 or more, or diastolic 110 or more):
    /// what to do now.
    pub advice: Option<String>,
    /// Crisis lines and the emergency number for the patient's country.
    pub crisis_resources: CrisisResources,
}

/// A home blood pressure at or above which the patient is told what to do at once.
pub const DANGEROUS_SYSTOLIC: i64 = 180;
/// See [`DANGEROUS_SYSTOLIC`].
pub const DANGEROUS_DIASTOLIC: i64 = 110;

/// Whether a check-in's answers carry a dangerous home blood pressure.
pub fn dangerous_blood_pressure(answers: &Value) -> bool {
    answers["bp_systolic"]
        .as_i64()
        .is_some_and(|v| v >= DANGEROUS_SYSTOLIC)
        || answers["bp_diastolic"]
            .as_i64()
            .is_some_and(|v| v >= DANGEROUS_DIASTOLIC)
}

/// Whether a stored check-in gets a [`SafetyNotice`]: an item-9 answer of 1 or more, or a
/// dangerous home blood pressure.
pub fn needs_notice(row: &CheckInRow) -> bool {
    row.item9.is_some_and(|v| v >= 1)
        || serde_json::from_str::<Value>(&row.answers)
            .map(|a| dangerous_blood_pressure(&a))
            .unwrap_or(false)
}

/// The notice for a check-in, given where the care team stands and the patient's resources.
pub fn notice(row: &CheckInRow, care_team: CareTeam, resources: CrisisResources) -> SafetyNotice {
    let answers: Value = serde_json::from_str(&row.answers).unwrap_or(Value::Null);
    let emergency = resources
        .emergency_number
        .clone()
        .unwrap_or_else(|| "your local emergency number".to_owned());
    let advice = dangerous_blood_pressure(&answers).then(|| blood_pressure_advice(&emergency));
    SafetyNotice {
        message: safety_message(care_team, &resources),
        care_team,
        advice,
        crisis_resources: resources,
    }
}

/// What the patient is told, in words that match `care_team` (CLINICAL.md, part 2: "The patient
/// is told the truth, and what to do").
pub fn safety_message(care_team: CareTeam, resources: &CrisisResources) -> String {
    let emergency = resources
        .emergency_number
        .clone()
        .unwrap_or_else(|| "your local emergency number".to_owned());
    let line = resources.lines.iter().find_map(|line| {
        line.call
            .as_ref()
            .or(line.text.as_ref())
            .map(|number| format!("{} ({number})", line.name))
    });
    let danger = match line {
        Some(line) => format!("If you are in danger, call {emergency} or {line} now."),
        None => format!("If you are in danger, call {emergency} now."),
    };
    match care_team {
        CareTeam::Reached => format!(
            "Thank you for telling us. Your care team has been told, but they may not be \
             watching in real time. {danger}"
        ),
        CareTeam::Trying => {
            format!("Thank you for telling us. We are contacting your care team now. {danger}")
        }
        CareTeam::Unreachable => format!(
            "Thank you for telling us. We could not reach your care team right now. {danger}"
        ),
    }
}

/// What to do about a dangerous home blood pressure (CLINICAL.md, part 2).
pub fn blood_pressure_advice(emergency: &str) -> String {
    format!(
        "Your blood pressure reading is very high. Call {emergency} now if you have chest pain, \
         shortness of breath, a severe headache, weakness, confusion, or trouble seeing or \
         speaking. Otherwise rest, measure again in 5 minutes, and call your clinic."
    )
}

fn status_of(stored: &str) -> CheckInStatus {
    if stored == INCOMPLETE {
        CheckInStatus::Incomplete
    } else {
        CheckInStatus::Complete
    }
}

/// The API view of a stored check-in.
pub fn view(row: &CheckInRow, catalogue: &Catalogue, safety: Option<SafetyNotice>) -> CheckIn {
    let answers: Value = serde_json::from_str(&row.answers).unwrap_or(Value::Null);
    let max = catalogue
        .find(&row.instrument, Some(row.instrument_version))
        .and_then(|i| i.scoring.as_ref())
        .map(|s| s.max);
    let phq2_total = (row.instrument == "phq9" && row.total.is_some())
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
        safety_signal: row.safety_signal(),
        status: status_of(&row.status),
        problems: row.problem_list(),
        amended_at: row.amended_at.map(utc),
        earlier_versions: row
            .earlier()
            .into_iter()
            .map(|v| EarlierVersionView {
                answers: v.answers,
                total: v.total.map(i64::from),
                status: status_of(&v.status),
                completed_at: utc(v.completed_at),
                replaced_at: utc(v.replaced_at),
            })
            .collect(),
        safety,
    }
}
