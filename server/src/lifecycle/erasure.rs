//! Erasure of a patient, asked for by the patient or a clinic admin of their clinic. Everything
//! of the patient goes in one transaction: identifiers (email, name, zone, password, devices
//! and push tokens, sign-in sessions, the invitation's email) and their clinical records
//! (check-ins, prompts, preferences, treatment sessions, alerts with their events, consent
//! records) — or, when the clinic's policy is to de-identify, check-ins and alerts stay under
//! the opaque id only, until the retention purge takes them. Open alerts are first resolved
//! with the reason "patient erased", and the jobs still waiting for them stand down. The account stays as an empty, disabled mark so that audit rows keep pointing at
//! an id; the audit keeps that the erasure happened, and nothing of the data.

use chrono::{DateTime, Utc};
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
use crate::escalation::store as escalation_store;
use crate::patient::{self, SelfAccess};

/// The reason an erased patient's open alerts are closed with.
pub const ERASED: &str = "patient erased";

/// Erases the patient `raw_patient`: the patient themself, or a clinic admin of their clinic.
pub fn erase(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_patient: &str,
    now: DateTime<Utc>,
) -> Outcome<()> {
    if caller.role == Role::Clinician {
        return Ok(Err(Refusal::forbidden(
            "Only a clinic admin may erase a patient.",
        )));
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
            let by = caller.account_id.to_string();
            let ids: Vec<String> = alerts::table
                .filter(alerts::patient_id.eq(id))
                .select(alerts::id)
                .load(conn)?;
            // Open alerts are closed with a reason first (never deleted while open), and their
            // escalation, webhook and push jobs still waiting stand down.
            let open: Vec<String> = alerts::table
                .filter(alerts::patient_id.eq(id))
                .filter(alerts::status.ne("resolved"))
                .select(alerts::id)
                .load(conn)?;
            for alert in &open {
                if escalation_store::resolve_if_unresolved(conn, alert, &by, ERASED, stamp)? {
                    escalation_store::event(conn, alert, "resolved", Some(&by), ERASED, stamp)?;
                    audit::record(
                        conn,
                        &AuditEntry::by(caller, "alert.resolve", stamp)
                            .clinic(patient.clinic_id.as_str())
                            .subject(alert),
                    )?;
                }
            }
            for alert in &ids {
                diesel::delete(
                    jobs::table
                        .filter(jobs::status.eq("queued"))
                        .filter(jobs::dedupe_key.like(format!("%{alert}%"))),
                )
                .execute(conn)?;
            }
            match mode {
                super::retention::ErasureMode::Delete => {
                    diesel::delete(alert_events::table.filter(alert_events::alert_id.eq_any(&ids)))
                        .execute(conn)?;
                    diesel::delete(alerts::table.filter(alerts::patient_id.eq(id)))
                        .execute(conn)?;
                }
                super::retention::ErasureMode::Deidentify => {
                    // Free text written about the patient may name them: it goes; the rest
                    // (rule, severity, times, the opaque id) stays until retention ends.
                    diesel::update(
                        alert_events::table
                            .filter(alert_events::alert_id.eq_any(&ids))
                            .filter(alert_events::detail.ne(ERASED)),
                    )
                    .set(alert_events::detail.eq(""))
                    .execute(conn)?;
                    diesel::update(alerts::table.filter(alerts::patient_id.eq(id)))
                        .set(alerts::resolution_note.eq(ERASED))
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
            diesel::update(invitations::table.filter(invitations::accepted_account_id.eq(id)))
                .set(invitations::email.eq(None::<String>))
                .execute(conn)?;
            super::erasure_traces::clear(conn, id, patient.clinic_id.as_str(), mode, stamp)?;
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
            Ok(Ok(()))
        },
    )
}
