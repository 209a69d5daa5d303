//! Who is told about an alert, and when: the acknowledgement window per severity (CLINICAL.md
//! defaults) and the clinic's escalation policy, the tiers an unacknowledged alert climbs. Pure.

use std::collections::BTreeMap;

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::rules::Severity;

/// How long the care team has to acknowledge a new alert before it escalates.
pub fn ack_window(severity: Severity) -> TimeDelta {
    match severity {
        Severity::Urgent => TimeDelta::minutes(15),
        Severity::High => TimeDelta::hours(2),
        Severity::Medium => TimeDelta::hours(24),
        Severity::Low => TimeDelta::hours(72),
    }
}

/// A group of staff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// Clinicians and admins who marked themselves on call.
    OnCall,
    /// Every clinician of the clinic.
    Clinicians,
    /// Every clinic admin.
    ClinicAdmins,
}

/// Minutes a tier has to acknowledge, per severity. Left out: the severity's acknowledgement
/// window (urgent 15, high 120, medium 1440, low 4320). Each severity keeps its own pace, so a
/// clinic that slows low alerts does not slow a safety signal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeverityDelays {
    /// Urgent alerts (safety signals): 1 to 60.
    #[schema(minimum = 1, maximum = 60, example = 15)]
    pub urgent: Option<u32>,
    /// High: 1 to 1440.
    #[schema(minimum = 1, maximum = 1440, example = 120)]
    pub high: Option<u32>,
    /// Medium: 1 to 10080.
    #[schema(minimum = 1, maximum = 10080, example = 1440)]
    pub medium: Option<u32>,
    /// Low: 1 to 10080.
    #[schema(minimum = 1, maximum = 10080, example = 4320)]
    pub low: Option<u32>,
}

impl SeverityDelays {
    fn get(&self, severity: Severity) -> Option<u32> {
        match severity {
            Severity::Urgent => self.urgent,
            Severity::High => self.high,
            Severity::Medium => self.medium,
            Severity::Low => self.low,
        }
    }

    /// The delay in force for `severity`.
    pub fn delay(&self, severity: Severity) -> TimeDelta {
        self.get(severity).map_or_else(
            || ack_window(severity),
            |m| TimeDelta::minutes(i64::from(m)),
        )
    }

    /// Every severity with its delay in force, as the API shows and stores it.
    fn resolved(&self) -> BTreeMap<&'static str, i64> {
        SEVERITIES
            .iter()
            .map(|(name, severity)| (*name, self.delay(*severity).num_minutes()))
            .collect()
    }
}

const SEVERITIES: [(&str, Severity); 4] = [
    ("urgent", Severity::Urgent),
    ("high", Severity::High),
    ("medium", Severity::Medium),
    ("low", Severity::Low),
];

/// The most an urgent tier may wait, in minutes.
const URGENT_MAX: u32 = 60;

/// Reads `delay_minutes`: per severity, or (the earlier form) one number for every severity,
/// which now applies to all but urgent alerts; urgent ones keep at most their 15 minutes.
fn delays_or_legacy<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SeverityDelays, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Legacy(u32),
        PerSeverity(SeverityDelays),
    }
    Ok(match Option::<Form>::deserialize(d)? {
        None => SeverityDelays::default(),
        Some(Form::PerSeverity(delays)) => delays,
        Some(Form::Legacy(minutes)) => SeverityDelays {
            urgent: Some(minutes.min(ack_window(Severity::Urgent).num_minutes() as u32)),
            high: Some(minutes),
            medium: Some(minutes),
            low: Some(minutes),
        },
    })
}

fn resolved_delays<S: serde::Serializer>(delays: &SeverityDelays, s: S) -> Result<S::Ok, S::Error> {
    delays.resolved().serialize(s)
}

/// One tier of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Who is told.
    pub audience: Audience,
    /// Minutes this tier has to acknowledge before the next is told, per severity (answers
    /// always show all four). A single number, the earlier form, is read as that delay for high,
    /// medium and low alerts, and for urgent ones at most 15.
    #[serde(
        default,
        deserialize_with = "delays_or_legacy",
        serialize_with = "resolved_delays"
    )]
    pub delay_minutes: SeverityDelays,
}

/// A clinic's escalation policy: the tiers, in order. After the last tier, it is told again at
/// every further deadline until someone acknowledges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalationPolicy {
    /// One to five tiers.
    #[schema(min_items = 1, max_items = 5)]
    pub tiers: Vec<Tier>,
}

impl Default for EscalationPolicy {
    fn default() -> Self {
        Self {
            tiers: [
                Audience::OnCall,
                Audience::Clinicians,
                Audience::ClinicAdmins,
            ]
            .into_iter()
            .map(|audience| Tier {
                audience,
                delay_minutes: SeverityDelays::default(),
            })
            .collect(),
        }
    }
}

impl EscalationPolicy {
    /// Problems, keyed by field.
    pub fn problems(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if self.tiers.is_empty() || self.tiers.len() > 5 {
            out.insert("tiers".to_owned(), "must have 1 to 5 tiers".to_owned());
        }
        for (i, tier) in self.tiers.iter().enumerate() {
            for (name, severity) in SEVERITIES {
                let max = match severity {
                    Severity::Urgent => URGENT_MAX,
                    Severity::High => 1440,
                    Severity::Medium | Severity::Low => 10080,
                };
                if tier
                    .delay_minutes
                    .get(severity)
                    .is_some_and(|m| !(1..=max).contains(&m))
                {
                    out.insert(
                        format!("tiers[{i}].delay_minutes.{name}"),
                        format!("must be 1 to {max}"),
                    );
                }
            }
        }
        out
    }

    /// The last tier's index.
    pub fn last_tier(&self) -> usize {
        self.tiers.len().saturating_sub(1)
    }

    /// The tier told after `escalations` missed deadlines: each miss climbs one tier, and the
    /// last tier is told again at every further miss.
    pub fn tier_index(&self, escalations: usize) -> usize {
        escalations.min(self.last_tier())
    }

    /// How long tier `index` has before the next escalation, for an alert of `severity`.
    pub fn delay(&self, index: usize, severity: Severity) -> TimeDelta {
        self.tiers
            .get(index)
            .map_or_else(|| ack_window(severity), |t| t.delay_minutes.delay(severity))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slowing_low_alerts_leaves_item_nine_at_its_pace() {
        // The earlier form: one delay for every severity.
        let legacy: EscalationPolicy =
            serde_json::from_str(r#"{"tiers": [{"audience": "on_call", "delay_minutes": 60}]}"#)
                .unwrap();
        assert_eq!(legacy.delay(0, Severity::Urgent), TimeDelta::minutes(15));
        assert_eq!(legacy.delay(0, Severity::Low), TimeDelta::minutes(60));
        let slow_low: EscalationPolicy = serde_json::from_str(
            r#"{"tiers": [{"audience": "on_call", "delay_minutes": {"low": 600}}]}"#,
        )
        .unwrap();
        assert_eq!(slow_low.delay(0, Severity::Urgent), TimeDelta::minutes(15));
        assert_eq!(slow_low.delay(0, Severity::High), TimeDelta::hours(2));
        assert_eq!(slow_low.delay(0, Severity::Low), TimeDelta::hours(10));
        // Shown and stored with every severity filled in, and read back the same.
        let shown = serde_json::to_value(&slow_low).unwrap();
        assert_eq!(
            shown["tiers"][0]["delay_minutes"],
            serde_json::json!({"urgent": 15, "high": 120, "medium": 1440, "low": 600})
        );
        let back: EscalationPolicy = serde_json::from_value(shown).unwrap();
        assert_eq!(back.delay(0, Severity::Low), TimeDelta::hours(10));
        assert!(back.problems().is_empty());
    }

    #[test]
    fn windows_follow_the_clinical_defaults_and_tiers_climb_then_repeat() {
        assert_eq!(ack_window(Severity::Urgent), TimeDelta::minutes(15));
        assert_eq!(ack_window(Severity::High), TimeDelta::hours(2));
        assert_eq!(ack_window(Severity::Medium), TimeDelta::hours(24));
        assert_eq!(ack_window(Severity::Low), TimeDelta::hours(72));
        let policy = EscalationPolicy::default();
        let climbed: Vec<Audience> = (0..6)
            .map(|n| policy.tiers[policy.tier_index(n)].audience)
            .collect();
        assert_eq!(
            climbed,
            [
                Audience::OnCall,
                Audience::Clinicians,
                Audience::ClinicAdmins,
                Audience::ClinicAdmins,
                Audience::ClinicAdmins,
                Audience::ClinicAdmins
            ]
        );
        assert_eq!(policy.delay(1, Severity::High), TimeDelta::hours(2));
    }

    #[test]
    fn a_clinic_policy_sets_its_own_delays_and_is_validated() {
        let policy: EscalationPolicy = serde_json::from_str(
            r#"{"tiers": [{"audience": "clinic_admins", "delay_minutes": 5}]}"#,
        )
        .unwrap();
        assert!(policy.problems().is_empty());
        assert_eq!(policy.tier_index(3), 0);
        assert_eq!(policy.delay(0, Severity::Low), TimeDelta::minutes(5));
        let bad = EscalationPolicy { tiers: vec![] };
        assert!(bad.problems().contains_key("tiers"));
        let bad: EscalationPolicy = serde_json::from_str(
            r#"{"tiers": [{"audience": "on_call", "delay_minutes": {"urgent": 0, "low": 20000}}]}"#,
        )
        .unwrap();
        let problems = bad.problems();
        assert!(problems.contains_key("tiers[0].delay_minutes.urgent"));
        assert!(problems.contains_key("tiers[0].delay_minutes.low"));
        assert!(
            serde_json::from_str::<EscalationPolicy>(
                r#"{"tiers": [{"audience": "on_call", "delay_minutes": {"soon": 1}}]}"#
            )
            .is_err()
        );
        assert!(
            serde_json::from_str::<EscalationPolicy>(r#"{"tiers": [{"audience": "everyone"}]}"#)
                .is_err()
        );
    }
}
