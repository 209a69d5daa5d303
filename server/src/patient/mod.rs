//! Who may see a patient's data: staff of the patient's own clinic, and (where a route allows it)
//! the patient themself. Everyone else is told the patient does not exist.

use companion_schema::ids::{AccountId, ClinicId};
use companion_schema::schema::accounts;
use diesel::prelude::*;

use crate::account::model::Role;
use crate::app::AppState;
use crate::auth::extract::Caller;
use crate::error::{ApiError, ApiResult};

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

/// Resolves `raw_id` to a patient visible to `caller`, or 404 (403 for a patient on a staff-only
/// route, and for organisation admins, who read no patient data).
pub async fn resolve(
    state: &AppState,
    caller: &Caller,
    raw_id: &str,
    access: SelfAccess,
) -> ApiResult<PatientRef> {
    match (caller.role, access) {
        (Role::OrgAdmin, _) => {
            return Err(ApiError::forbidden(
                "Organisation admins do not read patient data.",
            ));
        }
        (Role::Patient, SelfAccess::StaffOnly) => {
            return Err(ApiError::forbidden("Only clinic staff may do this."));
        }
        _ => {}
    }
    let id = AccountId::parse(raw_id).ok_or_else(|| ApiError::not_found("patient"))?;
    if caller.role == Role::Patient && id != caller.account_id {
        return Err(ApiError::not_found("patient"));
    }
    let lookup = id.to_string();
    let row: Option<(Option<String>, String)> = state
        .db
        .run(move |conn| {
            accounts::table
                .filter(accounts::id.eq(&lookup))
                .filter(accounts::role.eq(Role::Patient.as_str()))
                .select((accounts::clinic_id, accounts::timezone))
                .first(conn)
                .optional()
        })
        .await?;
    let Some((Some(clinic_id), timezone)) = row else {
        return Err(ApiError::not_found("patient"));
    };
    let clinic_id = ClinicId::from_db(clinic_id);
    if caller.role.is_staff() && caller.clinic_id.as_ref() != Some(&clinic_id) {
        return Err(ApiError::not_found("patient"));
    }
    Ok(PatientRef {
        id,
        clinic_id,
        timezone,
    })
}
