//! The alert inbox, the console's landing page: open, acknowledged and resolved tabs (most
//! severe first, then the latest signal), the clinic's readiness problems on top, and the
//! acknowledge, assign and resolve forms. The open tab refreshes its rows in place by polling a
//! partial (`/console/alerts/rows`), and a new urgent alert raises a banner.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use crate::app::AppState;
use crate::clinic::use_cases::{self as clinics, StaffMember};
use crate::error::Failure;
use crate::escalation::AlertRow;
use crate::escalation::inbox;
use crate::escalation::readiness::Readiness;
use crate::time::utc;

use super::form::SignedForm;
use super::page::{self, Nav};
use super::session::ConsoleUser;

/// Rows shown per tab.
const PAGE: i64 = 200;

/// The tab asked for.
#[derive(Debug, Deserialize)]
pub struct TabQuery {
    status: Option<String>,
}

fn tab_of(query: &TabQuery) -> &'static str {
    match query.status.as_deref() {
        Some("acknowledged") => "acknowledged",
        Some("resolved") => "resolved",
        _ => "open",
    }
}

/// What one inbox page shows.
struct Inbox {
    rows: Vec<AlertRow>,
    more: bool,
    names: HashMap<String, String>,
    staff: Vec<StaffMember>,
    readiness: Option<Readiness>,
}

async fn load(
    state: &AppState,
    user: &ConsoleUser,
    tab: &'static str,
    full: bool,
) -> Result<Inbox, Response> {
    let now = state.now();
    let zones = state.zones.clone();
    let channels = state.channels();
    let secure = false;
    state
        .read_as(user.bearer.clone(), move |conn, caller| {
            let mut rows = inbox::list(
                conn,
                caller,
                crate::escalation::InboxFilter {
                    status: Some(tab.to_owned()),
                    ..Default::default()
                },
                None,
                PAGE + 1,
                now,
            )?;
            let more = rows.len() as i64 > PAGE;
            rows.truncate(PAGE as usize);
            let mut ids: Vec<String> = rows.iter().map(|r| r.patient_id.clone()).collect();
            ids.sort();
            ids.dedup();
            let names = clinics::patient_names(conn, caller, &ids)?;
            let staff = clinics::list_staff(conn, caller)?;
            let readiness = if full {
                let clinic = caller
                    .clinic_id
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                // Shown to those who may read it; a refusal leaves it out of the page.
                match crate::escalation::alerting::clinic_readiness(
                    conn, caller, &clinic, &zones, channels,
                ) {
                    Ok(readiness) => Some(readiness),
                    Err(Failure::Refused(_)) => None,
                    Err(failure) => return Err(failure),
                }
            } else {
                None
            };
            Ok(Inbox {
                rows,
                more,
                names,
                staff,
                readiness,
            })
        })
        .await
        .map_err(|e| page::failure(e, secure))
}

/// The inbox (landing page and each tab).
pub async fn inbox_page(
    State(state): State<AppState>,
    user: ConsoleUser,
    Query(query): Query<TabQuery>,
) -> Response {
    let tab = tab_of(&query);
    let inbox = match load(&state, &user, tab, true).await {
        Ok(inbox) => inbox,
        Err(response) => return response,
    };
    let now = state.now();
    let body = html! {
        @if let Some(readiness) = &inbox.readiness {
            @if !readiness.problems.is_empty() {
                section class=(if readiness.reachable { "readiness warn" } else { "readiness danger" }) aria-labelledby="readiness-h" {
                    h2 id="readiness-h" {
                        @if readiness.reachable { "Clinic readiness" } @else { "Alerts cannot reach anyone now" }
                    }
                    ul {
                        @for problem in &readiness.problems {
                            li data-code=(problem.code) { (problem.message) }
                        }
                    }
                }
            }
        }
        div id="urgent-banner" class="urgent-banner" role="alert" hidden {
            strong { "New urgent alert." } " A patient answered the safety question; it is at the top of the open tab."
        }
        h1 { "Alert inbox" }
        nav class="tabs" aria-label="Alert status" {
            @for (key, label) in [("open", "Open"), ("acknowledged", "Acknowledged"), ("resolved", "Resolved")] {
                a href={ "/console/alerts?status=" (key) } aria-current=[(key == tab).then_some("page")] { (label) }
            }
        }
        table class="inbox" data-status=(tab) data-poll=(if tab == "open" { "5000" } else { "0" }) {
            caption class="sr-only" { "Alerts, most severe first, then the latest signal" }
            thead {
                tr {
                    th scope="col" { "Severity" }
                    th scope="col" { "Patient" }
                    th scope="col" { "Why" }
                    th scope="col" { "Signal" }
                    th scope="col" { "Deadline" }
                    th scope="col" { "Tier" }
                    th scope="col" { "Actions" }
                }
            }
            tbody id="inbox-rows" { (rows(&inbox, tab, &user.csrf, now)) }
        }
        @if inbox.more {
            p class="note" { "Showing the first " (PAGE) " alerts of this tab." }
        }
    };
    page::frame("Alert inbox", Nav::Inbox, Some(&user.csrf), body).into_response()
}

/// The rows of a tab alone, for the page's script to swap in.
pub async fn inbox_rows(
    State(state): State<AppState>,
    user: ConsoleUser,
    Query(query): Query<TabQuery>,
) -> Response {
    let tab = tab_of(&query);
    match load(&state, &user, tab, false).await {
        Ok(inbox) => rows(&inbox, tab, &user.csrf, state.now()).into_response(),
        Err(response) => response,
    }
}

fn rule_label(rule: &str) -> &str {
    match rule {
        "safety_item9" => "Safety answer (PHQ-9 item 9)",
        "phq9_deterioration" => "PHQ-9 deterioration",
        "phq9_severe" => "PHQ-9 severe",
        "gad7_deterioration" => "GAD-7 deterioration",
        "mood_cusum" => "Mood decline",
        "mood_floor" => "Very low mood",
        "mood_drop" => "Mood drop",
        "missed_check_ins" => "Missed check-ins",
        "blood_pressure" => "Blood pressure",
        "lingering_dissociation" => "Lingering dissociation",
        "patient_help_request" => "Patient asked for help",
        other => other,
    }
}

fn rows(inbox: &Inbox, tab: &str, csrf: &str, now: DateTime<Utc>) -> Markup {
    html! {
        @if inbox.rows.is_empty() {
            tr class="empty" { td colspan="7" { "No " (tab) " alerts." } }
        }
        @for row in &inbox.rows {
            @let deadline = utc(row.ack_deadline);
            @let signal = utc(row.signal_received_at.unwrap_or(row.last_signal_at));
            @let name = inbox.names.get(&row.patient_id).map(String::as_str).unwrap_or("Unnamed patient");
            tr class={ "alert sev-" (row.severity) } data-alert-id=(row.id) data-severity=(row.severity) {
                td data-label="Severity" {
                    span class={ "badge sev-" (row.severity) } { (row.severity) }
                    @if row.unreachable_at.is_some() && row.reached_at.is_none() {
                        " " span class="badge unreachable" title="Nobody in the care team could be reached: no working channel, or every delivery failed" { "unreachable" }
                    } @else if row.status == "open" && row.reached_at.is_none() {
                        " " span class="badge" title="Deliveries are on their way; none has been accepted yet" { "not yet reached" }
                    }
                    @if row.new_signal_since_ack {
                        " " span class="badge" { "new signal" }
                    }
                }
                td data-label="Patient" {
                    @if row.patient_erased_at.is_some() {
                        span class="erased" title="The patient erased their account; this alert stays until it is resolved" { "Erased patient" }
                    } @else {
                        a href={ "/console/patients/" (row.patient_id) } { (name) }
                    }
                }
                td data-label="Why" {
                    strong { (rule_label(&row.rule)) } br;
                    span class="explanation" { (row.explanation) }
                }
                td data-label="Signal" {
                    time datetime=(signal.to_rfc3339()) title=(signal.format("%Y-%m-%d %H:%M UTC").to_string()) { (page::ago(signal, now)) }
                }
                td data-label="Deadline" {
                    @if row.status == "open" {
                        span class=(if deadline < now { "deadline overdue" } else { "deadline" }) data-deadline=(deadline.to_rfc3339()) {
                            (page::countdown(deadline, now))
                        }
                    } @else if row.status == "acknowledged" {
                        "acknowledged"
                    } @else {
                        "resolved"
                    }
                }
                td data-label="Tier" { "tier " (row.tier) }
                td data-label="Actions" class="actions" {
                    @if row.status == "open" {
                        form method="post" action={ "/console/alerts/" (row.id) "/acknowledge" } {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="hidden" name="back" value=(tab);
                            button type="submit" class="primary" { "Acknowledge" }
                        }
                    }
                    @if row.status != "resolved" {
                        details {
                            summary { "Assign or resolve" }
                            @if !inbox.staff.is_empty() {
                                form method="post" action={ "/console/alerts/" (row.id) "/assign" } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    input type="hidden" name="back" value=(tab);
                                    label for={ "assignee-" (row.id) } { "Assign to" }
                                    select id={ "assignee-" (row.id) } name="assignee_id" {
                                        @for member in &inbox.staff {
                                            option value=(member.id) selected[row.assigned_to.as_deref() == Some(member.id.as_str())] {
                                                (member.display_name.as_deref().unwrap_or("Unnamed staff member"))
                                            }
                                        }
                                    }
                                    button type="submit" { "Assign" }
                                }
                            }
                            form method="post" action={ "/console/alerts/" (row.id) "/resolve" } {
                                input type="hidden" name="csrf" value=(csrf);
                                input type="hidden" name="back" value=(tab);
                                input type="hidden" name="signal_count" value=(row.signal_count);
                                label for={ "note-" (row.id) } { "Resolution note" }
                                textarea id={ "note-" (row.id) } name="note" rows="2" required maxlength="2000" {}
                                button type="submit" { "Resolve" }
                            }
                        }
                    } @else if let Some(note) = &row.resolution_note {
                        span class="note" { (note) }
                    }
                }
            }
        }
    }
}

/// Which alert action a form posts.
#[derive(Debug, Clone, Copy)]
enum Action {
    Acknowledge,
    Assign,
    Resolve,
}

/// An alert form: the tab to go back to, and what the action needs (the assignee; the
/// resolution note and the signals seen when resolving).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AlertForm {
    back: String,
    note: String,
    assignee_id: String,
    signal_count: String,
}

async fn act(
    state: AppState,
    id: String,
    signed: SignedForm<AlertForm>,
    action: Action,
) -> Response {
    let SignedForm { user, secure, form } = signed;
    let back = match form.back.as_str() {
        "acknowledged" => "acknowledged",
        "resolved" => "resolved",
        _ => "open",
    };
    let now = state.now();
    let seen_signals = form.signal_count.parse().ok();
    let (note, assignee) = (form.note, form.assignee_id);
    let channels = state.channels();
    let done = state
        .write_as(user.bearer, move |conn, caller| match action {
            Action::Acknowledge => inbox::acknowledge(conn, caller, &id, now).map(drop),
            Action::Assign => inbox::assign(conn, caller, &id, &assignee, channels, now).map(drop),
            Action::Resolve => {
                inbox::resolve(conn, caller, &id, &note, seen_signals, now).map(drop)
            }
        })
        .await;
    match done {
        Ok(()) => {
            if matches!(
                action,
                Action::Acknowledge | Action::Assign | Action::Resolve
            ) {
                state.jobs_enqueued();
            }
            page::done(&format!("/console/alerts?status={back}"))
        }
        Err(error) => page::failure(error, secure),
    }
}

/// Acknowledges an alert (form).
pub async fn acknowledge(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: SignedForm<AlertForm>,
) -> Response {
    act(state, id, form, Action::Acknowledge).await
}

/// Assigns an alert (form).
pub async fn assign(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: SignedForm<AlertForm>,
) -> Response {
    act(state, id, form, Action::Assign).await
}

/// Resolves an alert with a note (form).
pub async fn resolve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: SignedForm<AlertForm>,
) -> Response {
    act(state, id, form, Action::Resolve).await
}
