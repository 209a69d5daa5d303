//! Erasure of a patient, asked for by the patient or a clinic admin of their clinic. Everything
//! of the patient goes in one transaction: identifiers (email, name, zone, password, devices
//! and push tokens, sign-in sessions, the invitation's email) and their clinical records
//! (check-ins, prompts, preferences, treatment sessions, resolved alerts with their events,
//! consent records, requests for help), or, when the clinic's policy is to de-identify,
//! check-ins and resolved alerts stay under the opaque id only (requests for help go either way),
//! until the retention purge takes them. An unresolved
//! alert outlives erasure: it stays, reduced to severity, rule and times, escalating as before,
//! until staff resolve it, and the care team is told at once. The account stays as an empty,
//! disabled mark so that audit rows and kept alerts keep pointing at an id; the audit keeps
//! that the erasure happened, and nothing of the data.

use chrono::{DateTime, NaiveDateTime, Utc};
use companion_schema::schema::{
    accounts, alert_events, alerts, check_ins, consent_records, devices, invitations, jobs,
    notification_attempts, notifications, patient_schedules, prompts, refresh_families,
    refresh_tokens, treatment_sessions,
};
use diesel::prelude::*;

use crate::account::model::Role;
use crate::audit::{self, AuditEntry};
use crate::auth::extract::Caller;
use crate::db::DbConnection;
use crate::error::{Outcome, Refusal};
use crate::escalation::policy::Audience;
use crate::patient::{self, SelfAccess};
use crate::push::content::PushMessage;

/// The reason an erased patient's resolved alerts keep instead of the staff's notes.
pub const ERASED: &str = "patient erased";

/// The stored rule name of a patient's request for help.
const HELP_REQUEST_RULE: &str = "patient_help_request";

/// What an unresolved alert of an erased patient says instead of its details.
pub const ERASED_EXPLANATION: &str =
    "The patient erased their account while this alert was unresolved; its details were removed.";

/// Erases the patient `raw_patient`: the patient themself, or a clinic admin of their clinic.
pub fn erase(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_patient: &str,
    now: DateTime<Utc>,
) -> Outcome<()> {
    if caller.role == Role::Clinician {
        return Err(Refusal::forbidden("Only a clinic admin may erase a patient.").into());
    }
    patient::with_patient(
        conn,
        caller,
        raw_patient,
        SelfAccess::StaffOrSelf,
        |conn, patient| {
            let id = patient.id.as_str();
            let stamp = now.naive_utc();
            let mode = super::retention::ErasureMode::from_stored(
                &super::store::lifecycle_of(conn, patient.clinic_id.as_str(), stamp)?.erasure_mode,
            );
            // An open alert outlives erasure (CLINICAL.md, part 2): an unresolved alert stays,
            // reduced to severity, rule and times, until staff resolve it, and the care team is
            // told at once. Its escalation goes on.
            let unresolved: Vec<(String, String)> = alerts::table
                .filter(alerts::patient_id.eq(id))
                .filter(alerts::status.ne("resolved"))
                .select((alerts::id, alerts::severity))
                .load(conn)?;
            keep_unresolved(conn, patient.clinic_id.as_str(), &unresolved, stamp)?;
            let resolved: Vec<String> = alerts::table
                .filter(alerts::patient_id.eq(id))
                .filter(alerts::status.eq("resolved"))
                .select(alerts::id)
                .load(conn)?;
            for alert in &resolved {
                diesel::delete(
                    jobs::table
                        .filter(jobs::status.eq("queued"))
                        .filter(jobs::dedupe_key.like(format!("%{alert}%"))),
                )
                .execute(conn)?;
            }
            match mode {
                super::retention::ErasureMode::Delete => {
                    diesel::delete(
                        alert_events::table.filter(alert_events::alert_id.eq_any(&resolved)),
                    )
                    .execute(conn)?;
                    diesel::delete(alerts::table.filter(alerts::id.eq_any(&resolved)))
                        .execute(conn)?;
                }
                super::retention::ErasureMode::Deidentify => {
                    // Free text written about the patient may name them: it goes; the rest
                    // (rule, severity, times, the opaque id) stays until retention ends.
                    diesel::update(
                        alert_events::table.filter(alert_events::alert_id.eq_any(&resolved)),
                    )
                    .set(alert_events::detail.eq(""))
                    .execute(conn)?;
                    diesel::update(alerts::table.filter(alerts::id.eq_any(&resolved)))
                        .set(alerts::resolution_note.eq(ERASED))
                        .execute(conn)?;
                    // A request for help carries the patient's own words: they go too.
                    diesel::update(
                        alerts::table
                            .filter(alerts::id.eq_any(&resolved))
                            .filter(alerts::rule.eq(HELP_REQUEST_RULE)),
                    )
                    .set(alerts::inputs.eq("{}"))
                    .execute(conn)?;
                }
            }
            let pending_pushes: Vec<String> = notifications::table
                .filter(notifications::account_id.eq(id))
                .select(notifications::id)
                .load(conn)?;
            for push in &pending_pushes {
                diesel::delete(
                    jobs::table
                        .filter(jobs::status.eq("queued"))
                        .filter(jobs::dedupe_key.eq(format!("push:{push}"))),
                )
                .execute(conn)?;
            }
            let notification_ids = notifications::table
                .filter(notifications::account_id.eq(id))
                .select(notifications::id);
            diesel::delete(
                notification_attempts::table
                    .filter(notification_attempts::notification_id.eq_any(notification_ids)),
            )
            .execute(conn)?;
            diesel::delete(notifications::table.filter(notifications::account_id.eq(id)))
                .execute(conn)?;
            diesel::delete(devices::table.filter(devices::account_id.eq(id))).execute(conn)?;
            let families = refresh_families::table
                .filter(refresh_families::account_id.eq(id))
                .select(refresh_families::id);
            diesel::delete(
                refresh_tokens::table.filter(refresh_tokens::family_id.eq_any(families)),
            )
            .execute(conn)?;
            diesel::delete(refresh_families::table.filter(refresh_families::account_id.eq(id)))
                .execute(conn)?;
            diesel::delete(prompts::table.filter(prompts::patient_id.eq(id))).execute(conn)?;
            diesel::delete(patient_schedules::table.filter(patient_schedules::patient_id.eq(id)))
                .execute(conn)?;
            match mode {
                super::retention::ErasureMode::Delete => {
                    diesel::delete(check_ins::table.filter(check_ins::patient_id.eq(id)))
                        .execute(conn)?;
                }
                super::retention::ErasureMode::Deidentify => {
                    // The prompts they answered are gone; nothing else of a check-in names
                    // the patient.
                    diesel::update(check_ins::table.filter(check_ins::patient_id.eq(id)))
                        .set(check_ins::prompt_id.eq(None::<String>))
                        .execute(conn)?;
                }
            }
            diesel::delete(treatment_sessions::table.filter(treatment_sessions::patient_id.eq(id)))
                .execute(conn)?;
            diesel::delete(consent_records::table.filter(consent_records::patient_id.eq(id)))
                .execute(conn)?;
            // Requests for help go in either mode: their notes are the patient's own words, and
            // the alerts they raised keep the signal (an unresolved one until staff resolve it).
            crate::help::delete_of_patient(conn, id)?;
            diesel::update(invitations::table.filter(invitations::accepted_account_id.eq(id)))
                .set(invitations::email.eq(None::<String>))
                .execute(conn)?;
            super::erasure_traces::clear(conn, id, patient.clinic_id.as_str(), mode, now)?;
            diesel::update(accounts::table.find(id))
                .set((
                    accounts::email.eq(format!("erased-{id}@invalid")),
                    accounts::password_hash.eq("!"),
                    accounts::display_name.eq(None::<String>),
                    accounts::timezone.eq("UTC"),
                    accounts::working_hours.eq(None::<String>),
                    accounts::disabled_at.eq(Some(stamp)),
                    accounts::erased_at.eq(Some(stamp)),
                    accounts::updated_at.eq(stamp),
                ))
                .execute(conn)?;
            audit::record(
                conn,
                &AuditEntry::by(caller, "patient.erase", stamp)
                    .clinic(patient.clinic_id.as_str())
                    .patient(id),
            )?;
            Ok(())
        },
    )
}

/// Keeps an erased patient's unresolved alerts (`(id, severity)`), with the minimum needed to
/// act on them: severity, rule and times. Free text and the numbers behind it go, and so do the
/// links to check-ins; an event says why; and every active clinician and clinic admin of the
/// clinic is pushed at once (no health information: the alert's id only).
fn keep_unresolved(
    conn: &mut DbConnection,
    clinic_id: &str,
    unresolved: &[(String, String)],
    stamp: NaiveDateTime,
) -> QueryResult<()> {
    if unresolved.is_empty() {
        return Ok(());
    }
    let ids: Vec<&String> = unresolved.iter().map(|(id, _)| id).collect();
    diesel::update(alerts::table.filter(alerts::id.eq_any(&ids)))
        .set((
            alerts::patient_erased_at.eq(Some(stamp)),
            alerts::explanation.eq(ERASED_EXPLANATION),
            alerts::inputs.eq("{}"),
            alerts::check_in_id.eq(None::<String>),
        ))
        .execute(conn)?;
    diesel::update(alert_events::table.filter(alert_events::alert_id.eq_any(&ids)))
        .set((
            alert_events::detail.eq(""),
            alert_events::check_in_id.eq(None::<String>),
        ))
        .execute(conn)?;
    let mut staff = crate::escalation::audience(conn, clinic_id, Audience::Clinicians)?;
    staff.extend(crate::escalation::audience(
        conn,
        clinic_id,
        Audience::ClinicAdmins,
    )?);
    let staff: Vec<String> = staff.into_iter().map(|m| m.id).collect();
    let devices = crate::push::active_devices_of(conn, &staff)?;
    for (alert, severity) in unresolved {
        crate::escalation::event(
            conn,
            alert,
            "patient_erased",
            None,
            "The patient erased their account. This alert stays until it is resolved; its \
             details were removed.",
            stamp,
        )?;
        let time_sensitive = severity == "urgent" || severity == "high";
        let pushes = devices
            .iter()
            .map(|device| {
                (
                    device,
                    PushMessage::ClinicianAlert {
                        alert_id: alert.clone(),
                        time_sensitive,
                    },
                )
            })
            .collect();
        crate::push::notify_devices(conn, pushes, stamp)?;
    }
    Ok(())
}
