//! Who may see a patient's data: staff of the patient's own clinic, and (where a route allows it)
//! the patient themself. Everyone else is told the patient does not exist. Also the patient's
//! profile (display name, external id, zone, status) as the care team manages it.

pub mod handlers;
mod store;
pub mod use_cases;

use companion_schema::ids::{AccountId, ClinicId};

use crate::account::model::Role;
use crate::auth::extract::Caller;
use crate::db::DbConnection;
use crate::error::{Outcome, Refusal};

/// A patient the caller may act on.
#[derive(Debug, Clone)]
pub struct PatientRef {
    /// The patient's account id.
    pub id: AccountId,
    /// The patient's clinic.
    pub clinic_id: ClinicId,
    /// The patient's IANA time zone.
    pub timezone: String,
}

/// Whether the patient may use the route for their own record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfAccess {
    /// Staff only; a patient gets 403 whatever the id.
    StaffOnly,
    /// Staff, or the patient for their own id.
    StaffOrSelf,
}

/// Resolves `raw_id` to a patient visible to `caller`, or not found (forbidden for a patient on
/// a staff-only route, and for organisation admins, who read no patient data). Runs in the
/// request's unit of work.
pub fn resolve(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_id: &str,
    access: SelfAccess,
) -> Outcome<PatientRef> {
    match (caller.role, access) {
        (Role::OrgAdmin, _) => {
            return Err(Refusal::forbidden("Organisation admins do not read patient data.").into());
        }
        (Role::Patient, SelfAccess::StaffOnly) => {
            return Err(Refusal::forbidden("Only clinic staff may do this.").into());
        }
        _ => {}
    }
    let not_found = || Err(Refusal::not_found("patient").into());
    let Some(id) = AccountId::parse(raw_id) else {
        return not_found();
    };
    if caller.role == Role::Patient && id != caller.account_id {
        return not_found();
    }
    let row = store::patient_clinic_and_zone(conn, id.as_str())?;
    let Some((Some(clinic_id), timezone)) = row else {
        return not_found();
    };
    let clinic_id = ClinicId::from_db(clinic_id);
    if caller.role.is_staff() && caller.clinic_id.as_ref() != Some(&clinic_id) {
        return not_found();
    }
    Ok(PatientRef {
        id,
        clinic_id,
        timezone,
    })
}

/// Runs `then` on the patient `raw_id` resolves to for `caller` (see [`resolve`]).
pub fn with_patient<T>(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_id: &str,
    access: SelfAccess,
    then: impl FnOnce(&mut DbConnection, PatientRef) -> Outcome<T>,
) -> Outcome<T> {
    let patient = resolve(conn, caller, raw_id, access)?;
    then(conn, patient)
}
