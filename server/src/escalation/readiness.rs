//! What would leave a clinic's alert unreachable, before it happens: push not configured, a
//! failing webhook, nobody on call (so nobody on duty outside working hours), tiers with nobody in
//! them or nobody with a working channel, staff without devices, no country for the crisis
//! resources. Pure: who is in each tier, their devices, the webhooks' health and the channels
//! configured are passed in.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::decide::{self, TierReach};
use super::policy::{Audience, EscalationPolicy};
use super::store::Member;

/// One thing that would keep an alert from reaching someone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// `nobody_reachable`, `push_not_configured`, `webhook_failing`,
    /// `nobody_reachable_outside_working_hours`, `nobody_on_call`, `on_call_unreachable`,
    /// `tier_empty`, `tier_unreachable`, `staff_without_devices` or `no_country`; and what would
    /// leave
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
    /// Whether an alert raised now has someone to try with a working channel (an active device
    /// on a configured push service, a webhook that is not failing, or email).
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

/// A webhook endpoint's health, as its deliveries left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookHealth {
    /// The endpoint.
    pub id: String,
    /// Since when its deliveries fail (none while the last one succeeded).
    pub failing_since: Option<chrono::NaiveDateTime>,
    /// Why the last one failed.
    pub last_failure: Option<String>,
}

/// What a clinic's alerts could be delivered through.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Means {
    /// The members of each tier, each with whether they have an active device on a configured
    /// push service.
    pub tiers: Vec<Vec<(Member, bool)>>,
    /// Staff of the tiers whose active devices are all on a push service without credentials.
    pub unpushable: Vec<String>,
    /// The clinic's active webhook endpoints.
    pub webhooks: Vec<WebhookHealth>,
    /// The channels this installation has.
    pub channels: super::decide::Channels,
}

/// Assesses a clinic from its policy, what its alerts could be delivered through, and its
/// country (and how that was found).
pub fn assess(
    clinic_id: &str,
    policy: &EscalationPolicy,
    means: &Means,
    country: (Option<String>, &str),
) -> Readiness {
    let tiers = &means.tiers;
    // A failing webhook is no way to reach anyone until it answers again.
    let webhook = means.webhooks.iter().any(|w| w.failing_since.is_none());
    let reach: Vec<TierReach> = tiers
        .iter()
        .map(|members| TierReach {
            staff: members.len(),
            with_device: members.iter().filter(|(_, has)| *has).count(),
            webhook,
            email: means.channels.email,
        })
        .collect();
    let reachable = decide::choose_tier(&reach, 0).is_some();
    let mut problems = Vec::new();
    if !reachable {
        problems.push(problem(
            "nobody_reachable",
            "An alert raised now would reach nobody: no one in any tier has an active device on \
             a configured push service, the clinic has no working webhook and email is not \
             configured. The organisation's admins would be told."
                .into(),
            None,
            Vec::new(),
        ));
    }
    let missing: Vec<&str> = [
        ("iOS (APNs)", means.channels.ios),
        ("Android (FCM)", means.channels.android),
        ("browsers (Web Push)", means.channels.web),
    ]
    .iter()
    .filter(|(_, configured)| !configured)
    .map(|(name, _)| *name)
    .collect();
    if !missing.is_empty() {
        problems.push(problem(
            "push_not_configured",
            format!(
                "Push is not configured for {}: alerts to these devices are never sent and do \
                 not count as reaching anyone.",
                missing.join(" and ")
            ),
            None,
            means.unpushable.clone(),
        ));
    }
    for hook in &means.webhooks {
        if let Some(since) = hook.failing_since {
            problems.push(problem(
                "webhook_failing",
                format!(
                    "Webhook {} failing since {} UTC ({}): it does not count as reaching anyone \
                     until it answers 2xx again.",
                    hook.id,
                    since.format("%Y-%m-%d %H:%M"),
                    hook.last_failure.as_deref().unwrap_or("no answer")
                ),
                None,
                Vec::new(),
            ));
        }
    }
    if !tiers.iter().flatten().any(|(m, _)| m.on_call) {
        problems.push(problem(
            "nobody_reachable_outside_working_hours",
            "Nobody is on call: outside working hours nobody is on duty, so an urgent or high \
             alert at night or at the weekend goes straight to staff who are off duty."
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
                    "Nobody on call can be reached (no device on a configured push service, no \
                     working webhook, no email): tier {i} is skipped and the next tier is told."
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
                format!("Nobody in tier {i} can be reached: it is skipped."),
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
                "{} member(s) of staff in the escalation tiers have no active device on a \
                 configured push service and can only be reached through the clinic's webhook or \
                 email.",
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
    use super::super::decide::Channels;
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

    const PUSH: Channels = Channels {
        ios: true,
        android: true,
        web: true,
        email: false,
    };

    #[test]
    fn a_clinic_nobody_can_reach_says_so_before_an_alert_does() {
        let policy = EscalationPolicy::default();
        let means = Means {
            tiers: vec![vec![], vec![(member("c1", false), false)], vec![]],
            channels: PUSH,
            ..Means::default()
        };
        let r = assess("k", &policy, &means, (None, "unknown"));
        assert!(!r.reachable);
        assert_eq!(
            codes(&r),
            [
                "nobody_reachable",
                "nobody_reachable_outside_working_hours",
                "nobody_on_call",
                "tier_unreachable",
                "tier_empty",
                "staff_without_devices",
                "no_country"
            ]
        );
        // A working webhook makes every tier with someone in it reachable; a failing one does
        // not, and says since when.
        let healthy = WebhookHealth {
            id: "w1".into(),
            failing_since: None,
            last_failure: None,
        };
        let with_hook = Means {
            webhooks: vec![healthy.clone()],
            ..means.clone()
        };
        let r = assess(
            "k",
            &policy,
            &with_hook,
            (Some("US".into()), "clinic_timezone"),
        );
        assert!(r.reachable);
        assert_eq!(
            codes(&r),
            [
                "nobody_reachable_outside_working_hours",
                "nobody_on_call",
                "tier_empty",
                "staff_without_devices"
            ]
        );
        let failing = Means {
            webhooks: vec![WebhookHealth {
                failing_since: Some(
                    chrono::NaiveDate::from_ymd_opt(2026, 12, 5)
                        .unwrap()
                        .and_hms_opt(22, 10, 0)
                        .unwrap(),
                ),
                last_failure: Some("endpoint answered 503".into()),
                ..healthy
            }],
            ..means.clone()
        };
        let r = assess(
            "k",
            &policy,
            &failing,
            (Some("US".into()), "clinic_timezone"),
        );
        assert!(!r.reachable);
        let hook = r
            .problems
            .iter()
            .find(|p| p.code == "webhook_failing")
            .unwrap();
        assert!(
            hook.message.contains("failing since 2026-12-05 22:10"),
            "{}",
            hook.message
        );
        // Email reaches every tier with someone in it.
        let mail = Means {
            channels: Channels {
                email: true,
                ..PUSH
            },
            ..means
        };
        assert!(assess("k", &policy, &mail, (None, "unknown")).reachable);
    }

    #[test]
    fn push_without_credentials_is_named() {
        let policy = EscalationPolicy::default();
        let means = Means {
            tiers: vec![
                vec![(member("c1", true), false)],
                vec![(member("c1", true), false)],
                vec![(member("a1", false), false)],
            ],
            unpushable: vec!["c1".into(), "a1".into()],
            channels: Channels::default(),
            ..Means::default()
        };
        let r = assess("k", &policy, &means, (Some("US".into()), "clinic_country"));
        assert!(!r.reachable);
        let push = r
            .problems
            .iter()
            .find(|p| p.code == "push_not_configured")
            .unwrap();
        assert!(push.message.contains("iOS (APNs) and Android (FCM)"));
        assert_eq!(push.account_ids, ["c1", "a1"]);
    }

    #[test]
    fn a_ready_clinic_has_no_problems() {
        let policy = EscalationPolicy::default();
        let means = Means {
            tiers: vec![
                vec![(member("c1", true), true)],
                vec![(member("c1", true), true)],
                vec![(member("a1", false), true)],
            ],
            channels: PUSH,
            ..Means::default()
        };
        let r = assess("k", &policy, &means, (Some("US".into()), "clinic_country"));
        assert!(r.reachable && r.problems.is_empty(), "{r:?}");
    }
}
