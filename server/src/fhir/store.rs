//! The clinic-wide queries that FHIR search needs and the domain stores do not have (the domain
//! stores list one patient's rows; a FHIR search may span a clinic). Single rows are read through
//! the domain stores.

use chrono::NaiveDateTime;
use companion_schema::schema::{accounts, alerts, check_ins};
use diesel::prelude::*;

use crate::check_in::CheckInRow;
use crate::db::DbConnection;
use crate::escalation::AlertRow;
use crate::fhir::search::Range;

/// A page of check-ins: filters and position.
#[derive(Debug, Clone, Default)]
pub struct CheckInQuery {
    /// Only this patient.
    pub patient_id: Option<String>,
    /// Only these instruments (`None`: all).
    pub instruments: Option<Vec<String>>,
    /// `completed_at` range.
    pub completed: Range,
    /// `received_at` range (the resources' `meta.lastUpdated`).
    pub received: Range,
    /// Start at this (completed_at, id), inclusive, newest first.
    pub from: Option<(NaiveDateTime, String)>,
}

/// Up to `limit` check-ins of `clinic_id`, newest first.
pub fn check_ins_of_clinic(
    conn: &mut DbConnection,
    clinic_id: &str,
    query: &CheckInQuery,
    limit: i64,
) -> QueryResult<Vec<CheckInRow>> {
    let mut q = check_ins::table
        .filter(check_ins::clinic_id.eq(clinic_id.to_owned()))
        .select(CheckInRow::as_select())
        .order((check_ins::completed_at.desc(), check_ins::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some(patient) = &query.patient_id {
        q = q.filter(check_ins::patient_id.eq(patient.clone()));
    }
    if let Some(instruments) = &query.instruments {
        q = q.filter(check_ins::instrument.eq_any(instruments.clone()));
    }
    if let Some(from) = query.completed.from {
        q = q.filter(check_ins::completed_at.ge(from));
    }
    if let Some(to) = query.completed.to {
        q = q.filter(check_ins::completed_at.le(to));
    }
    if let Some(from) = query.received.from {
        q = q.filter(check_ins::received_at.ge(from));
    }
    if let Some(to) = query.received.to {
        q = q.filter(check_ins::received_at.le(to));
    }
    if let Some((at, id)) = &query.from {
        // The leading `<=` lets the (clinic, time, id) index seek to the position.
        q = q.filter(check_ins::completed_at.le(*at)).filter(
            check_ins::completed_at
                .lt(*at)
                .or(check_ins::id.le(id.clone())),
        );
    }
    q.load(conn)
}

/// Up to `limit` alerts of `clinic_id`, newest first, starting at (opened_at, id) inclusive.
pub fn alerts_of_clinic(
    conn: &mut DbConnection,
    clinic_id: &str,
    patient_id: Option<&str>,
    statuses: Option<&[&str]>,
    from: Option<&(NaiveDateTime, String)>,
    limit: i64,
) -> QueryResult<Vec<AlertRow>> {
    let mut q = alerts::table
        .filter(alerts::clinic_id.eq(clinic_id.to_owned()))
        .select(AlertRow::as_select())
        .order((alerts::opened_at.desc(), alerts::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some(patient) = patient_id {
        q = q.filter(alerts::patient_id.eq(patient.to_owned()));
    }
    if let Some(statuses) = statuses {
        let statuses: Vec<String> = statuses.iter().map(|s| (*s).to_owned()).collect();
        q = q.filter(alerts::status.eq_any(statuses));
    }
    if let Some((at, id)) = from {
        // The leading `<=` lets the (clinic, opened, id) index seek to the position.
        q = q
            .filter(alerts::opened_at.le(*at))
            .filter(alerts::opened_at.lt(*at).or(alerts::id.le(id.clone())));
    }
    q.load(conn)
}

/// A patient account as FHIR shows it (never the email).
#[derive(Debug, Clone, Queryable)]
pub struct PatientRow {
    /// Id.
    pub id: String,
    /// Clinic.
    pub clinic_id: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Set while disabled.
    pub disabled_at: Option<NaiveDateTime>,
    /// Last change.
    pub updated_at: NaiveDateTime,
}

type PatientColumns = (
    accounts::id,
    accounts::clinic_id,
    accounts::display_name,
    accounts::disabled_at,
    accounts::updated_at,
);

const PATIENT_COLUMNS: PatientColumns = (
    accounts::id,
    accounts::clinic_id,
    accounts::display_name,
    accounts::disabled_at,
    accounts::updated_at,
);

/// One patient of `clinic_id`.
pub fn patient_of_clinic(
    conn: &mut DbConnection,
    clinic_id: &str,
    id: &str,
) -> QueryResult<Option<PatientRow>> {
    accounts::table
        .filter(accounts::id.eq(id))
        .filter(accounts::role.eq("patient"))
        .filter(accounts::clinic_id.eq(clinic_id))
        .filter(accounts::erased_at.is_null())
        .select(PATIENT_COLUMNS)
        .first(conn)
        .optional()
}

/// Up to `limit` patients of `clinic_id` by id, starting at `from` inclusive.
pub fn patients_of_clinic(
    conn: &mut DbConnection,
    clinic_id: &str,
    updated: Range,
    from: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<PatientRow>> {
    let mut q = accounts::table
        .filter(accounts::role.eq("patient"))
        .filter(accounts::clinic_id.eq(clinic_id.to_owned()))
        // An erased patient is nobody's to read any more (its empty mark stays for the audit).
        .filter(accounts::erased_at.is_null())
        .select(PATIENT_COLUMNS)
        .order(accounts::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(from) = updated.from {
        q = q.filter(accounts::updated_at.ge(from));
    }
    if let Some(to) = updated.to {
        q = q.filter(accounts::updated_at.le(to));
    }
    if let Some(from) = from {
        q = q.filter(accounts::id.ge(from.to_owned()));
    }
    q.load(conn)
}
