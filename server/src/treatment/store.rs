//! Treatment-session rows.

use chrono::NaiveDateTime;
use companion_schema::schema::treatment_sessions;
use diesel::prelude::*;

use crate::db::DbConnection;

/// A session as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = treatment_sessions)]
pub struct SessionRow {
    /// Id.
    pub id: String,
    /// The patient.
    pub patient_id: String,
    /// The clinic.
    pub clinic_id: String,
    /// Modality name.
    pub modality: String,
    /// Status name.
    pub status: String,
    /// When it is (or was) planned.
    pub scheduled_at: NaiveDateTime,
    /// Observations, JSON.
    pub observations: Option<String>,
    /// Who created it.
    pub created_by: String,
    /// Created.
    pub created_at: NaiveDateTime,
    /// Last changed.
    pub updated_at: NaiveDateTime,
}

/// Inserts a session.
pub fn insert(conn: &mut DbConnection, row: &SessionRow) -> QueryResult<()> {
    diesel::insert_into(treatment_sessions::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// Finds a session.
pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<SessionRow>> {
    treatment_sessions::table
        .find(id)
        .select(SessionRow::as_select())
        .first(conn)
        .optional()
}

/// Saves a changed session.
pub fn update(conn: &mut DbConnection, row: &SessionRow) -> QueryResult<()> {
    diesel::update(treatment_sessions::table.find(&row.id))
        .set(row)
        .execute(conn)
        .map(drop)
}

/// Which sessions to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// All.
    All,
    /// Scheduled at or after `now`.
    Upcoming(NaiveDateTime),
    /// Scheduled before `now`.
    Past(NaiveDateTime),
}

/// A page of a patient's sessions in time order, after `(scheduled_at, id)`.
pub fn list(
    conn: &mut DbConnection,
    patient_id: &str,
    when: When,
    after: Option<(NaiveDateTime, String)>,
    limit: i64,
) -> QueryResult<Vec<SessionRow>> {
    let mut query = treatment_sessions::table
        .filter(treatment_sessions::patient_id.eq(patient_id.to_owned()))
        .select(SessionRow::as_select())
        .order((
            treatment_sessions::scheduled_at.asc(),
            treatment_sessions::id.asc(),
        ))
        .limit(limit)
        .into_boxed();
    match when {
        When::All => {}
        When::Upcoming(now) => query = query.filter(treatment_sessions::scheduled_at.ge(now)),
        When::Past(now) => query = query.filter(treatment_sessions::scheduled_at.lt(now)),
    }
    if let Some((at, id)) = after {
        query = query.filter(
            treatment_sessions::scheduled_at
                .gt(at)
                .or(treatment_sessions::scheduled_at
                    .eq(at)
                    .and(treatment_sessions::id.gt(id))),
        );
    }
    query.load(conn)
}

/// When the latest completed session of `patient_id` scheduled at or before `at` was scheduled,
/// or `None` if there is none.
pub fn last_completed_at(
    conn: &mut DbConnection,
    patient_id: &str,
    at: NaiveDateTime,
) -> QueryResult<Option<NaiveDateTime>> {
    treatment_sessions::table
        .filter(treatment_sessions::patient_id.eq(patient_id))
        .filter(treatment_sessions::status.eq("completed"))
        .filter(treatment_sessions::scheduled_at.le(at))
        .select(diesel::dsl::max(treatment_sessions::scheduled_at))
        .first(conn)
}

/// Deletes every session of `patient_id` (the patient is being erased).
pub fn delete_of_patient(conn: &mut DbConnection, patient_id: &str) -> QueryResult<usize> {
    diesel::delete(treatment_sessions::table.filter(treatment_sessions::patient_id.eq(patient_id)))
        .execute(conn)
}

/// A session as its patient's export shows it.
#[derive(Debug, Clone, Queryable)]
pub struct ExportedSession {
    /// Id.
    pub id: String,
    /// Modality name.
    pub modality: String,
    /// Status name.
    pub status: String,
    /// When it is (or was) planned.
    pub scheduled_at: NaiveDateTime,
    /// Observations, JSON.
    pub observations: Option<String>,
    /// Created.
    pub created_at: NaiveDateTime,
}

/// Every session of `patient_id`, by scheduled time, for their export.
pub fn exported_of_patient(
    conn: &mut DbConnection,
    patient_id: &str,
) -> QueryResult<Vec<ExportedSession>> {
    treatment_sessions::table
        .filter(treatment_sessions::patient_id.eq(patient_id))
        .order(treatment_sessions::scheduled_at)
        .select((
            treatment_sessions::id,
            treatment_sessions::modality,
            treatment_sessions::status,
            treatment_sessions::scheduled_at,
            treatment_sessions::observations,
            treatment_sessions::created_at,
        ))
        .load(conn)
}
