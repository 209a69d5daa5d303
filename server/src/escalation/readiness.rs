//! What would leave a clinic's alert unreachable, before it happens: nobody on call, tiers with
//! nobody in them or nobody with a device, staff without devices, no country for the crisis
//! resources. Pure: who is in each tier, and whether they have a device, is passed in.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::decide::{self, TierReach};
use super::policy::{Audience, EscalationPolicy};
use super::store::Member;

/// One thing that would keep an alert from reaching someone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// `nobody_reachable`, `nobody_on_call`, `on_call_unreachable`, `tier_empty`,
    /// `tier_unreachable`, `staff_without_devices` or `no_country`; and what would leave
    /// patients unmonitored: `care_plan_without_item9`, `patient_plan_without_item9` or
    /// `consent_unanswered`.
    #[schema(example = "nobody_on_call")]
    pub code: String,
    /// What it means and what to do, in plain words.
    pub message: String,
    /// The escalation tier concerned, if one.
    pub tier: Option<usize>,
    /// The accounts concerned, if any: staff, or patients for the monitoring problems.
    pub account_ids: Vec<String>,
}

/// A clinic's readiness to receive alerts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// The clinic.
    pub clinic_id: String,
    /// Whether an alert raised now would reach someone.
    pub reachable: bool,
    /// The country its patients' crisis resources are for, if one could be found.
    pub country: Option<String>,
    /// How it was found: `clinic_country`, `clinic_timezone` or `unknown` (then each patient's
    /// own zone decides).
    pub country_source: String,
    /// Problems, most serious first; empty when all is well.
    pub problems: Vec<Problem>,
}

fn problem(code: &str, message: String, tier: Option<usize>, ids: Vec<String>) -> Problem {
    Problem {
        code: code.to_owned(),
        message,
        tier,
        account_ids: ids,
    }
}

/// Assesses a clinic from its policy, the members of each tier with whether each has an active
/// device, whether it has a webhook, and its country (and how that was found).
pub fn assess(
    clinic_id: &str,
    policy: &EscalationPolicy,
    tiers: &[Vec<(Member, bool)>],
    webhook: bool,
    country: (Option<String>, &str),
) -> Readiness {
    let reach: Vec<TierReach> = tiers
        .iter()
        .map(|members| TierReach {
            staff: members.len(),
            with_device: members.iter().filter(|(_, has)| *has).count(),
            webhook,
        })
        .collect();
    let reachable = decide::choose_tier(&reach, 0).is_some();
    let mut problems = Vec::new();
    if !reachable {
        problems.push(problem(
            "nobody_reachable",
            "An alert raised now would reach nobody: no one in any tier has an active device and \
             the clinic has no webhook. The organisation's admins would be told."
                .into(),
            None,
            Vec::new(),
        ));
    }
    for (i, (tier, members)) in policy.tiers.iter().zip(tiers).enumerate() {
        let without: Vec<String> = members
            .iter()
            .filter(|(_, has)| !has)
            .map(|(m, _)| m.id.clone())
            .collect();
        match (tier.audience, members.is_empty()) {
            (Audience::OnCall, true) => problems.push(problem(
                "nobody_on_call",
                format!("Nobody is on call: tier {i} is skipped and the next tier is told."),
                Some(i),
                Vec::new(),
            )),
            (Audience::OnCall, false) if !reach[i].reachable() => problems.push(problem(
                "on_call_unreachable",
                format!(
                    "Nobody on call has an active device: tier {i} is skipped and the next tier \
                     is told."
                ),
                Some(i),
                without,
            )),
            (_, true) => problems.push(problem(
                "tier_empty",
                format!("Tier {i} has nobody in it and is skipped."),
                Some(i),
                Vec::new(),
            )),
            (_, false) if !reach[i].reachable() => problems.push(problem(
                "tier_unreachable",
                format!("Nobody in tier {i} has an active device: it is skipped."),
                Some(i),
                without,
            )),
            _ => {}
        }
    }
    let mut without: Vec<String> = tiers
        .iter()
        .flatten()
        .filter(|(_, has)| !has)
        .map(|(m, _)| m.id.clone())
        .collect();
    without.sort();
    without.dedup();
    if !without.is_empty() {
        problems.push(problem(
            "staff_without_devices",
            format!(
                "{} member(s) of staff in the escalation tiers have no active device and can only \
                 be reached through the clinic's webhook.",
                without.len()
            ),
            None,
            without,
        ));
    }
    let (country, source) = country;
    if country.is_none() {
        problems.push(problem(
            "no_country",
            "The clinic has no country and its time zone belongs to none: each patient's own zone \
             decides their crisis lines, else they are shown the clinic's number and an \
             international directory. Set the clinic's country."
                .into(),
            None,
            Vec::new(),
        ));
    }
    Readiness {
        clinic_id: clinic_id.to_owned(),
        reachable,
        country,
        country_source: source.to_owned(),
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, on_call: bool) -> Member {
        Member {
            id: id.into(),
            on_call,
            timezone: "UTC".into(),
            working_hours: None,
        }
    }

    fn codes(r: &Readiness) -> Vec<&str> {
        r.problems.iter().map(|p| p.code.as_str()).collect()
    }

    #[test]
    fn a_clinic_nobody_can_reach_says_so_before_an_alert_does() {
        let policy = EscalationPolicy::default();
        let tiers = vec![vec![], vec![(member("c1", false), false)], vec![]];
        let r = assess("k", &policy, &tiers, false, (None, "unknown"));
        assert!(!r.reachable);
        assert_eq!(
            codes(&r),
            [
                "nobody_reachable",
                "nobody_on_call",
                "tier_unreachable",
                "tier_empty",
                "staff_without_devices",
                "no_country"
            ]
        );
        // A webhook makes every tier with someone in it reachable.
        let r = assess(
            "k",
            &policy,
            &tiers,
            true,
            (Some("US".into()), "clinic_timezone"),
        );
        assert!(r.reachable);
        assert_eq!(
            codes(&r),
            ["nobody_on_call", "tier_empty", "staff_without_devices"]
        );
    }

    #[test]
    fn a_ready_clinic_has_no_problems() {
        let policy = EscalationPolicy::default();
        let tiers = vec![
            vec![(member("c1", true), true)],
            vec![(member("c1", true), true)],
            vec![(member("a1", false), true)],
        ];
        let r = assess(
            "k",
            &policy,
            &tiers,
            false,
            (Some("US".into()), "clinic_country"),
        );
        assert!(r.reachable && r.problems.is_empty(), "{r:?}");
    }
}
