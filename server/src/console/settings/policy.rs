//! The settings page's escalation policy: the tiers an unacknowledged alert climbs (who is told,
//! and each severity's delay) as a table of rows, read from a posted form into a policy and
//! saved through the `PUT …/escalation-policy` use case.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};

use crate::app::AppState;
use crate::console::form::SignedForm;
use crate::escalation::AlertingSetting;
use crate::escalation::alerting::AlertingChange;
use crate::escalation::policy::{Audience, EscalationPolicy, SeverityDelays, Tier};

use super::{save_setting, text};

/// Escalation tiers a clinic may have at most (the policy's own limit).
const MAX_TIERS: usize = 5;

const AUDIENCES: [(Audience, &str, &str); 3] = [
    (Audience::OnCall, "on_call", "Staff on call"),
    (Audience::Clinicians, "clinicians", "All clinicians"),
    (Audience::ClinicAdmins, "clinic_admins", "Clinic admins"),
];

const SEVERITY_NAMES: [&str; 4] = ["urgent", "high", "medium", "low"];

/// The section: one row per tier (up to [`MAX_TIERS`]), editable by clinic admins.
pub(super) fn section(policy: &EscalationPolicy, admin: bool, csrf: &str) -> Markup {
    let disabled = !admin;
    html! {
        section aria-labelledby="policy-h" {
            h2 id="policy-h" { "Escalation policy" }
            p class="note" { "An unacknowledged alert climbs these tiers in order. Each tier waits its delay (minutes) for the alert's severity before the next is told; an empty delay uses the default window (urgent 15, high 120, medium 1440, low 4320)." }
            form method="post" action="/console/settings/escalation-policy" id="policy-form" {
                input type="hidden" name="csrf" value=(csrf);
                table class="list" {
                    thead { tr {
                        th scope="col" { "Tier" } th scope="col" { "Who is told" }
                        @for s in SEVERITY_NAMES { th scope="col" { "Delay, " (s) } }
                    } }
                    tbody {
                        @for i in 0..MAX_TIERS {
                            @let tier = policy.tiers.get(i);
                            tr {
                                td data-label="Tier" { (i + 1) }
                                td data-label="Who is told" {
                                    label class="sr-only" for={ "tier" (i) "-audience" } { "Tier " (i + 1) ": who is told" }
                                    select id={ "tier" (i) "-audience" } name={ "tier" (i) "_audience" } disabled[disabled] {
                                        option value="" selected[tier.is_none()] { "(no tier)" }
                                        @for (audience, value, label) in AUDIENCES {
                                            option value=(value) selected[tier.is_some_and(|t| t.audience == audience)] { (label) }
                                        }
                                    }
                                }
                                @for s in SEVERITY_NAMES {
                                    td data-label={ "Delay, " (s) } {
                                        label class="sr-only" for={ "tier" (i) "-" (s) } { "Tier " (i + 1) " delay for " (s) " alerts, minutes" }
                                        input id={ "tier" (i) "-" (s) } name={ "tier" (i) "_" (s) } inputmode="numeric" size="5" disabled[disabled]
                                            placeholder=(default_delay(s))
                                            value=(tier.and_then(|t| delay_of(&t.delay_minutes, s)).map(|m| m.to_string()).unwrap_or_default());
                                    }
                                }
                            }
                        }
                    }
                }
                @if admin { button type="submit" class="primary" { "Save escalation policy" } }
            }
        }
    }
}

/// A tier's field (`tiers[i].…`) named as the form shows it.
pub(super) fn field_label(field: &str) -> Option<String> {
    let rest = field.strip_prefix("tiers[")?;
    let (index, what) = rest.split_once("].")?;
    let number = index.parse::<usize>().ok()? + 1;
    match what {
        "audience" => Some(format!("Tier {number} (who is told)")),
        _ => {
            let severity = what.strip_prefix("delay_minutes.")?;
            Some(format!("Tier {number} {severity} delay"))
        }
    }
}

/// The default window, in minutes, for an empty delay.
fn default_delay(severity: &str) -> &'static str {
    match severity {
        "urgent" => "15",
        "high" => "120",
        "medium" => "1440",
        _ => "4320",
    }
}

fn delay_of(delays: &SeverityDelays, severity: &str) -> Option<u32> {
    match severity {
        "urgent" => delays.urgent,
        "high" => delays.high,
        "medium" => delays.medium,
        _ => delays.low,
    }
}

/// The policy a form describes: rows without an audience are left out; a delay that is not a
/// whole number of minutes is a problem named by its tier.
fn policy_of(form: &BTreeMap<String, String>) -> (EscalationPolicy, BTreeMap<String, String>) {
    let mut problems = BTreeMap::new();
    let mut tiers = Vec::new();
    for row in 0..MAX_TIERS {
        let Some(raw) = text(form, &format!("tier{row}_audience")) else {
            continue;
        };
        let index = tiers.len();
        let Some((audience, _, _)) = AUDIENCES.iter().find(|(_, value, _)| *value == raw) else {
            problems.insert(
                format!("tiers[{index}].audience"),
                "must be on_call, clinicians or clinic_admins".to_owned(),
            );
            continue;
        };
        let mut delays = SeverityDelays::default();
        for severity in SEVERITY_NAMES {
            let Some(value) = text(form, &format!("tier{row}_{severity}")) else {
                continue;
            };
            let Ok(minutes) = value.parse::<u32>() else {
                problems.insert(
                    format!("tiers[{index}].delay_minutes.{severity}"),
                    "must be a whole number of minutes".to_owned(),
                );
                continue;
            };
            match severity {
                "urgent" => delays.urgent = Some(minutes),
                "high" => delays.high = Some(minutes),
                "medium" => delays.medium = Some(minutes),
                _ => delays.low = Some(minutes),
            }
        }
        tiers.push(Tier {
            audience: *audience,
            delay_minutes: delays,
        });
    }
    let policy = EscalationPolicy { tiers };
    for (field, problem) in policy.problems() {
        problems.entry(field).or_insert(problem);
    }
    (policy, problems)
}

/// Replaces the escalation policy (the `PUT …/escalation-policy` use case).
pub async fn set_policy(
    State(state): State<AppState>,
    SignedForm { user, secure, form }: SignedForm,
) -> Response {
    let (policy, problems) = policy_of(&form);
    let change = AlertingChange {
        setting: AlertingSetting::EscalationPolicy,
        what: "change the escalation policy",
        value: policy,
        problems,
    };
    save_setting(&state, user, change, secure, "/console/settings#policy-h").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_form_keeps_rows_with_an_audience_in_order() {
        let form: BTreeMap<String, String> = [
            ("tier0_audience", "on_call"),
            ("tier0_urgent", " 10 "),
            ("tier1_audience", ""),
            ("tier1_urgent", "5"),
            ("tier3_audience", "clinic_admins"),
            ("tier3_low", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let (policy, problems) = policy_of(&form);
        assert_eq!(policy.tiers.len(), 2);
        assert_eq!(policy.tiers[0].audience, Audience::OnCall);
        assert_eq!(policy.tiers[0].delay_minutes.urgent, Some(10));
        assert_eq!(policy.tiers[1].audience, Audience::ClinicAdmins);
        assert_eq!(
            problems
                .get("tiers[1].delay_minutes.low")
                .map(String::as_str),
            Some("must be 1 to 10080")
        );
    }
}
