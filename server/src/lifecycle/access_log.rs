//! The patient's access log: who on the staff (or which system client) of their clinic read or
//! changed their data, and when, drawn from the audit trail (the patient's own actions are left
//! out, and so is anyone of another clinic).

use chrono::NaiveDateTime;

use crate::auth::extract::Caller;
use crate::db::DbConnection;
use crate::error::Outcome;

use super::store::{self, AccessRow};

/// A page of staff actions on the caller's data, newest first (`limit` + 1 rows when there is
/// a next page).
pub fn mine(
    conn: &mut DbConnection,
    caller: &Caller,
    before: Option<(NaiveDateTime, String)>,
    limit: u32,
) -> Outcome<Vec<AccessRow>> {
    let clinic = caller.own_clinic()?.as_str().to_owned();
    Ok(store::staff_access(
        conn,
        caller.account_id.as_str(),
        &clinic,
        before,
        i64::from(limit) + 1,
    )?)
}
