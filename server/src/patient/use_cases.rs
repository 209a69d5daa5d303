//! Patient profile use cases: staff of the patient's clinic read and change a patient's display
//! name, external id (MRN), time zone and status. The JSON API and the console call the same
//! functions.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};

use crate::account::model::Role;
use crate::audit::{self, AuditEntry};
use crate::auth::extract::Caller;
use crate::db::{DbConnection, is_unique_violation};
use crate::error::{Outcome, Refusal};

use super::store::{self, ProfileChanges, ProfileRow};
use super::{SelfAccess, with_patient};

/// Whether a patient's account is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatientStatus {
    /// Signs in, receives prompts, raises alerts.
    Active,
    /// Signed out everywhere, no prompts; their history stays.
    Disabled,
}

impl PatientStatus {
    /// The status of a stored profile.
    pub fn of(row: &ProfileRow) -> Self {
        if row.disabled_at.is_some() {
            Self::Disabled
        } else {
            Self::Active
        }
    }
}

/// A change to a patient's profile, parsed; fields `None` stay as they are.
#[derive(Debug, Clone, Default)]
pub struct ProfileChange {
    /// Display name, external id and zone.
    pub fields: ProfileChanges,
    /// Enable or disable the account (clinic admins only).
    pub status: Option<PatientStatus>,
}

/// An external id (MRN): 1 to 64 letters, digits and `. _ / -`, trimmed.
pub fn parse_external_id(text: &str) -> Result<String, &'static str> {
    let text = text.trim();
    let valid = !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c));
    if valid {
        Ok(text.to_owned())
    } else {
        Err("must be 1 to 64 letters, digits, '.', '_', '/' or '-'")
    }
}

/// Reads a patient's profile: staff of the patient's clinic. Audited.
pub fn profile(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_id: &str,
    now: DateTime<Utc>,
) -> Outcome<ProfileRow> {
    with_patient(
        conn,
        caller,
        raw_id,
        SelfAccess::StaffOnly,
        |conn, patient| {
            let Some(row) = store::find(conn, patient.id.as_str())? else {
                return Err(Refusal::not_found("patient").into());
            };
            audit::record(
                conn,
                &AuditEntry::by(caller, "patient_profile.read", now.naive_utc())
                    .patient(patient.id.as_str()),
            )?;
            Ok(row)
        },
    )
}

/// Changes a patient's profile: staff of the patient's clinic; the status only by its clinic
/// admins. `problems` are the change's own validation, answered after the role checks. An
/// external id another patient of the clinic holds is a conflict (`external_id_taken`). A new
/// zone replans the prompts not sent yet; disabling ends the patient's sessions and withdraws
/// their open prompts. Audited.
pub fn update_profile(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_id: &str,
    change: ProfileChange,
    problems: BTreeMap<String, String>,
    now: DateTime<Utc>,
    horizon: TimeDelta,
) -> Outcome<ProfileRow> {
    with_patient(
        conn,
        caller,
        raw_id,
        SelfAccess::StaffOnly,
        |conn, patient| {
            if change.status.is_some() && caller.role != Role::ClinicAdmin {
                return Err(Refusal::forbidden(
                    "Only a clinic admin may change a patient's status.",
                )
                .into());
            }
            if !problems.is_empty() {
                return Err(Refusal::validation(problems).into());
            }
            let id = patient.id.as_str();
            let Some(before) = store::find(conn, id)? else {
                return Err(Refusal::not_found("patient").into());
            };
            let taken = || {
                Refusal::conflict(
                    "external_id_taken",
                    "Another patient of this clinic has this external id.",
                )
            };
            if let Some(Some(external)) = &change.fields.external_id
                && store::external_id_taken(conn, patient.clinic_id.as_str(), external, id)?
            {
                return Err(taken().into());
            }
            match store::update(conn, id, &change.fields, now.naive_utc()) {
                Err(e) if is_unique_violation(&e) => return Err(taken().into()),
                other => other?,
            }
            if change
                .fields
                .timezone
                .as_ref()
                .is_some_and(|zone| *zone != before.timezone)
            {
                crate::prompt::use_cases::replan_patient(conn, id, now, horizon)?;
            }
            if let Some(status) = change.status
                && status != PatientStatus::of(&before)
            {
                let disable = status == PatientStatus::Disabled;
                crate::account::use_cases::set_disabled(conn, caller, id, disable, now, horizon)?;
            }
            audit::record(
                conn,
                &AuditEntry::by(caller, "patient_profile.update", now.naive_utc()).patient(id),
            )?;
            Ok(store::find(conn, id)?.ok_or_else(|| Refusal::not_found("patient"))?)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_ids_are_short_record_numbers() {
        assert_eq!(
            parse_external_id(" MRN-0042/7 "),
            Ok("MRN-0042/7".to_owned())
        );
        for bad in ["", "   ", "has space", "é123", &"9".repeat(65), "a;b"] {
            assert!(parse_external_id(bad).is_err(), "{bad}");
        }
    }
}
