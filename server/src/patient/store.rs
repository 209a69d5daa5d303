//! A patient's profile as stored on their account row.

use chrono::NaiveDateTime;
use companion_schema::schema::accounts;
use diesel::prelude::*;

use crate::account::model::Role;
use crate::db::DbConnection;

/// A patient's profile.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = accounts)]
pub struct ProfileRow {
    /// Account id.
    pub id: String,
    /// The clinic.
    pub clinic_id: Option<String>,
    /// Email.
    pub email: String,
    /// Display name.
    pub display_name: Option<String>,
    /// The clinic's record number for the patient (MRN).
    pub external_id: Option<String>,
    /// IANA zone.
    pub timezone: String,
    /// Set while the account is disabled.
    pub disabled_at: Option<NaiveDateTime>,
    /// Enrolled.
    pub created_at: NaiveDateTime,
    /// Last changed.
    pub updated_at: NaiveDateTime,
}

/// Reads a profile.
pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<ProfileRow>> {
    accounts::table
        .find(id)
        .select(ProfileRow::as_select())
        .first(conn)
        .optional()
}

/// Whether another account of the clinic holds `external_id`.
pub fn external_id_taken(
    conn: &mut DbConnection,
    clinic_id: &str,
    external_id: &str,
    except: &str,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        accounts::table
            .filter(accounts::clinic_id.eq(clinic_id))
            .filter(accounts::external_id.eq(external_id))
            .filter(accounts::id.ne(except)),
    ))
    .get_result(conn)
}

/// What changes on a profile: each field `Some` to change it.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = accounts)]
pub struct ProfileChanges {
    /// Display name (`Some(None)` clears it).
    pub display_name: Option<Option<String>>,
    /// External id (`Some(None)` clears it).
    pub external_id: Option<Option<String>>,
    /// IANA zone.
    pub timezone: Option<String>,
}

impl ProfileChanges {
    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        self.display_name.is_none() && self.external_id.is_none() && self.timezone.is_none()
    }
}

/// Applies `changes` to a profile, stamping `updated_at`.
pub fn update(
    conn: &mut DbConnection,
    id: &str,
    changes: &ProfileChanges,
    now: NaiveDateTime,
) -> QueryResult<()> {
    if changes.is_empty() {
        return Ok(());
    }
    diesel::update(accounts::table.find(id))
        .set((changes, accounts::updated_at.eq(now)))
        .execute(conn)
        .map(drop)
}

/// The clinic (if any) and the IANA zone of the patient account `id`, or `None` when `id` is not
/// a patient's account or the patient has been erased.
pub fn patient_clinic_and_zone(
    conn: &mut DbConnection,
    id: &str,
) -> QueryResult<Option<(Option<String>, String)>> {
    accounts::table
        .filter(accounts::id.eq(id))
        .filter(accounts::role.eq(Role::Patient.as_str()))
        // An erased patient's records (kept de-identified under the clinic's retention policy)
        // are no longer anyone's to read through the patient routes.
        .filter(accounts::erased_at.is_null())
        .select((accounts::clinic_id, accounts::timezone))
        .first(conn)
        .optional()
}
