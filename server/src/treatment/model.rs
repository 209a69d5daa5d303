//! Treatment-session domain types and the pure rules for changing a session.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How the treatment is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Modality {
    /// Intravenous ketamine infusion.
    IvInfusion,
    /// Intramuscular ketamine.
    Intramuscular,
    /// Esketamine nasal spray.
    IntranasalEsketamine,
    /// Oral or sublingual ketamine lozenge.
    OralLozenge,
}

impl Modality {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Modality::IvInfusion => "iv_infusion",
            Modality::Intramuscular => "intramuscular",
            Modality::IntranasalEsketamine => "intranasal_esketamine",
            Modality::OralLozenge => "oral_lozenge",
        }
    }

    /// Reads a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Modality::IvInfusion,
            Modality::Intramuscular,
            Modality::IntranasalEsketamine,
            Modality::OralLozenge,
        ]
        .into_iter()
        .find(|m| m.as_str() == text)
    }
}

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Planned.
    Scheduled,
    /// Took place.
    Completed,
    /// Will not take place.
    Cancelled,
}

impl SessionStatus {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Scheduled => "scheduled",
            SessionStatus::Completed => "completed",
            SessionStatus::Cancelled => "cancelled",
        }
    }

    /// Reads a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "scheduled" => Some(SessionStatus::Scheduled),
            "completed" => Some(SessionStatus::Completed),
            "cancelled" => Some(SessionStatus::Cancelled),
            _ => None,
        }
    }
}

/// A blood-pressure reading, mmHg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BloodPressure {
    /// Systolic, 60 to 260.
    #[schema(minimum = 60, maximum = 260)]
    pub systolic: i32,
    /// Diastolic, 30 to 160, below systolic.
    #[schema(minimum = 30, maximum = 160)]
    pub diastolic: i32,
}

/// What staff observed in clinic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Observations {
    /// Blood pressure before dosing.
    pub bp_before: Option<BloodPressure>,
    /// Blood pressure after dosing (before discharge).
    pub bp_after: Option<BloodPressure>,
    /// Clinician-rated dissociation, 0 (none) to 10 (extreme).
    #[schema(minimum = 0, maximum = 10)]
    pub dissociation: Option<i32>,
    /// Sedation on the MOAA/S scale, 0 (unresponsive) to 5 (alert).
    #[schema(minimum = 0, maximum = 5)]
    pub sedation: Option<i32>,
    /// Free-text notes, at most 2000 characters.
    #[schema(max_length = 2000)]
    pub notes: Option<String>,
}

impl Observations {
    /// Checks ranges; problems are keyed `observations.<field>`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, bp) in [("bp_before", self.bp_before), ("bp_after", self.bp_after)] {
            if let Some(bp) = bp
                && (!(60..=260).contains(&bp.systolic)
                    || !(30..=160).contains(&bp.diastolic)
                    || bp.systolic <= bp.diastolic)
            {
                out.push((
                    format!("observations.{name}"),
                    "must be systolic 60-260 over diastolic 30-160, systolic higher".into(),
                ));
            }
        }
        if self.dissociation.is_some_and(|d| !(0..=10).contains(&d)) {
            out.push(("observations.dissociation".into(), "must be 0 to 10".into()));
        }
        if self.sedation.is_some_and(|s| !(0..=5).contains(&s)) {
            out.push(("observations.sedation".into(), "must be 0 to 5".into()));
        }
        if self
            .notes
            .as_ref()
            .is_some_and(|n| n.chars().count() > 2000)
        {
            out.push((
                "observations.notes".into(),
                "must be at most 2000 characters".into(),
            ));
        }
        out
    }
}

/// A requested change to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Move to another time.
    Move,
    /// Record that it took place.
    Complete,
    /// Record observations.
    Observe,
    /// Call it off.
    Cancel,
}

/// Why a change is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Cancelled sessions are final.
    Cancelled,
    /// A completed session cannot be moved, completed again or cancelled.
    Completed,
}

/// Whether `change` may be applied to a session in `status`. Cancelling a cancelled session is
/// allowed (a repeated request), and so is recording observations on a completed one.
pub fn may_change(status: SessionStatus, change: Change) -> Result<(), Refusal> {
    match (status, change) {
        (SessionStatus::Scheduled, _) => Ok(()),
        (SessionStatus::Completed, Change::Observe) => Ok(()),
        (SessionStatus::Completed, _) => Err(Refusal::Completed),
        (SessionStatus::Cancelled, Change::Cancel) => Ok(()),
        (SessionStatus::Cancelled, _) => Err(Refusal::Cancelled),
    }
}

/// Sessions may be recorded up to two years either side of now.
const SCHEDULE_RANGE: chrono::TimeDelta = chrono::TimeDelta::days(730);

/// Adds a problem for `scheduled_at` when `at` is more than two years from `now`.
pub fn check_schedule_time(
    at: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
    problems: &mut std::collections::BTreeMap<String, String>,
) {
    if (at - now).abs() > SCHEDULE_RANGE {
        problems.insert(
            "scheduled_at".into(),
            "must be within two years of today".into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transition_table() {
        use Change::*;
        use SessionStatus::*;
        for change in [Move, Complete, Observe, Cancel] {
            assert_eq!(may_change(Scheduled, change), Ok(()));
        }
        assert_eq!(may_change(Completed, Observe), Ok(()));
        for change in [Move, Complete, Cancel] {
            assert_eq!(may_change(Completed, change), Err(Refusal::Completed));
        }
        assert_eq!(may_change(Cancelled, Cancel), Ok(()));
        for change in [Move, Complete, Observe] {
            assert_eq!(may_change(Cancelled, change), Err(Refusal::Cancelled));
        }
    }

    #[test]
    fn observations_are_range_checked() {
        let bad = Observations {
            bp_before: Some(BloodPressure {
                systolic: 80,
                diastolic: 90,
            }),
            bp_after: Some(BloodPressure {
                systolic: 300,
                diastolic: 90,
            }),
            dissociation: Some(11),
            sedation: Some(-1),
            notes: Some("x".repeat(2001)),
        };
        assert_eq!(bad.problems().len(), 5);
        assert!(Observations::default().problems().is_empty());
    }
}
