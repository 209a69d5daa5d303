//! The `help_requests` table: one row per request for help, naming the alert it went to.

use chrono::NaiveDateTime;
use companion_schema::schema::help_requests;
use diesel::prelude::*;

use crate::db::DbConnection;

/// A stored request for help.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = help_requests)]
pub struct HelpRequestRow {
    /// The app's id, or one the server made when the app sent none.
    pub id: String,
    /// The patient who asked.
    pub patient_id: String,
    /// Their clinic.
    pub clinic_id: String,
    /// The patient's note for the care team (at most 500 characters): never pushed or logged.
    pub note: Option<String>,
    /// When it arrived.
    pub received_at: NaiveDateTime,
    /// The alert it went to.
    pub alert_id: Option<String>,
}

/// Inserts `row` unless its id is taken; true when inserted.
pub fn insert_if_new(conn: &mut DbConnection, row: &HelpRequestRow) -> QueryResult<bool> {
    let inserted = crate::per_backend!(conn, |c| diesel::insert_into(help_requests::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(c)?);
    Ok(inserted == 1)
}

/// The request with this id, if any.
pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<HelpRequestRow>> {
    help_requests::table
        .find(id)
        .select(HelpRequestRow::as_select())
        .first(conn)
        .optional()
}

/// A patient's requests, oldest first (their export).
pub fn of_patient(conn: &mut DbConnection, patient_id: &str) -> QueryResult<Vec<HelpRequestRow>> {
    help_requests::table
        .filter(help_requests::patient_id.eq(patient_id))
        .order((help_requests::received_at, help_requests::id))
        .select(HelpRequestRow::as_select())
        .load(conn)
}

/// Names the alert a request went to.
pub fn set_alert(conn: &mut DbConnection, id: &str, alert_id: &str) -> QueryResult<()> {
    diesel::update(help_requests::table.find(id))
        .set(help_requests::alert_id.eq(alert_id))
        .execute(conn)
        .map(drop)
}

/// Removes a patient's requests (erasure).
pub fn delete_of_patient(conn: &mut DbConnection, patient_id: &str) -> QueryResult<usize> {
    diesel::delete(help_requests::table.filter(help_requests::patient_id.eq(patient_id)))
        .execute(conn)
}
