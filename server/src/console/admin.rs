//! The roster (patients by risk, last check-in, adherence and open alerts, with a search) and
//! the clinic admin page (staff with their on-call status; invitations: create, list pending,
//! revoke). Searching posts its query, so that a patient's name never appears in a URL.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use crate::account::model::Role;
use crate::app::AppState;
use crate::clinic::use_cases::{self as clinics, RosterEntry, StaffMember};
use crate::invitation::InvitationRow;
use crate::invitation::use_cases::{self as invitations, Invite};

use super::form::{NoFields, SignedForm, filled};
use super::page::{self, Nav};
use super::session::{self, ConsoleUser};

/// Patients listed at most.
const ROSTER_LIMIT: usize = 500;

async fn roster(state: &AppState, secure: bool, user: ConsoleUser, query: String) -> Response {
    let now = state.now();
    let q = query.clone();
    let found = state
        .read_as(user.bearer.clone(), move |conn, caller| {
            clinics::search_roster(conn, caller, &q, ROSTER_LIMIT, now)
        })
        .await;
    match found {
        Ok(entries) => page::frame(
            "Patients",
            Nav::Patients,
            Some(&user.csrf),
            roster_body(&entries, &query, &user.csrf, now),
        )
        .into_response(),
        Err(error) => page::failure(error, secure),
    }
}

fn roster_body(entries: &[RosterEntry], query: &str, csrf: &str, now: DateTime<Utc>) -> Markup {
    html! {
        h1 { "Patients" }
        form method="post" action="/console/patients/search" class="inline-form" role="search" {
            input type="hidden" name="csrf" value=(csrf);
            label for="q" { "Search by name or email" }
            input id="q" name="q" type="search" value=(query) maxlength="100";
            button type="submit" { "Search" }
            @if !query.is_empty() { a href="/console/patients" { "Show all" } }
        }
        table class="list" id="roster" {
            caption class="sr-only" { "Patients, most at risk first" }
            thead { tr {
                th scope="col" { "Patient" } th scope="col" { "Risk" } th scope="col" { "Open alerts" }
                th scope="col" { "Last check-in" } th scope="col" { "Adherence (30 days)" }
            } }
            tbody {
                @if entries.is_empty() { tr { td colspan="5" { "No patients found." } } }
                @for e in entries {
                    tr {
                        td data-label="Patient" { a href={ "/console/patients/" (e.row.id) } { (e.row.display_name.as_deref().unwrap_or("Unnamed patient")) } }
                        td data-label="Risk" {
                            @match &e.risk { Some(risk) => span class={ "badge sev-" (risk) } { (risk) }, None => "none" }
                        }
                        td data-label="Open alerts" { (e.open_alerts) }
                        td data-label="Last check-in" {
                            @match e.adherence.last_check_in_at { Some(at) => (page::ago(at, now)), None => "never" }
                        }
                        td data-label="Adherence (30 days)" {
                            @match e.adherence.completion_rate {
                                Some(rate) => { (format!("{:.0}%", rate * 100.0)) " (" (e.adherence.completed) " of " (e.adherence.completed + e.adherence.expired) ")" }
                                None => "no prompts closed yet",
                            }
                            @if e.adherence.consecutive_misses >= 3 { " " span class="badge sev-low" { (e.adherence.consecutive_misses) " missed in a row" } }
                        }
                    }
                }
            }
        }
    }
}

/// The roster, most at risk first.
pub async fn roster_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: ConsoleUser,
) -> Response {
    let secure = session::secure(&state, &headers);
    roster(&state, secure, user, String::new()).await
}

/// The roster search: the text to look for.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SearchForm {
    q: String,
}

/// The roster narrowed by a search (posted, so names stay out of URLs).
pub async fn search(
    State(state): State<AppState>,
    SignedForm { user, secure, form }: SignedForm<SearchForm>,
) -> Response {
    roster(&state, secure, user, form.q).await
}

struct AdminPage {
    staff: Vec<StaffMember>,
    pending: Vec<InvitationRow>,
    me: String,
}

fn role_label(role: &str) -> &str {
    match role {
        "clinic_admin" => "Clinic admin",
        "clinician" => "Clinician",
        "patient" => "Patient",
        other => other,
    }
}

async fn admin(
    state: &AppState,
    secure: bool,
    user: &ConsoleUser,
    created: Option<(String, String)>,
    status: StatusCode,
) -> Response {
    let now = state.now();
    let loaded = state
        .read_as(user.bearer.clone(), move |conn, caller| {
            let clinic = caller.own_clinic()?.to_string();
            let pending = invitations::pending(conn, caller, &clinic, None, 200, now)?;
            let staff = clinics::list_staff(conn, caller)?;
            Ok(AdminPage {
                staff,
                pending,
                me: caller.account_id.to_string(),
            })
        })
        .await;
    let data = match loaded {
        Ok(data) => data,
        Err(error) => return page::failure(error, secure),
    };
    let csrf = &user.csrf;
    let body = html! {
        h1 { "Clinic" }
        @if let Some((code, role)) = &created {
            div class="readiness warn" role="status" id="new-invitation" {
                h2 { "Invitation created" }
                p { "Give this code to the new " (role_label(role).to_lowercase()) ". It is shown only now:" }
                p { code class="invitation-code" { (code) } }
                @if role == "patient" {
                    @let link = crate::patient_app::qr::join_link(state.config.public_url.as_str(), code);
                    p { "Or send the patient this link to the app, or let them scan the code with their phone's camera:" }
                    p { a id="invitation-link" class="invitation-link" href=(link) { (link) } }
                    @if let Some(qr) = crate::patient_app::qr::svg_data_uri(&link) {
                        p { img class="invitation-qr" src=(qr) width="200" height="200" alt="QR code of the invitation link"; }
                    }
                }
            }
        }
        section aria-labelledby="staff-h" {
            h2 id="staff-h" { "Staff" }
            table class="list" {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Role" } th scope="col" { "On call" } th scope="col" { "Password" } } }
                tbody {
                    @for m in &data.staff {
                        tr data-staff-id=(m.id) {
                            td data-label="Name" { (m.display_name.as_deref().unwrap_or("Unnamed staff member")) }
                            td data-label="Role" { (role_label(&m.role)) }
                            td data-label="On call" { @if m.on_call { "on call" } @else { "no" } }
                            td data-label="Password" {
                                @if m.id != data.me {
                                    form method="post" action={ "/console/accounts/" (m.id) "/password-reset" } {
                                        input type="hidden" name="csrf" value=(csrf);
                                        button type="submit" { "Issue reset code" }
                                    }
                                } @else {
                                    a href="/console/account" { "Change mine" }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="inv-h" {
            h2 id="inv-h" { "Invitations" }
            form method="post" action="/console/admin/invitations" class="inline-form" id="invite-form" {
                input type="hidden" name="csrf" value=(csrf);
                label for="role" { "Role" }
                select id="role" name="role" {
                    option value="patient" { "Patient" }
                    option value="clinician" { "Clinician" }
                    option value="clinic_admin" { "Clinic admin" }
                }
                label for="invite-email" { "Only this email may accept (optional)" }
                input id="invite-email" name="email" type="email";
                button type="submit" class="primary" { "Create invitation" }
            }
            table class="list" id="invitations" {
                thead { tr { th scope="col" { "Role" } th scope="col" { "For" } th scope="col" { "Expires" } th scope="col" { "Actions" } } }
                tbody {
                    @if data.pending.is_empty() { tr { td colspan="4" { "No pending invitations." } } }
                    @for inv in &data.pending {
                        tr data-invitation-id=(inv.id) {
                            td data-label="Role" { (role_label(&inv.role)) }
                            td data-label="For" { (inv.email.as_deref().unwrap_or("anyone with the code")) }
                            td data-label="Expires" { (page::countdown(crate::time::utc(inv.expires_at), now)) }
                            td data-label="Actions" {
                                form method="post" action={ "/console/admin/invitations/" (inv.id) "/revoke" } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    button type="submit" class="danger" { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    (status, page::frame("Clinic", Nav::Clinic, Some(csrf), body)).into_response()
}

/// The clinic admin page.
pub async fn admin_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: ConsoleUser,
) -> Response {
    let secure = session::secure(&state, &headers);
    admin(&state, secure, &user, None, StatusCode::OK).await
}

/// The invitation form: the role, and the only email that may accept it (empty for anyone).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct InvitationForm {
    role: String,
    email: String,
}

/// Creates an invitation and shows its code once.
pub async fn create_invitation(
    State(state): State<AppState>,
    SignedForm { user, secure, form }: SignedForm<InvitationForm>,
) -> Response {
    let role = Role::parse(&form.role).unwrap_or(Role::OrgAdmin);
    let email = filled(&form.email).map(str::to_owned);
    let invite = Invite {
        role,
        email,
        expires_in_hours: None,
        default_ttl: TimeDelta::from_std(state.config.invitation_ttl).unwrap_or(TimeDelta::days(7)),
    };
    let now = state.now();
    let made = state
        .write_as(user.bearer.clone(), move |conn, caller| {
            invitations::invite(
                conn,
                caller,
                &caller
                    .own_clinic()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                invite,
                now,
            )
        })
        .await;
    match made {
        Ok(invited) => {
            admin(
                &state,
                secure,
                &user,
                Some((invited.code, invited.row.role)),
                StatusCode::CREATED,
            )
            .await
        }
        Err(error) => page::failure(error, secure),
    }
}

/// Revokes a pending invitation.
pub async fn revoke_invitation(
    State(state): State<AppState>,
    Path(id): Path<String>,
    SignedForm { user, secure, .. }: SignedForm<NoFields>,
) -> Response {
    let now = state.now();
    match state
        .write_as(user.bearer, move |conn, caller| {
            invitations::revoke(conn, caller, &id, now)
        })
        .await
    {
        Ok(()) => page::done("/console/admin#inv-h"),
        Err(error) => page::failure(error, secure),
    }
}
