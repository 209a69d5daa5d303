//! The settings page's alert thresholds: each threshold of the escalation rules with what it
//! means, read from a posted form (an empty field takes its default) and saved through the
//! `PUT …/alert-thresholds` use case.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};

use crate::app::AppState;
use crate::console::form::SignedForm;
use crate::escalation::AlertingSetting;
use crate::escalation::alerting::AlertingChange;
use crate::escalation::rules::Thresholds;

use super::{save_setting, text};

/// The thresholds' fields, with what each means, in the order shown.
const THRESHOLD_FIELDS: [(&str, &str); 15] = [
    (
        "phq9_rise",
        "PHQ-9 points above baseline for reliable deterioration",
    ),
    (
        "phq9_floor",
        "PHQ-9 total below which a rise is not escalated",
    ),
    ("phq9_severe", "PHQ-9 severe total"),
    ("gad7_rise", "GAD-7 points above baseline"),
    (
        "gad7_floor",
        "GAD-7 total below which a rise is not escalated",
    ),
    ("mood_floor", "Mood at or below this is the floor"),
    ("mood_floor_days", "Consecutive days at the mood floor"),
    ("mood_drop", "Mood points below the 7-day median for a drop"),
    ("cusum_k", "CUSUM reference value (robust SDs)"),
    ("cusum_h", "CUSUM decision interval (robust SDs)"),
    ("cusum_sd_floor", "Smallest robust SD used"),
    ("missed_prompts", "Consecutive expired prompts"),
    ("systolic", "Systolic crisis threshold (mmHg)"),
    ("diastolic", "Diastolic crisis threshold (mmHg)"),
    (
        "dissociation_hours",
        "Hours after a session past which dissociation is lingering",
    ),
];

/// The section: one row per threshold, editable by clinic admins.
pub(super) fn section(thresholds: &Thresholds, admin: bool, csrf: &str) -> Markup {
    let disabled = !admin;
    html! {
        section aria-labelledby="thresholds-h" {
            h2 id="thresholds-h" { "Alert thresholds" }
            form method="post" action="/console/settings/alert-thresholds" id="thresholds-form" {
                input type="hidden" name="csrf" value=(csrf);
                table class="list" {
                    thead { tr { th scope="col" { "Threshold" } th scope="col" { "Value" } } }
                    tbody {
                        @let values = serde_json::to_value(thresholds).unwrap_or_default();
                        @for (field, meaning) in THRESHOLD_FIELDS {
                            tr {
                                td data-label="Threshold" { label for={ "th-" (field) } { (meaning) } }
                                td data-label="Value" {
                                    input id={ "th-" (field) } name=(field) inputmode="decimal" size="8" disabled[disabled]
                                        value=(values.get(field).map(ToString::to_string).unwrap_or_default());
                                }
                            }
                        }
                    }
                }
                @if admin { button type="submit" class="primary" { "Save alert thresholds" } }
            }
        }
    }
}

/// A threshold named by its meaning.
pub(super) fn field_label(field: &str) -> Option<String> {
    THRESHOLD_FIELDS
        .iter()
        .find(|(name, _)| *name == field)
        .map(|(_, meaning)| (*meaning).to_owned())
}

/// The thresholds a form describes; a field that is not a number is a problem, a field left
/// empty takes its default.
fn thresholds_of(form: &BTreeMap<String, String>) -> (Thresholds, BTreeMap<String, String>) {
    let mut problems = BTreeMap::new();
    let defaults = serde_json::to_value(Thresholds::default()).unwrap_or_default();
    let mut values = serde_json::Map::new();
    for (field, _) in THRESHOLD_FIELDS {
        let Some(raw) = text(form, field) else {
            continue;
        };
        let whole = defaults.get(field).is_some_and(serde_json::Value::is_i64);
        let unsigned = defaults.get(field).is_some_and(serde_json::Value::is_u64);
        let parsed = if whole {
            raw.parse::<i64>()
                .ok()
                .filter(|v| !unsigned || *v >= 0)
                .map(serde_json::Value::from)
        } else {
            raw.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .and_then(serde_json::Number::from_f64)
                .map(serde_json::Value::Number)
        };
        match parsed {
            Some(value) => {
                values.insert(field.to_owned(), value);
            }
            None => {
                let what = if whole {
                    "must be a whole number"
                } else {
                    "must be a number"
                };
                problems.insert(field.to_owned(), what.to_owned());
            }
        }
    }
    let thresholds = match serde_json::from_value::<Thresholds>(values.into()) {
        Ok(thresholds) => thresholds,
        Err(_) => {
            problems
                .entry("thresholds".to_owned())
                .or_insert_with(|| "could not be read".to_owned());
            Thresholds::default()
        }
    };
    for (field, problem) in thresholds.problems() {
        problems.entry(field).or_insert(problem);
    }
    (thresholds, problems)
}

/// Replaces the alert thresholds (the `PUT …/alert-thresholds` use case).
pub async fn set_thresholds(
    State(state): State<AppState>,
    SignedForm { user, secure, form }: SignedForm,
) -> Response {
    let (thresholds, problems) = thresholds_of(&form);
    let change = AlertingChange {
        setting: AlertingSetting::AlertThresholds,
        what: "change alert thresholds",
        value: thresholds,
        problems,
    };
    save_setting(
        &state,
        user,
        change,
        secure,
        "/console/settings#thresholds-h",
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_left_empty_take_their_defaults() {
        let form: BTreeMap<String, String> =
            [("phq9_rise", "6"), ("mood_floor", ""), ("cusum_k", "1e999")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        let (thresholds, problems) = thresholds_of(&form);
        assert_eq!(thresholds.phq9_rise, 6);
        assert_eq!(thresholds.mood_floor, Thresholds::default().mood_floor);
        assert_eq!(
            problems.get("cusum_k").map(String::as_str),
            Some("must be a number")
        );
    }
}
