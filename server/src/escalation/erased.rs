//! What a patient's erasure does to their alerts (run inside the erasure's transaction, in
//! `lifecycle::erasure::erase`): an unresolved alert stays, reduced to severity, rule and times,
//! and the care team is told at once; a resolved alert's queued jobs go, and the alert is then
//! deleted or de-identified as the clinic's policy says.

use chrono::{DateTime, Utc};
use diesel::QueryResult;

use crate::db::DbConnection;
use crate::push::content::PushMessage;

use super::policy::Audience;
use super::store;

/// The reason an erased patient's resolved alerts keep instead of the staff's notes.
pub const ERASED: &str = "patient erased";

/// What an unresolved alert of an erased patient says instead of its details.
pub const ERASED_EXPLANATION: &str =
    "The patient erased their account while this alert was unresolved; its details were removed.";

/// Keeps the unresolved alerts of the erased patient `patient_id` of `clinic_id`, with the
/// minimum needed to act on them: severity, rule and times. Free text and the numbers behind it
/// go, and so do the links to check-ins; an event says why; and every active clinician and clinic
/// admin of the clinic is pushed at once (no health information: the alert's id only). Their
/// escalation goes on.
pub fn keep_unresolved(
    conn: &mut DbConnection,
    clinic_id: &str,
    patient_id: &str,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let stamp = now.naive_utc();
    let unresolved = store::unresolved_of_patient(conn, patient_id)?;
    if unresolved.is_empty() {
        return Ok(());
    }
    let ids: Vec<&String> = unresolved.iter().map(|(id, _)| id).collect();
    store::strip_erased(conn, &ids, ERASED_EXPLANATION, stamp)?;
    let mut staff = store::audience(conn, clinic_id, Audience::Clinicians)?;
    staff.extend(store::audience(conn, clinic_id, Audience::ClinicAdmins)?);
    let staff: Vec<String> = staff.into_iter().map(|m| m.id).collect();
    let devices = crate::push::active_devices_of(conn, &staff)?;
    for (alert, severity) in &unresolved {
        store::event(
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

/// The resolved alerts of the erased patient `patient_id`, their queued jobs deleted (nothing
/// is left to notify or escalate). Returns their ids, for [`delete_resolved`] or
/// [`deidentify_resolved`].
pub fn take_resolved(conn: &mut DbConnection, patient_id: &str) -> QueryResult<Vec<String>> {
    let resolved = store::resolved_of_patient(conn, patient_id)?;
    for alert in &resolved {
        crate::jobs::store::delete_queued_with_key_containing(conn, alert)?;
    }
    Ok(resolved)
}

/// Deletes the resolved alerts `resolved` of an erased patient with their events.
pub fn delete_resolved(conn: &mut DbConnection, resolved: &[String]) -> QueryResult<()> {
    store::delete_with_events(conn, resolved).map(drop)
}

/// Keeps the resolved alerts `resolved` of an erased patient without the person: free text
/// written about the patient may name them, so it goes (events' details, the resolution note,
/// which says [`ERASED`] instead, and a request for help's inputs, the patient's own words); the
/// rest (rule, severity, times, the opaque id) stays until retention ends.
pub fn deidentify_resolved(conn: &mut DbConnection, resolved: &[String]) -> QueryResult<()> {
    store::deidentify_resolved(conn, resolved, ERASED)
}
