//! The settings page's care plan: the clinic's default prompts for patients without a plan of
//! their own, shown rule by rule, and the form that edits them row by row (read back into a plan,
//! each problem named by the form row it came from) and saves them through the
//! `PUT /v1/clinics/{id}/care-plan` use case.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};

use crate::app::AppState;
use crate::console::form::SignedForm;
use crate::console::page;
use crate::prompt::plan::{Anchor, CarePlan, PromptRule, WeekdayName};

use super::{own_clinic, text};

/// Rules a care plan may hold (the plan's own limit).
const MAX_RULES: usize = 20;

/// Empty rows offered for new care plan rules.
const NEW_RULE_ROWS: usize = 3;

/// A care plan rule's kinds of timing, as the form names them.
const ANCHORS: [(&str, &str); 4] = [
    ("daily", "Every day"),
    ("after_session", "Days after each session"),
    ("before_session", "Before each session"),
    ("weekly", "Once a week"),
];

const WEEKDAYS: [(&str, &str); 7] = [
    ("mon", "Monday"),
    ("tue", "Tuesday"),
    ("wed", "Wednesday"),
    ("thu", "Thursday"),
    ("fri", "Friday"),
    ("sat", "Saturday"),
    ("sun", "Sunday"),
];

/// The section: the plan's rules, and for clinic admins the form that edits them.
pub(super) fn section(
    plan: &CarePlan,
    instruments: &[(String, String)],
    admin: bool,
    csrf: &str,
) -> Markup {
    html! {
        section aria-labelledby="plan-h" {
            h2 id="plan-h" { "Care plan" }
            p class="note" { "The clinic's default prompts for patients without a plan of their own. After a change, those patients' coming prompts are planned again." }
            table class="list" id="care-plan" {
                thead { tr { th scope="col" { "Rule" } th scope="col" { "Instrument" } th scope="col" { "When" } th scope="col" { "Expires after" } } }
                tbody {
                    @if plan.rules.is_empty() { tr { td colspan="4" { "No rules." } } }
                    @for rule in &plan.rules {
                        tr {
                            td data-label="Rule" { (rule.id) }
                            td data-label="Instrument" { (rule.instrument) }
                            td data-label="When" { (anchor_text(&rule.anchor)) }
                            td data-label="Expires after" {
                                @match rule.expires_after_hours { Some(h) => { (h) " h" }, None => "default" }
                            }
                        }
                    }
                }
            }
            @if admin {
                details {
                    summary { "Change the care plan" }
                    (care_plan_form(plan, instruments, csrf))
                }
            }
        }
    }
}

/// The rows of the care plan form: each rule, then empty rows for new ones (up to the plan's
/// limit).
fn care_plan_form(plan: &CarePlan, instruments: &[(String, String)], csrf: &str) -> Markup {
    let rows = (plan.rules.len() + NEW_RULE_ROWS).min(MAX_RULES);
    html! {
        form method="post" action="/console/settings/care-plan" id="care-plan-form" {
            input type="hidden" name="csrf" value=(csrf);
            p class="note" {
                "Fill in an empty row to add a rule; tick Remove to drop one. Days after a session are listed with commas (1, 3, 7). "
                "Hours left empty take the defaults: a prompt stays open 12 h for daily mood and 48 h for PHQ-9 and GAD-7, and is reminded once after 4 h (0 for no reminder)."
            }
            div class="wide" { table class="list" {
                thead { tr {
                    th scope="col" { "Rule" } th scope="col" { "Instrument" } th scope="col" { "When" }
                    th scope="col" { "Days after session" } th scope="col" { "Hours before session" }
                    th scope="col" { "Weekday" } th scope="col" { "Skip within days of a session" }
                    th scope="col" { "Random minute" } th scope="col" { "Open for, h" } th scope="col" { "Remind after, h" }
                    th scope="col" { "Remove" }
                } }
                tbody {
                    @for i in 0..rows {
                        @let rule = plan.rules.get(i);
                        @let n = i + 1;
                        tr data-rule-row=(i) {
                            td data-label="Rule" {
                                label class="sr-only" for={ "rule" (i) "-id" } { "Rule " (n) ": name" }
                                input id={ "rule" (i) "-id" } name={ "rule" (i) "_id" } size="12" maxlength="40"
                                    value=(rule.map(|r| r.id.as_str()).unwrap_or_default());
                            }
                            td data-label="Instrument" {
                                label class="sr-only" for={ "rule" (i) "-instrument" } { "Rule " (n) ": instrument" }
                                select id={ "rule" (i) "-instrument" } name={ "rule" (i) "_instrument" } {
                                    option value="" selected[rule.is_none()] { "(none)" }
                                    @for (key, title) in instruments {
                                        option value=(key) selected[rule.is_some_and(|r| &r.instrument == key)] { (title) }
                                    }
                                }
                            }
                            td data-label="When" {
                                label class="sr-only" for={ "rule" (i) "-when" } { "Rule " (n) ": when" }
                                select id={ "rule" (i) "-when" } name={ "rule" (i) "_when" } {
                                    @for (value, label) in ANCHORS {
                                        option value=(value) selected[rule.is_some_and(|r| anchor_name(&r.anchor) == value)] { (label) }
                                    }
                                }
                            }
                            td data-label="Days after session" {
                                label class="sr-only" for={ "rule" (i) "-days" } { "Rule " (n) ": days after each session" }
                                input id={ "rule" (i) "-days" } name={ "rule" (i) "_days" } size="10" placeholder="1, 3, 7"
                                    value=(match rule.map(|r| &r.anchor) {
                                        Some(Anchor::AfterSession { days }) => days.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                                        _ => String::new(),
                                    });
                            }
                            td data-label="Hours before session" {
                                label class="sr-only" for={ "rule" (i) "-hours-before" } { "Rule " (n) ": hours before each session" }
                                input id={ "rule" (i) "-hours-before" } name={ "rule" (i) "_hours_before" } inputmode="numeric" size="4"
                                    value=(match rule.map(|r| &r.anchor) {
                                        Some(Anchor::BeforeSession { hours_before }) => hours_before.to_string(),
                                        _ => String::new(),
                                    });
                            }
                            td data-label="Weekday" {
                                label class="sr-only" for={ "rule" (i) "-weekday" } { "Rule " (n) ": weekday" }
                                select id={ "rule" (i) "-weekday" } name={ "rule" (i) "_weekday" } {
                                    @for (value, label) in WEEKDAYS {
                                        option value=(value) selected[matches!(rule.map(|r| &r.anchor), Some(Anchor::Weekly { weekday, .. }) if weekday_name(*weekday) == value)] { (label) }
                                    }
                                }
                            }
                            td data-label="Skip within days of a session" {
                                label class="sr-only" for={ "rule" (i) "-skip" } { "Rule " (n) ": skip weeks with a session within this many days" }
                                input id={ "rule" (i) "-skip" } name={ "rule" (i) "_skip" } inputmode="numeric" size="3"
                                    value=(match rule.map(|r| &r.anchor) {
                                        Some(Anchor::Weekly { skip_near_session_days, .. }) => skip_near_session_days.to_string(),
                                        _ => String::new(),
                                    });
                            }
                            td data-label="Random minute" {
                                label class="sr-only" for={ "rule" (i) "-random" } { "Rule " (n) ": at a random minute of the check-in window" }
                                input type="checkbox" id={ "rule" (i) "-random" } name={ "rule" (i) "_random" } value="on"
                                    checked[rule.is_some_and(|r| r.random_offset)];
                            }
                            td data-label="Open for, h" {
                                label class="sr-only" for={ "rule" (i) "-expires" } { "Rule " (n) ": hours a prompt stays open" }
                                input id={ "rule" (i) "-expires" } name={ "rule" (i) "_expires" } inputmode="numeric" size="4"
                                    value=(rule.and_then(|r| r.expires_after_hours).map(|h| h.to_string()).unwrap_or_default());
                            }
                            td data-label="Remind after, h" {
                                label class="sr-only" for={ "rule" (i) "-remind" } { "Rule " (n) ": hours before the reminder" }
                                input id={ "rule" (i) "-remind" } name={ "rule" (i) "_remind" } inputmode="numeric" size="4"
                                    value=(rule.and_then(|r| r.remind_after_hours).map(|h| h.to_string()).unwrap_or_default());
                            }
                            td data-label="Remove" {
                                @if rule.is_some() {
                                    label class="sr-only" for={ "rule" (i) "-remove" } { "Remove rule " (n) }
                                    input type="checkbox" id={ "rule" (i) "-remove" } name={ "rule" (i) "_remove" } value="on";
                                }
                            }
                        }
                    }
                }
            } }
            button type="submit" class="primary" { "Save care plan" }
        }
    }
}

/// When a care plan rule prompts, in words.
pub(in crate::console) fn anchor_text(anchor: &Anchor) -> String {
    match anchor {
        Anchor::Daily => "every day".to_owned(),
        Anchor::AfterSession { days } => {
            let days: Vec<String> = days.iter().map(ToString::to_string).collect();
            format!("on days {} after each session", days.join(", "))
        }
        Anchor::BeforeSession { hours_before } => {
            format!("{hours_before} h before each session")
        }
        Anchor::Weekly {
            weekday,
            skip_near_session_days,
        } => {
            let day = weekday.chrono();
            if *skip_near_session_days > 0 {
                format!("every {day}, skipped within {skip_near_session_days} days of a session")
            } else {
                format!("every {day}")
            }
        }
    }
}

fn anchor_name(anchor: &Anchor) -> &'static str {
    match anchor {
        Anchor::Daily => "daily",
        Anchor::AfterSession { .. } => "after_session",
        Anchor::BeforeSession { .. } => "before_session",
        Anchor::Weekly { .. } => "weekly",
    }
}

fn weekday_name(day: WeekdayName) -> &'static str {
    match day {
        WeekdayName::Mon => "mon",
        WeekdayName::Tue => "tue",
        WeekdayName::Wed => "wed",
        WeekdayName::Thu => "thu",
        WeekdayName::Fri => "fri",
        WeekdayName::Sat => "sat",
        WeekdayName::Sun => "sun",
    }
}

/// A rule's field (`rules[i].…`) named as the form shows it.
pub(super) fn field_label(field: &str) -> Option<String> {
    let rest = field.strip_prefix("rules[")?;
    let (index, what) = rest.split_once("].")?;
    let number = index.parse::<usize>().ok()? + 1;
    let what = match what {
        "id" => "name",
        "instrument" => "instrument",
        "anchor" => "when",
        "anchor.days" => "days after each session",
        "anchor.hours_before" => "hours before each session",
        "anchor.weekday" => "weekday",
        "anchor.skip_near_session_days" => "days of a session to skip within",
        "expires_after_hours" => "hours open",
        "remind_after_hours" => "hours before the reminder",
        _ => return None,
    };
    Some(format!("Rule {number} ({what})"))
}

/// A whole number from a form field: `None` when empty, a problem for `field` when not a number.
fn number_of(
    form: &BTreeMap<String, String>,
    name: &str,
    field: String,
    problems: &mut BTreeMap<String, String>,
) -> Option<u32> {
    let raw = text(form, name)?;
    match raw.parse::<u32>() {
        Ok(value) => Some(value),
        Err(_) => {
            problems.insert(field, "must be a whole number".to_owned());
            None
        }
    }
}

/// The care plan a form describes: rows without a name and an instrument are left out, as are
/// rows marked for removal. Also the form row of each rule, so that problems are named by the row
/// the admin filled in (`rules[i]` is row `i` of the form, counted from 0) whatever rows were left
/// out before it. The plan's own validation (`CarePlan::problems`) runs after, through
/// [`by_form_row`].
fn care_plan_of(
    form: &BTreeMap<String, String>,
) -> (CarePlan, BTreeMap<String, String>, Vec<usize>) {
    let mut problems = BTreeMap::new();
    let mut rules = Vec::new();
    let mut rows = Vec::new();
    for row in 0..MAX_RULES {
        let field = |name: &str| format!("rule{row}_{name}");
        let id = text(form, &field("id"));
        let instrument = text(form, &field("instrument"));
        if (id.is_none() && instrument.is_none()) || text(form, &field("remove")).is_some() {
            continue;
        }
        rows.push(row);
        let at = |name: &str| format!("rules[{row}].{name}");
        let anchor = match text(form, &field("when")).unwrap_or("daily") {
            "daily" => Anchor::Daily,
            "after_session" => {
                let raw = text(form, &field("days")).unwrap_or_default();
                let days: Result<Vec<u32>, _> = raw
                    .split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(str::parse::<u32>)
                    .collect();
                Anchor::AfterSession {
                    days: days.unwrap_or_else(|_| {
                        problems.insert(
                            at("anchor.days"),
                            "must be whole numbers separated by commas".to_owned(),
                        );
                        Vec::new()
                    }),
                }
            }
            "before_session" => Anchor::BeforeSession {
                hours_before: number_of(
                    form,
                    &field("hours_before"),
                    at("anchor.hours_before"),
                    &mut problems,
                )
                .unwrap_or(0),
            },
            "weekly" => {
                let weekday = text(form, &field("weekday"))
                    .and_then(|raw| WEEKDAYS.iter().position(|(value, _)| *value == raw));
                let weekday = match weekday {
                    Some(0) => WeekdayName::Mon,
                    Some(1) => WeekdayName::Tue,
                    Some(2) => WeekdayName::Wed,
                    Some(3) => WeekdayName::Thu,
                    Some(4) => WeekdayName::Fri,
                    Some(5) => WeekdayName::Sat,
                    Some(6) => WeekdayName::Sun,
                    _ => {
                        problems
                            .insert(at("anchor.weekday"), "must be a day of the week".to_owned());
                        WeekdayName::Mon
                    }
                };
                Anchor::Weekly {
                    weekday,
                    skip_near_session_days: number_of(
                        form,
                        &field("skip"),
                        at("anchor.skip_near_session_days"),
                        &mut problems,
                    )
                    .unwrap_or(0),
                }
            }
            _ => {
                problems.insert(
                    at("anchor"),
                    "must be daily, after_session, before_session or weekly".to_owned(),
                );
                Anchor::Daily
            }
        };
        rules.push(PromptRule {
            id: id.unwrap_or_default().to_owned(),
            instrument: instrument.unwrap_or_default().to_owned(),
            anchor,
            random_offset: text(form, &field("random")).is_some(),
            expires_after_hours: number_of(
                form,
                &field("expires"),
                at("expires_after_hours"),
                &mut problems,
            ),
            remind_after_hours: number_of(
                form,
                &field("remind"),
                at("remind_after_hours"),
                &mut problems,
            ),
        });
    }
    (CarePlan { rules }, problems, rows)
}

/// A plan problem's field (`rules[i].…`, `i` the rule's place in the plan) renamed to the form
/// row the rule came from.
fn by_form_row(field: &str, rows: &[usize]) -> String {
    let renamed = field
        .strip_prefix("rules[")
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(index, rest)| {
            let row = rows.get(index.parse::<usize>().ok()?)?;
            Some(format!("rules[{row}]{rest}"))
        });
    renamed.unwrap_or_else(|| field.to_owned())
}

/// Replaces the clinic's default care plan (the `PUT /v1/clinics/{id}/care-plan` use case);
/// patients who follow it are planned again in the background.
pub async fn set_care_plan(
    State(state): State<AppState>,
    SignedForm { user, secure, form }: SignedForm,
) -> Response {
    let (plan, mut problems, rows) = care_plan_of(&form);
    for (field, problem) in plan.problems(|key| state.catalogue.find(key, None).is_some()) {
        problems
            .entry(by_form_row(&field, &rows))
            .or_insert(problem);
    }
    let now = state.now();
    let saved = state
        .write_as(user.bearer, move |conn, caller| {
            let id = own_clinic(caller);
            crate::prompt::use_cases::set_clinic_care_plan(conn, caller, &id, plan, problems, now)
        })
        .await;
    match saved {
        Ok(_) => {
            state.jobs_enqueued();
            page::done("/console/settings#plan-h")
        }
        Err(error) => page::failure(error, secure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_told_in_words() {
        assert_eq!(
            anchor_text(&Anchor::AfterSession { days: vec![1, 3] }),
            "on days 1, 3 after each session"
        );
    }
}
