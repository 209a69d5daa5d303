//! A patient's page: charts of daily mood, PHQ-9, GAD-7 and home blood pressure (each with a
//! text alternative), the check-in history, prompts with adherence and the care plan in force,
//! treatment sessions with the schedule, move, cancel
//! and complete forms, and the alert history with each alert's inputs. Every read is audited by
//! the use case that makes it. The page's title never names the patient.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, TimeZone as _, Utc};
use chrono_tz::Tz;
use companion_schema::ids::AccountId;
use maud::{Markup, html};
use serde::Deserialize;

use crate::app::AppState;
use crate::check_in::use_cases as check_ins;
use crate::check_in::{CheckInRow, HistoryFilter};
use crate::escalation::AlertRow;
use crate::escalation::inbox;
use crate::prompt::PromptRow;
use crate::prompt::adherence::Adherence;
use crate::prompt::use_cases::{self as prompts, PatientCarePlan, PlanSource};
use crate::time::utc;
use crate::treatment::model::{Modality, check_schedule_time};
use crate::treatment::use_cases::{self as sessions, NewSession, SessionChange};
use crate::treatment::{SessionRow, When};

use super::charts::{self, Axis};
use super::form::SignedForm;
use super::page::{self, Nav};
use super::session::{self, ConsoleUser};

/// Days the charts cover.
const DAYS: u32 = 90;

struct PatientPage {
    name: Option<String>,
    tz: Tz,
    viewer_tz: Tz,
    daily_mood: Vec<(NaiveDate, f64)>,
    phq9: Vec<CheckInRow>,
    gad7: Vec<CheckInRow>,
    moods: Vec<CheckInRow>,
    recent: Vec<CheckInRow>,
    sessions: Vec<SessionRow>,
    alerts: Vec<AlertRow>,
    prompts: Vec<PromptRow>,
    adherence: Adherence,
    plan: PatientCarePlan,
    /// Whether the viewer is a clinic admin (who may issue the patient a password reset code).
    admin: bool,
}

/// Prompts listed at most (the latest due first).
const PROMPTS_SHOWN: usize = 30;

fn tz_of(name: &str) -> Tz {
    crate::account::model::parse_timezone(name).unwrap_or(chrono_tz::UTC)
}

/// The patient page.
pub async fn patient_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: ConsoleUser,
    Path(id): Path<String>,
) -> Response {
    let secure = session::secure(&state, &headers);
    let now = state.now();
    let horizon = state.config.prompts.horizon;
    let raw = id.clone();
    // Eight audited reads: one write transaction commits their audit rows together (one
    // commit instead of eight), which is what the page costs most on PostgreSQL.
    let loaded = state
        .write_as(user.bearer.clone(), move |conn, caller| {
            let trends = check_ins::trends_of(conn, caller, &raw, DAYS, now)?;
            let since = (now - TimeDelta::days(i64::from(DAYS))).naive_utc();
            let filter = |instrument: &str| HistoryFilter {
                instrument: Some(instrument.to_owned()),
                from: Some(since),
                ..HistoryFilter::default()
            };
            let phq9 = check_ins::history(conn, caller, Some(&raw), &filter("phq9"), 500, now)?;
            let gad7 = check_ins::history(conn, caller, Some(&raw), &filter("gad7"), 500, now)?;
            let moods =
                check_ins::history(conn, caller, Some(&raw), &filter("daily_mood"), 1000, now)?;
            let recent =
                check_ins::history(conn, caller, Some(&raw), &HistoryFilter::default(), 30, now)?;
            let sessions = sessions::list(conn, caller, Some(&raw), When::All, None, 200, now)?;
            let alerts = inbox::of_patient(conn, caller, &raw, 50, now)?;
            let mut prompt_rows = prompts::patient_prompts(conn, caller, &raw, now, horizon)?;
            prompt_rows.sort_by_key(|p| std::cmp::Reverse(p.due_at));
            prompt_rows.truncate(PROMPTS_SHOWN);
            let adherence = prompts::patient_adherence(conn, caller, &raw, now)?;
            let plan = prompts::patient_care_plan(conn, caller, &raw)?;
            let names =
                crate::clinic::use_cases::patient_names(conn, caller, std::slice::from_ref(&raw))?;
            Ok(PatientPage {
                name: names.get(&raw).cloned(),
                tz: trends.timezone,
                viewer_tz: tz_of(&caller.timezone),
                daily_mood: trends.daily_mood.iter().map(|d| (d.date, d.mean)).collect(),
                phq9,
                gad7,
                moods,
                recent,
                sessions,
                alerts,
                prompts: prompt_rows,
                adherence,
                plan,
                admin: caller.role == crate::account::model::Role::ClinicAdmin,
            })
        })
        .await;
    match loaded {
        Ok(data) => render(&id, &data, &user.csrf, now).into_response(),
        Err(error) => page::failure(error, secure),
    }
}

fn local_day(at: NaiveDateTime, tz: Tz) -> NaiveDate {
    utc(at).with_timezone(&tz).date_naive()
}

fn local_time(at: NaiveDateTime, tz: Tz) -> String {
    utc(at)
        .with_timezone(&tz)
        .format("%a %Y-%m-%d %H:%M %Z")
        .to_string()
}

fn bp_of(row: &CheckInRow) -> Option<(i64, i64)> {
    let answers: serde_json::Value = serde_json::from_str(&row.answers).ok()?;
    Some((
        answers.get("bp_systolic")?.as_i64()?,
        answers.get("bp_diastolic")?.as_i64()?,
    ))
}

fn modality_label(modality: &str) -> &str {
    match modality {
        "iv_infusion" => "IV ketamine infusion",
        "intramuscular" => "Intramuscular ketamine",
        "intranasal_esketamine" => "Esketamine nasal spray",
        "oral_lozenge" => "Oral ketamine lozenge",
        other => other,
    }
}

fn instrument_label(instrument: &str) -> &str {
    match instrument {
        "phq9" => "PHQ-9",
        "gad7" => "GAD-7",
        "phq2" => "PHQ-2",
        "daily_mood" => "Daily mood",
        other => other,
    }
}

fn render(id: &str, data: &PatientPage, csrf: &str, now: DateTime<Utc>) -> Markup {
    let today = now.with_timezone(&data.tz).date_naive();
    let session_days: Vec<NaiveDate> = data
        .sessions
        .iter()
        .filter(|s| s.status != "cancelled")
        .map(|s| local_day(s.scheduled_at, data.tz))
        .collect();
    let scores = |rows: &[CheckInRow]| -> Vec<(NaiveDate, i64)> {
        let mut points: Vec<(NaiveDate, i64)> = rows
            .iter()
            .filter_map(|r| {
                r.total
                    .map(|t| (local_day(r.completed_at, data.tz), i64::from(t)))
            })
            .collect();
        points.sort();
        points
    };
    let mut bp: Vec<(NaiveDate, i64, i64)> = data
        .moods
        .iter()
        .filter_map(|r| bp_of(r).map(|(s, d)| (local_day(r.completed_at, data.tz), s, d)))
        .collect();
    bp.sort();
    let (phq9, gad7) = (scores(&data.phq9), scores(&data.gad7));
    let axis = chart_axis(today, &data.daily_mood, &phq9, &gad7, &bp, &session_days);
    let name = data.name.as_deref().unwrap_or("Unnamed patient");
    let vtz = data.viewer_tz;
    let body = html! {
        p class="crumbs" { a href="/console" { "Alert inbox" } " › Patient" }
        h1 { (name) }
        p class="note" { "Times in " (vtz.name()) "; charts by the patient's local day (" (data.tz.name()) "), from " (axis.from) " to " (axis.to) "." }
        section class="charts" aria-label="Charts" {
            (charts::mood_chart(&data.daily_mood, axis, &session_days))
            (charts::score_chart("phq9-chart", "PHQ-9", 27.0, &charts::PHQ9_BANDS, &phq9, axis, &session_days))
            (charts::score_chart("gad7-chart", "GAD-7", 21.0, &charts::GAD7_BANDS, &gad7, axis, &session_days))
            (charts::blood_pressure_chart(&bp, axis, &session_days))
        }
        section aria-labelledby="sessions-h" {
            h2 id="sessions-h" { "Treatment sessions" }
            form method="post" action={ "/console/patients/" (id) "/sessions" } class="inline-form" id="schedule-form" {
                input type="hidden" name="csrf" value=(csrf);
                label for="modality" { "Treatment" }
                select id="modality" name="modality" {
                    @for m in [Modality::IvInfusion, Modality::Intramuscular, Modality::IntranasalEsketamine, Modality::OralLozenge] {
                        option value=(m.as_str()) { (modality_label(m.as_str())) }
                    }
                }
                label for="scheduled_at" { "Date and time (" (vtz.name()) ")" }
                input type="datetime-local" id="scheduled_at" name="scheduled_at" required;
                button type="submit" class="primary" { "Schedule session" }
            }
            table class="list" id="sessions" {
                thead { tr { th scope="col" { "When" } th scope="col" { "Treatment" } th scope="col" { "Status" } th scope="col" { "Actions" } } }
                tbody {
                    @if data.sessions.is_empty() { tr { td colspan="4" { "No sessions." } } }
                    @for s in &data.sessions {
                        tr data-session-id=(s.id) {
                            td data-label="When" { (local_time(s.scheduled_at, vtz)) }
                            td data-label="Treatment" { (modality_label(&s.modality)) }
                            td data-label="Status" { (s.status) }
                            td data-label="Actions" class="actions" {
                                @if s.status == "scheduled" {
                                    details {
                                        summary { "Move, complete or cancel" }
                                        form method="post" action={ "/console/sessions/" (s.id) "/move" } {
                                            input type="hidden" name="csrf" value=(csrf);
                                            input type="hidden" name="patient" value=(id);
                                            label for={ "move-" (s.id) } { "New date and time" }
                                            input type="datetime-local" id={ "move-" (s.id) } name="scheduled_at" required;
                                            button type="submit" { "Move" }
                                        }
                                        form method="post" action={ "/console/sessions/" (s.id) "/complete" } {
                                            input type="hidden" name="csrf" value=(csrf);
                                            input type="hidden" name="patient" value=(id);
                                            button type="submit" { "Mark completed" }
                                        }
                                        form method="post" action={ "/console/sessions/" (s.id) "/cancel" } {
                                            input type="hidden" name="csrf" value=(csrf);
                                            input type="hidden" name="patient" value=(id);
                                            button type="submit" class="danger" { "Cancel session" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="alerts-h" {
            h2 id="alerts-h" { "Alert history" }
            table class="list" {
                thead { tr { th scope="col" { "Opened" } th scope="col" { "Severity" } th scope="col" { "Why" } th scope="col" { "Status" } th scope="col" { "Inputs" } } }
                tbody {
                    @if data.alerts.is_empty() { tr { td colspan="5" { "No alerts." } } }
                    @for a in &data.alerts {
                        tr {
                            td data-label="Opened" { (local_time(a.opened_at, vtz)) }
                            td data-label="Severity" { span class={ "badge sev-" (a.severity) } { (a.severity) } }
                            td data-label="Why" { (a.explanation) }
                            td data-label="Status" { (a.status) @if let Some(note) = &a.resolution_note { ": " (note) } }
                            td data-label="Inputs" { code class="inputs" { (a.inputs) } }
                        }
                    }
                }
            }
        }
        section aria-labelledby="prompts-h" {
            h2 id="prompts-h" { "Prompts and care plan" }
            @let a = &data.adherence;
            dl class="facts" id="adherence" {
                dt { "Answered in time" }
                dd { (a.completed) " of " (a.completed + a.expired) " closed prompts in " (a.window_days) " days"
                    @if let Some(rate) = a.completion_rate { " (" (format!("{:.0}", rate * 100.0)) "%)" } }
                dt { "In a row" }
                dd { (a.current_streak) " answered, " (a.consecutive_misses) " missed" }
                dt { "Care plan" }
                dd { (match data.plan.source {
                    PlanSource::Patient => "the patient's own",
                    PlanSource::Clinic => "the clinic's",
                    PlanSource::Default => "the built-in default",
                }) }
            }
            table class="list" id="patient-plan" {
                thead { tr { th scope="col" { "Rule" } th scope="col" { "Check-in" } th scope="col" { "When" } } }
                tbody {
                    @if data.plan.plan.rules.is_empty() { tr { td colspan="3" { "No rules: the patient is not prompted." } } }
                    @for rule in &data.plan.plan.rules {
                        tr {
                            td data-label="Rule" { (rule.id) }
                            td data-label="Check-in" { (instrument_label(&rule.instrument)) }
                            td data-label="When" { (super::settings::care_plan::anchor_text(&rule.anchor)) }
                        }
                    }
                }
            }
            table class="list" id="prompts" {
                thead { tr { th scope="col" { "Due" } th scope="col" { "Check-in" } th scope="col" { "Status" } } }
                tbody {
                    @if data.prompts.is_empty() { tr { td colspan="3" { "No prompts in the last 14 days or planned." } } }
                    @for p in &data.prompts {
                        tr {
                            td data-label="Due" { (local_time(p.due_at, vtz)) }
                            td data-label="Check-in" { (instrument_label(&p.instrument)) }
                            td data-label="Status" { (p.status) }
                        }
                    }
                }
            }
        }
        section aria-labelledby="history-h" {
            h2 id="history-h" { "Check-in history" }
            table class="list" {
                thead { tr { th scope="col" { "Answered" } th scope="col" { "Check-in" } th scope="col" { "Result" } } }
                tbody {
                    @if data.recent.is_empty() { tr { td colspan="3" { "No check-ins." } } }
                    @for c in &data.recent {
                        tr {
                            td data-label="Answered" { (local_time(c.completed_at, vtz)) @if c.timing == "late" { " (received late)" } }
                            td data-label="Check-in" { (instrument_label(&c.instrument)) }
                            td data-label="Result" {
                                @if let Some(total) = c.total { "total " (total) @if let Some(sev) = &c.severity { " (" (sev.replace('_', " ")) ")" } }
                                @if let Some(mood) = c.mood { "mood " (mood) }
                                @if c.item9.is_some_and(|v| v >= 1) { " " span class="badge sev-urgent" { "item 9: " (c.item9.unwrap_or_default()) } }
                            }
                        }
                    }
                }
            }
        }
        @if data.admin {
            section aria-labelledby="password-h" {
                h2 id="password-h" { "Password" }
                p class="note" { "A patient locked out of the app can set a new password with a reset code (single use, one hour)." }
                form method="post" action={ "/console/accounts/" (id) "/password-reset" } {
                    input type="hidden" name="csrf" value=(csrf);
                    button type="submit" { "Issue reset code" }
                }
            }
        }
    };
    page::frame("Patient", Nav::Patient, Some(csrf), body)
}

/// The charts' shared time axis: from the first day with data in the last [`DAYS`] (at least
/// two weeks shown) to today, or to an upcoming session within two weeks.
fn chart_axis(
    today: NaiveDate,
    mood: &[(NaiveDate, f64)],
    phq9: &[(NaiveDate, i64)],
    gad7: &[(NaiveDate, i64)],
    bp: &[(NaiveDate, i64, i64)],
    sessions: &[NaiveDate],
) -> Axis {
    let window_start = today - TimeDelta::days(i64::from(DAYS) - 1);
    let first = mood
        .iter()
        .map(|p| p.0)
        .chain(phq9.iter().map(|p| p.0))
        .chain(gad7.iter().map(|p| p.0))
        .chain(bp.iter().map(|p| p.0))
        .chain(sessions.iter().copied())
        .filter(|d| *d >= window_start)
        .min()
        .unwrap_or(window_start);
    let to = sessions
        .iter()
        .copied()
        .filter(|d| *d > today && *d <= today + TimeDelta::days(14))
        .max()
        .unwrap_or(today);
    Axis {
        from: first.min(to - TimeDelta::days(13)).max(window_start),
        to,
    }
}

/// Reads a `datetime-local` value in the zone `tz`.
fn parse_local(text: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let naive = NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%dT%H:%M:%S"))
        .ok()?;
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// A session form: the treatment (when scheduling), the date and time in the viewer's zone
/// (when scheduling or moving), and the patient whose page to go back to.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SessionForm {
    modality: String,
    scheduled_at: String,
    patient: String,
}

/// Schedules a session (form).
pub async fn schedule(
    State(state): State<AppState>,
    Path(id): Path<String>,
    SignedForm { user, secure, form }: SignedForm<SessionForm>,
) -> Response {
    let (now, horizon) = (state.now(), state.config.prompts.horizon);
    let modality = Modality::parse(&form.modality);
    let at = form.scheduled_at;
    let raw = id.clone();
    let done = state
        .write_as(user.bearer, move |conn, caller| {
            let mut problems = BTreeMap::new();
            if modality.is_none() {
                problems.insert("modality".to_owned(), "choose a treatment".to_owned());
            }
            let scheduled_at = parse_local(&at, tz_of(&caller.timezone));
            match scheduled_at {
                Some(when) => check_schedule_time(when, now, &mut problems),
                None => {
                    problems.insert(
                        "scheduled_at".to_owned(),
                        "enter a date and time".to_owned(),
                    );
                }
            }
            let new = NewSession {
                modality: modality.unwrap_or(Modality::IvInfusion),
                scheduled_at: scheduled_at.unwrap_or(now),
                observations: None,
                problems,
            };
            sessions::schedule(conn, caller, &raw, new, now, horizon)
        })
        .await;
    match done {
        Ok(_) => {
            state.jobs_enqueued();
            page::done(&format!("/console/patients/{id}#sessions-h"))
        }
        Err(error) => page::failure(error, secure),
    }
}

#[derive(Debug, Clone, Copy)]
enum SessionAction {
    Move,
    Complete,
    Cancel,
}

async fn session_action(
    state: AppState,
    id: String,
    signed: SignedForm<SessionForm>,
    action: SessionAction,
) -> Response {
    let SignedForm { user, secure, form } = signed;
    let back = AccountId::parse(&form.patient).map_or_else(
        || "/console".to_owned(),
        |p| format!("/console/patients/{p}#sessions-h"),
    );
    let (now, horizon) = (state.now(), state.config.prompts.horizon);
    let at = form.scheduled_at;
    let done = state
        .write_as(user.bearer, move |conn, caller| match action {
            SessionAction::Cancel => sessions::cancel(conn, caller, &id, now, horizon),
            SessionAction::Complete | SessionAction::Move => {
                let mut problems = BTreeMap::new();
                let scheduled_at = if matches!(action, SessionAction::Move) {
                    let parsed = parse_local(&at, tz_of(&caller.timezone));
                    match parsed {
                        Some(when) => check_schedule_time(when, now, &mut problems),
                        None => {
                            problems.insert(
                                "scheduled_at".to_owned(),
                                "enter a date and time".to_owned(),
                            );
                        }
                    }
                    parsed
                } else {
                    None
                };
                let change = SessionChange {
                    scheduled_at,
                    complete: matches!(action, SessionAction::Complete),
                    observations: None,
                    problems,
                };
                sessions::change(conn, caller, &id, change, now, horizon)
            }
        })
        .await;
    match done {
        Ok(_) => {
            state.jobs_enqueued();
            page::done(&back)
        }
        Err(error) => page::failure(error, secure),
    }
}

/// Moves a session (form).
pub async fn move_session(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: SignedForm<SessionForm>,
) -> Response {
    session_action(state, id, form, SessionAction::Move).await
}

/// Records a session as completed (form).
pub async fn complete_session(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: SignedForm<SessionForm>,
) -> Response {
    session_action(state, id, form, SessionAction::Complete).await
}

/// Cancels a session (form).
pub async fn cancel_session(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: SignedForm<SessionForm>,
) -> Response {
    session_action(state, id, form, SessionAction::Cancel).await
}
