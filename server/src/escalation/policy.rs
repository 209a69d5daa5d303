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

/// One tier of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Who is told.
    pub audience: Audience,
    /// Minutes this tier has to acknowledge before the next is told (default: the alert's
    /// acknowledgement window: urgent 15, high 120, medium 1440, low 4320).
    pub delay_minutes: Option<u32>,
}

/// A clinic's escalation policy: the tiers, in order. After the last tier, it is told again at
/// every further deadline until someone acknowledges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalationPolicy {
    /// One to five tiers.
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
                delay_minutes: None,
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
            if tier.delay_minutes.is_some_and(|m| !(1..=1440).contains(&m)) {
                out.insert(
                    format!("tiers[{i}].delay_minutes"),
                    "must be 1 to 1440".to_owned(),
                );
            }
        }
        out
    }

    /// The tier told after `escalations` missed deadlines: each miss climbs one tier, and the
    /// last tier is told again at every further miss.
    pub fn tier_index(&self, escalations: usize) -> usize {
        escalations.min(self.tiers.len().saturating_sub(1))
    }

    /// How long tier `index` has before the next escalation.
    pub fn delay(&self, index: usize, severity: Severity) -> TimeDelta {
        self.tiers
            .get(index)
            .and_then(|t| t.delay_minutes)
            .map_or_else(
                || ack_window(severity),
                |m| TimeDelta::minutes(i64::from(m)),
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let bad = EscalationPolicy {
            tiers: vec![Tier {
                audience: Audience::OnCall,
                delay_minutes: Some(0),
            }],
        };
        assert!(bad.problems().contains_key("tiers[0].delay_minutes"));
        assert!(
            serde_json::from_str::<EscalationPolicy>(r#"{"tiers": [{"audience": "everyone"}]}"#)
                .is_err()
        );
    }
}
