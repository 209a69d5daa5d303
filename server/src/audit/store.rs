//! Audit rows: written in the caller's transaction, purged by housekeeping.

use chrono::NaiveDateTime;
use companion_schema::ids::AuditEventId;
use companion_schema::schema::audit_events;
use diesel::prelude::*;

use crate::db::DbConnection;

/// An audit row to write (its id is generated on insert).
#[derive(Debug, Clone, Copy)]
pub struct NewAuditEvent<'a> {
    /// When.
    pub at: NaiveDateTime,
    /// The acting account, if a person acted.
    pub actor_id: Option<&'a str>,
    /// The acting system client, if one acted.
    pub actor_client_id: Option<&'a str>,
    /// What, as a stable verb.
    pub action: &'a str,
    /// The clinic the row belongs to.
    pub clinic_id: Option<&'a str>,
    /// The patient concerned.
    pub patient_id: Option<&'a str>,
    /// The record concerned.
    pub subject_id: Option<&'a str>,
    /// The request that did it.
    pub request_id: Option<&'a str>,
}

/// Inserts one audit row under a fresh id.
pub fn insert(conn: &mut DbConnection, event: &NewAuditEvent<'_>) -> QueryResult<()> {
    diesel::insert_into(audit_events::table)
        .values((
            audit_events::id.eq(AuditEventId::generate().into_string()),
            audit_events::at.eq(event.at),
            audit_events::actor_id.eq(event.actor_id),
            audit_events::actor_client_id.eq(event.actor_client_id),
            audit_events::action.eq(event.action),
            audit_events::clinic_id.eq(event.clinic_id),
            audit_events::patient_id.eq(event.patient_id),
            audit_events::subject_id.eq(event.subject_id),
            audit_events::request_id.eq(event.request_id),
        ))
        .execute(conn)
        .map(drop)
}

/// Deletes audit rows that belong to no clinic (organisation-level actions) written before
/// `before`, up to `batch` of them (housekeeping, under `COMPANION_ORG_AUDIT_RETENTION_DAYS`;
/// a clinic's own rows follow the clinic's retention policy). Returns how many went.
pub fn purge_organisation_rows(
    conn: &mut DbConnection,
    before: NaiveDateTime,
    batch: i64,
) -> QueryResult<usize> {
    let ids: Vec<String> = audit_events::table
        .filter(audit_events::clinic_id.is_null())
        .filter(audit_events::at.lt(before))
        .select(audit_events::id)
        .limit(batch)
        .load(conn)?;
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::delete(audit_events::table.filter(audit_events::id.eq_any(&ids))).execute(conn)
}

/// Deletes the audit rows of `clinic_id` written before `before` (the clinic's retention
/// policy). Returns how many went.
pub fn purge_clinic_rows(
    conn: &mut DbConnection,
    clinic_id: &str,
    before: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::delete(
        audit_events::table
            .filter(audit_events::clinic_id.eq(clinic_id))
            .filter(audit_events::at.lt(before)),
    )
    .execute(conn)
}
