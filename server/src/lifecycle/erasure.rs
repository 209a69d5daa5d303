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

use chrono::{DateTime, Utc};

use crate::account::model::Role;
use crate::audit::{self, AuditEntry};
use crate::auth::extract::Caller;
use crate::db::DbConnection;
use crate::error::{Outcome, Refusal};
use crate::escalation;
use crate::patient::{self, SelfAccess};

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
            escalation::erased::keep_unresolved(conn, patient.clinic_id.as_str(), id, now)?;
            let resolved = escalation::erased::take_resolved(conn, id)?;
            match mode {
                super::retention::ErasureMode::Delete => {
                    escalation::erased::delete_resolved(conn, &resolved)?;
                }
                super::retention::ErasureMode::Deidentify => {
                    escalation::erased::deidentify_resolved(conn, &resolved)?;
                }
            }
            crate::push::erase_account_devices(conn, id)?;
            crate::auth::delete_sessions_of(conn, id)?;
            crate::prompt::erase_patient(conn, id)?;
            match mode {
                super::retention::ErasureMode::Delete => {
                    crate::check_in::delete_of_patient(conn, id)?;
                }
                super::retention::ErasureMode::Deidentify => {
                    // The prompts they answered are gone; nothing else of a check-in names
                    // the patient.
                    crate::check_in::unlink_prompts_of_patient(conn, id)?;
                }
            }
            crate::treatment::delete_of_patient(conn, id)?;
            super::store::delete_records_of(conn, id)?;
            // Requests for help go in either mode: their notes are the patient's own words, and
            // the alerts they raised keep the signal (an unresolved one until staff resolve it).
            crate::help::delete_of_patient(conn, id)?;
            crate::invitation::forget_accepted_email(conn, id)?;
            super::erasure_traces::clear(conn, id, patient.clinic_id.as_str(), mode, now)?;
            crate::account::blank_erased(conn, id, stamp)?;
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
