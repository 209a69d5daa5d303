//! Clinic rows and roster queries.

use chrono::NaiveDateTime;
use companion_schema::schema::{accounts, alerts, clinics};
use diesel::prelude::*;

use crate::db::DbConnection;

/// A clinic as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = clinics)]
pub struct ClinicRow {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// IANA zone.
    pub timezone: String,
    /// Created.
    pub created_at: NaiveDateTime,
    /// ISO 3166-1 alpha-2 country (decides the crisis resources patients are shown).
    pub country: Option<String>,
    /// The clinic's own number for patients in crisis.
    pub crisis_phone: Option<String>,
    /// The clinic's own crisis resources (JSON), replacing its country's.
    pub crisis_resources: Option<String>,
}

/// Inserts a clinic.
pub fn insert(conn: &mut DbConnection, clinic: &ClinicRow) -> QueryResult<()> {
    diesel::insert_into(clinics::table)
        .values(clinic)
        .execute(conn)
        .map(drop)
}

/// Finds a clinic.
pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<ClinicRow>> {
    clinics::table
        .find(id)
        .select(ClinicRow::as_select())
        .first(conn)
        .optional()
}

/// What a clinic admin changes: each field `Some` to change it.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = clinics)]
pub struct ClinicChanges {
    /// Name.
    pub name: Option<String>,
    /// Zone.
    pub timezone: Option<String>,
    /// Country (`Some(None)` clears it).
    pub country: Option<Option<String>>,
    /// Crisis number (`Some(None)` clears it).
    pub crisis_phone: Option<Option<String>>,
    /// Own crisis resources (`Some(None)` clears them).
    pub crisis_resources: Option<Option<String>>,
}

/// Applies `changes` to a clinic; false when there is no such clinic.
pub fn update(conn: &mut DbConnection, id: &str, changes: &ClinicChanges) -> QueryResult<bool> {
    let exists = find(conn, id)?.is_some();
    let nothing = changes.name.is_none()
        && changes.timezone.is_none()
        && changes.country.is_none()
        && changes.crisis_phone.is_none()
        && changes.crisis_resources.is_none();
    if exists && !nothing {
        diesel::update(clinics::table.find(id))
            .set(changes)
            .execute(conn)?;
    }
    Ok(exists)
}

/// A page of clinics in id order, optionally only one.
pub fn list(
    conn: &mut DbConnection,
    only: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<ClinicRow>> {
    let mut query = clinics::table
        .select(ClinicRow::as_select())
        .order(clinics::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(id) = only {
        query = query.filter(clinics::id.eq(id.to_owned()));
    }
    if let Some(after) = after {
        query = query.filter(clinics::id.gt(after.to_owned()));
    }
    query.load(conn)
}

/// One patient on a clinic roster.
#[derive(Debug, Clone, Queryable)]
pub struct RosterRow {
    /// Account id.
    pub id: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Email.
    pub email: String,
    /// IANA zone.
    pub timezone: String,
    /// Enrolled.
    pub created_at: NaiveDateTime,
    /// Disabled.
    pub disabled_at: Option<NaiveDateTime>,
    /// The clinic's record number for the patient (MRN).
    pub external_id: Option<String>,
}

/// A page of a clinic's patients in enrolment (id) order.
pub fn roster(
    conn: &mut DbConnection,
    clinic_id: &str,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<RosterRow>> {
    let mut query = accounts::table
        .filter(accounts::clinic_id.eq(clinic_id.to_owned()))
        .filter(accounts::role.eq("patient"))
        .filter(accounts::erased_at.is_null())
        .select((
            accounts::id,
            accounts::display_name,
            accounts::email,
            accounts::timezone,
            accounts::created_at,
            accounts::disabled_at,
            accounts::external_id,
        ))
        .order(accounts::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(accounts::id.gt(after.to_owned()));
    }
    query.load(conn)
}

/// (patient id, severity) of every unresolved alert of a clinic.
pub fn open_alert_severities(
    conn: &mut DbConnection,
    clinic_id: &str,
) -> QueryResult<Vec<(String, String)>> {
    alerts::table
        .filter(alerts::clinic_id.eq(clinic_id))
        .filter(alerts::status.ne("resolved"))
        .select((alerts::patient_id, alerts::severity))
        .load(conn)
}

/// (id, display name) of the given patients of a clinic; ids of other clinics are left out.
pub fn patient_names(
    conn: &mut DbConnection,
    clinic_id: &str,
    ids: &[String],
) -> QueryResult<Vec<(String, Option<String>)>> {
    accounts::table
        .filter(accounts::clinic_id.eq(clinic_id.to_owned()))
        .filter(accounts::role.eq("patient"))
        .filter(accounts::id.eq_any(ids))
        .select((accounts::id, accounts::display_name))
        .load(conn)
}

/// The enabled staff of a clinic, by name.
pub fn staff_of(conn: &mut DbConnection, clinic_id: &str) -> QueryResult<Vec<StaffRow>> {
    accounts::table
        .filter(accounts::clinic_id.eq(clinic_id.to_owned()))
        .filter(accounts::role.eq_any(["clinician", "clinic_admin"]))
        .filter(accounts::disabled_at.is_null())
        .select(STAFF_COLUMNS)
        .order((accounts::display_name.asc(), accounts::id.asc()))
        .load(conn)
}

/// The columns of a [`StaffRow`], in its order.
const STAFF_COLUMNS: (
    accounts::id,
    accounts::role,
    accounts::email,
    accounts::display_name,
    accounts::timezone,
    accounts::on_call,
    accounts::disabled_at,
    accounts::created_at,
) = (
    accounts::id,
    accounts::role,
    accounts::email,
    accounts::display_name,
    accounts::timezone,
    accounts::on_call,
    accounts::disabled_at,
    accounts::created_at,
);

/// A member of a clinic's staff.
#[derive(Debug, Clone, Queryable)]
pub struct StaffRow {
    /// Account id.
    pub id: String,
    /// `clinician` or `clinic_admin`.
    pub role: String,
    /// Email.
    pub email: String,
    /// Display name.
    pub display_name: Option<String>,
    /// IANA zone.
    pub timezone: String,
    /// On call.
    pub on_call: bool,
    /// Disabled.
    pub disabled_at: Option<NaiveDateTime>,
    /// Joined.
    pub created_at: NaiveDateTime,
}

/// A page of a clinic's staff (clinicians and clinic admins) in id (joining) order.
pub fn staff(
    conn: &mut DbConnection,
    clinic_id: &str,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<StaffRow>> {
    let mut query = accounts::table
        .filter(accounts::clinic_id.eq(clinic_id.to_owned()))
        .filter(accounts::role.eq_any(["clinician", "clinic_admin"]))
        .select(STAFF_COLUMNS)
        .order(accounts::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(accounts::id.gt(after.to_owned()));
    }
    query.load(conn)
}
