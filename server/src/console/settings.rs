//! The clinic settings page: clinic details (name, zone, country, crisis number), the on-call
//! roster, the escalation policy, the alert thresholds, webhooks, FHIR system clients (in
//! `system_clients`) and the clinic's default care plan (its rules as rows of a form). Clinicians
//! read them (webhooks and system clients are the admins' alone); clinic admins change them. Every
//! form calls the JSON API's own use case, so roles, validation and audit rows are the same.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use crate::account::model::{Role, parse_timezone};
use crate::app::AppState;
use crate::clinic::handlers::{checked as check_field, parse_country, parse_name, parse_phone};
use crate::clinic::store::{ClinicChanges, ClinicRow};
use crate::clinic::use_cases::{self as clinics, StaffMember};
use crate::error::Refusal;
use crate::escalation::policy::{Audience, EscalationPolicy, SeverityDelays, Tier};
use crate::escalation::rules::Thresholds;
use crate::escalation::settings::{self, SettingChange};
use crate::escalation::store::ClinicSetting;
use crate::escalation::webhooks::{self, EndpointRow};
use crate::prompt::plan::{Anchor, CarePlan, PromptRule, WeekdayName};

use super::page::{self, Nav};
use super::session::{self, ConsoleUser};

/// Escalation tiers a clinic may have at most (the policy's own limit).
const MAX_TIERS: usize = 5;

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

/// Webhooks listed at most.
const WEBHOOK_LIMIT: i64 = 100;

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

const AUDIENCES: [(Audience, &str, &str); 3] = [
    (Audience::OnCall, "on_call", "Staff on call"),
    (Audience::Clinicians, "clinicians", "All clinicians"),
    (Audience::ClinicAdmins, "clinic_admins", "Clinic admins"),
];

const SEVERITY_NAMES: [&str; 4] = ["urgent", "high", "medium", "low"];

fn own_clinic(caller: &crate::auth::extract::Caller) -> String {
    caller
        .own_clinic()
        .map(ToString::to_string)
        .unwrap_or_default()
}

struct SettingsPage {
    clinic: ClinicRow,
    staff: Vec<StaffMember>,
    policy: EscalationPolicy,
    thresholds: Thresholds,
    care_plan: CarePlan,
    /// The catalogue's instruments a rule may prompt for: key and title.
    instruments: Vec<(String, String)>,
    /// None for clinicians, who may not see webhooks.
    webhooks: Option<Vec<EndpointRow>>,
    /// None for clinicians, who may not see system clients.
    system_clients: Option<Vec<crate::fhir::clients::ClientRow>>,
    me: String,
    admin: bool,
}

/// A secret shown once, after an endpoint is created.
struct NewWebhook {
    url: String,
    secret: String,
}

macro_rules! step {
    ($e:expr) => {
        match $e? {
            Ok(value) => value,
            Err(refused) => return Ok(Err(refused)),
        }
    };
}

async fn settings_page(
    state: &AppState,
    headers: &HeaderMap,
    user: &ConsoleUser,
    created: Option<NewWebhook>,
    status: StatusCode,
) -> Response {
    let secure = session::secure(state, headers);
    let now = state.now().naive_utc();
    let instruments: Vec<(String, String)> = state
        .catalogue
        .current()
        .into_iter()
        .map(|i| (i.key.clone(), i.title.clone()))
        .collect();
    let loaded = state
        .read_as(user.bearer.clone(), move |conn, caller| {
            let id = own_clinic(caller);
            let clinic = step!(clinics::get(conn, caller, &id));
            let staff = step!(clinics::list_staff(conn, caller));
            let policy = step!(settings::read_setting(
                conn,
                caller,
                &id,
                ClinicSetting::EscalationPolicy
            ));
            let thresholds = step!(settings::read_setting(
                conn,
                caller,
                &id,
                ClinicSetting::AlertThresholds
            ));
            let care_plan = step!(settings::read_setting(
                conn,
                caller,
                &id,
                ClinicSetting::CarePlan
            ));
            let admin = caller.role == Role::ClinicAdmin;
            let webhooks = if admin {
                Some(step!(webhooks::list_endpoints(
                    conn,
                    caller,
                    &id,
                    None,
                    WEBHOOK_LIMIT,
                    now
                )))
            } else {
                None
            };
            let system_clients = if admin {
                Some(step!(crate::fhir::clients::list(
                    conn,
                    caller,
                    &id,
                    None,
                    super::system_clients::LIMIT,
                    crate::time::utc(now)
                )))
            } else {
                None
            };
            Ok(Ok(SettingsPage {
                clinic,
                staff,
                policy,
                thresholds,
                care_plan,
                instruments,
                webhooks,
                system_clients,
                me: caller.account_id.to_string(),
                admin,
            }))
        })
        .await;
    match loaded {
        Ok(data) => (
            status,
            page::frame(
                "Clinic settings",
                Nav::Settings,
                Some(&user.csrf),
                settings_body(&data, created.as_ref(), &user.csrf),
            ),
        )
            .into_response(),
        Err(error) => page::failure(error, secure),
    }
}

fn settings_body(data: &SettingsPage, created: Option<&NewWebhook>, csrf: &str) -> Markup {
    let c = &data.clinic;
    let disabled = !data.admin;
    html! {
        h1 { "Clinic settings" }
        @if !data.admin {
            p class="note" { "You can read these settings; a clinic admin changes them." }
        }
        section aria-labelledby="details-h" {
            h2 id="details-h" { "Clinic details" }
            dl class="facts" id="clinic-details" {
                dt { "Name" } dd { (c.name) }
                dt { "Time zone" } dd { (c.timezone) }
                dt { "Country" } dd { (c.country.as_deref().unwrap_or("from the time zone")) }
                dt { "Crisis phone" } dd id="crisis-phone" { (c.crisis_phone.as_deref().unwrap_or("none")) }
            }
            @if data.admin {
                details {
                    summary { "Change clinic details" }
                    form method="post" action="/console/settings/clinic" class="stacked" id="clinic-form" {
                        input type="hidden" name="csrf" value=(csrf);
                        label for="name" { "Name" }
                        input id="name" name="name" value=(c.name) required maxlength="200";
                        label for="timezone" { "Time zone (IANA name, such as America/Chicago)" }
                        input id="timezone" name="timezone" value=(c.timezone) required;
                        label for="country" { "Country (two letters, such as US; empty to use the time zone's)" }
                        input id="country" name="country" value=(c.country.as_deref().unwrap_or("")) maxlength="2";
                        label for="crisis_phone" { "Crisis phone (empty for none)" }
                        input id="crisis_phone" name="crisis_phone" type="tel" value=(c.crisis_phone.as_deref().unwrap_or("")) maxlength="32";
                        button type="submit" class="primary" { "Save clinic details" }
                    }
                }
            }
        }
        section aria-labelledby="oncall-h" {
            h2 id="oncall-h" { "On call" }
            p class="note" { "Staff on call are the first tier of escalation. Each staff member sets their own status." }
            table class="list" id="on-call" {
                thead { tr { th scope="col" { "Name" } th scope="col" { "On call" } th scope="col" { "Action" } } }
                tbody {
                    @for m in &data.staff {
                        tr {
                            td data-label="Name" { (m.display_name.as_deref().unwrap_or("Unnamed staff member")) }
                            td data-label="On call" { @if m.on_call { strong { "on call" } } @else { "no" } }
                            td data-label="Action" {
                                @if m.id == data.me {
                                    form method="post" action="/console/settings/on-call" {
                                        input type="hidden" name="csrf" value=(csrf);
                                        input type="hidden" name="on_call" value=(if m.on_call { "false" } else { "true" });
                                        button type="submit" { @if m.on_call { "Go off call" } @else { "Go on call" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
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
                            @let tier = data.policy.tiers.get(i);
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
                @if data.admin { button type="submit" class="primary" { "Save escalation policy" } }
            }
        }
        section aria-labelledby="thresholds-h" {
            h2 id="thresholds-h" { "Alert thresholds" }
            form method="post" action="/console/settings/alert-thresholds" id="thresholds-form" {
                input type="hidden" name="csrf" value=(csrf);
                table class="list" {
                    thead { tr { th scope="col" { "Threshold" } th scope="col" { "Value" } } }
                    tbody {
                        @let values = serde_json::to_value(&data.thresholds).unwrap_or_default();
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
                @if data.admin { button type="submit" class="primary" { "Save alert thresholds" } }
            }
        }
        @if let Some(hooks) = &data.webhooks {
            section aria-labelledby="webhooks-h" {
                h2 id="webhooks-h" { "Webhooks" }
                @if let Some(new) = created {
                    div class="readiness warn" role="status" id="new-webhook" {
                        h2 { "Webhook created" }
                        p { "Deliveries to " (new.url) " are signed with this secret. It is shown only now:" }
                        p { code class="webhook-secret" { (new.secret) } }
                    }
                }
                form method="post" action="/console/settings/webhooks" class="inline-form" id="webhook-form" {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="webhook-url" { "Endpoint URL (http or https)" }
                    input id="webhook-url" name="url" type="url" required;
                    button type="submit" class="primary" { "Add webhook" }
                }
                table class="list" id="webhooks" {
                    thead { tr { th scope="col" { "URL" } th scope="col" { "Added" } th scope="col" { "Actions" } } }
                    tbody {
                        @if hooks.is_empty() { tr { td colspan="3" { "No webhooks." } } }
                        @for hook in hooks {
                            tr data-webhook-id=(hook.id) {
                                td data-label="URL" { (hook.url) }
                                td data-label="Added" { (hook.created_at.format("%Y-%m-%d %H:%M UTC")) }
                                td data-label="Actions" {
                                    form method="post" action={ "/console/settings/webhooks/" (hook.id) "/delete" } {
                                        input type="hidden" name="csrf" value=(csrf);
                                        button type="submit" class="danger" { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(rows) = &data.system_clients {
            (super::system_clients::section(rows, csrf))
        }
        section aria-labelledby="plan-h" {
            h2 id="plan-h" { "Care plan" }
            p class="note" { "The clinic's default prompts for patients without a plan of their own. After a change, those patients' coming prompts are planned again." }
            table class="list" id="care-plan" {
                thead { tr { th scope="col" { "Rule" } th scope="col" { "Instrument" } th scope="col" { "When" } th scope="col" { "Expires after" } } }
                tbody {
                    @if data.care_plan.rules.is_empty() { tr { td colspan="4" { "No rules." } } }
                    @for rule in &data.care_plan.rules {
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
            @if data.admin {
                details {
                    summary { "Change the care plan" }
                    (care_plan_form(&data.care_plan, &data.instruments, csrf))
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
pub(super) fn anchor_text(anchor: &Anchor) -> String {
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

/// How a settings form's field is named in a validation message: a threshold by its meaning, a
/// tier's field by the tier's number as shown.
pub fn field_label(field: &str) -> Option<String> {
    if let Some((_, meaning)) = THRESHOLD_FIELDS.iter().find(|(name, _)| *name == field) {
        return Some((*meaning).to_owned());
    }
    if let Some(rest) = field.strip_prefix("rules[") {
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
        return Some(format!("Rule {number} ({what})"));
    }
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

/// The settings page.
pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: ConsoleUser,
) -> Response {
    settings_page(&state, &headers, &user, None, StatusCode::OK).await
}

/// Non-empty trimmed text of a field.
fn text<'f>(form: &'f BTreeMap<String, String>, field: &str) -> Option<&'f str> {
    form.get(field).map(|v| v.trim()).filter(|v| !v.is_empty())
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
    headers: HeaderMap,
    user: ConsoleUser,
    body: Bytes,
) -> Response {
    let secure = session::secure(&state, &headers);
    let form = match page::signed_form(&headers, &body, &user) {
        Ok(form) => form,
        Err(response) => return *response,
    };
    let (plan, mut problems, rows) = care_plan_of(&form);
    for (field, problem) in plan.problems(|key| state.catalogue.find(key, None).is_some()) {
        problems
            .entry(by_form_row(&field, &rows))
            .or_insert(problem);
    }
    let change = SettingChange {
        setting: ClinicSetting::CarePlan,
        what: "change the clinic's care plan",
        value: plan,
        problems,
    };
    save_setting(&state, user, change, secure, "/console/settings#plan-h").await
}

/// Saves one of the clinic's settings through the API's use case, then back to its section of
/// the page (a changed care plan wakes the worker to plan again).
async fn save_setting<T>(
    state: &AppState,
    user: ConsoleUser,
    change: SettingChange<T>,
    secure: bool,
    section: &'static str,
) -> Response
where
    T: serde::Serialize + Send + 'static,
{
    let replans = change.setting == ClinicSetting::CarePlan;
    let now = state.now().naive_utc();
    let saved = state
        .write_as(user.bearer, move |conn, caller| {
            let id = own_clinic(caller);
            settings::update_setting(conn, caller, &id, change, now)
        })
        .await;
    match saved {
        Ok(_) => {
            if replans {
                state.jobs_enqueued();
            }
            page::done(section)
        }
        Err(error) => page::failure(error, secure),
    }
}

/// Changes the clinic's details (the `PATCH /v1/clinics/{id}` use case).
pub async fn update_clinic(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: ConsoleUser,
    body: Bytes,
) -> Response {
    let secure = session::secure(&state, &headers);
    let form = match page::signed_form(&headers, &body, &user) {
        Ok(form) => form,
        Err(response) => return *response,
    };
    let mut problems = BTreeMap::new();
    let name = form.get("name").map(String::as_str).unwrap_or_default();
    let zone = form.get("timezone").map(String::as_str).unwrap_or_default();
    let mut changes = ClinicChanges {
        name: check_field(&mut problems, "name", parse_name(name)),
        timezone: check_field(&mut problems, "timezone", parse_timezone(zone))
            .map(|tz| tz.name().to_owned()),
        ..ClinicChanges::default()
    };
    changes.country = Some(
        text(&form, "country")
            .and_then(|c| check_field(&mut problems, "country", parse_country(c, &state.zones))),
    );
    changes.crisis_phone = Some(
        text(&form, "crisis_phone")
            .and_then(|p| check_field(&mut problems, "crisis_phone", parse_phone(p))),
    );
    let now = state.now().naive_utc();
    match state
        .write_as(user.bearer, move |conn, caller| {
            let id = own_clinic(caller);
            clinics::update(conn, caller, &id, changes, problems, now)
        })
        .await
    {
        Ok(_) => page::done("/console/settings#details-h"),
        Err(error) => page::failure(error, secure),
    }
}

/// Marks the signed-in staff member on or off call (the `PUT /v1/me/on-call` use case).
pub async fn set_on_call(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: ConsoleUser,
    body: Bytes,
) -> Response {
    let secure = session::secure(&state, &headers);
    let form = match page::signed_form(&headers, &body, &user) {
        Ok(form) => form,
        Err(response) => return *response,
    };
    let on_call = match form.get("on_call").map(String::as_str) {
        Some("true") => true,
        Some("false") => false,
        _ => {
            return page::failure(
                Refusal::invalid_field("on_call", "must be true or false").into(),
                secure,
            );
        }
    };
    match state
        .write_as(user.bearer, move |conn, caller| {
            settings::set_on_call(conn, caller, on_call)
        })
        .await
    {
        Ok(_) => page::done("/console/settings#oncall-h"),
        Err(error) => page::failure(error, secure),
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
    headers: HeaderMap,
    user: ConsoleUser,
    body: Bytes,
) -> Response {
    let secure = session::secure(&state, &headers);
    let form = match page::signed_form(&headers, &body, &user) {
        Ok(form) => form,
        Err(response) => return *response,
    };
    let (policy, problems) = policy_of(&form);
    let change = SettingChange {
        setting: ClinicSetting::EscalationPolicy,
        what: "change the escalation policy",
        value: policy,
        problems,
    };
    save_setting(&state, user, change, secure, "/console/settings#policy-h").await
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
    headers: HeaderMap,
    user: ConsoleUser,
    body: Bytes,
) -> Response {
    let secure = session::secure(&state, &headers);
    let form = match page::signed_form(&headers, &body, &user) {
        Ok(form) => form,
        Err(response) => return *response,
    };
    let (thresholds, problems) = thresholds_of(&form);
    let change = SettingChange {
        setting: ClinicSetting::AlertThresholds,
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

/// Adds a webhook endpoint and shows its secret once.
pub async fn create_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: ConsoleUser,
    body: Bytes,
) -> Response {
    let secure = session::secure(&state, &headers);
    let form = match page::signed_form(&headers, &body, &user) {
        Ok(form) => form,
        Err(response) => return *response,
    };
    let url = form.get("url").cloned().unwrap_or_default();
    let now = state.now().naive_utc();
    let policy = state.outbound.policy.clone();
    match state
        .write_as(user.bearer.clone(), move |conn, caller| {
            let id = own_clinic(caller);
            webhooks::create_endpoint(conn, caller, &policy, &id, &url, now)
        })
        .await
    {
        Ok(row) => {
            let created = NewWebhook {
                url: row.url,
                secret: row.secret,
            };
            settings_page(&state, &headers, &user, Some(created), StatusCode::CREATED).await
        }
        Err(error) => page::failure(error, secure),
    }
}

/// Deletes (deactivates) a webhook endpoint.
pub async fn delete_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: ConsoleUser,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let secure = session::secure(&state, &headers);
    if let Err(response) = page::signed_form(&headers, &body, &user) {
        return *response;
    }
    let now = state.now().naive_utc();
    match state
        .write_as(user.bearer, move |conn, caller| {
            webhooks::deactivate(conn, caller, &id, now)
        })
        .await
    {
        Ok(()) => page::done("/console/settings#webhooks-h"),
        Err(error) => page::failure(error, secure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_fields_are_named_as_the_form_shows_them() {
        assert_eq!(
            field_label("tiers[0].delay_minutes.urgent").as_deref(),
            Some("Tier 1 urgent delay")
        );
        assert_eq!(
            field_label("tiers[4].audience").as_deref(),
            Some("Tier 5 (who is told)")
        );
        assert_eq!(
            field_label("cusum_h").as_deref(),
            Some("CUSUM decision interval (robust SDs)")
        );
        assert_eq!(field_label("tiers"), None);
        assert_eq!(field_label("tiers[x].audience"), None);
    }

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
        assert_eq!(
            anchor_text(&Anchor::AfterSession { days: vec![1, 3] }),
            "on days 1, 3 after each session"
        );
    }
}
