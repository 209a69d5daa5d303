//! Treatment-session use cases: scheduling, moving, completing, annotating and cancelling a
//! session (each replans the patient's prompts in the same transaction), and listing them.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use companion_schema::ids::TreatmentSessionId;

use crate::audit::{self, AuditEntry};
use crate::auth::extract::Caller;
use crate::db::DbConnection;
use crate::error::{Outcome, Refusal};
use crate::patient::{self, SelfAccess};
use crate::prompt::use_cases as prompts;
use crate::treatment::model::{self, Change, Modality, Observations, SessionStatus, may_change};
use crate::treatment::store::{self, SessionRow, When};

/// A session as asked for, with its own validation problems.
#[derive(Debug)]
pub struct NewSession {
    /// The kind of treatment.
    pub modality: Modality,
    /// When.
    pub scheduled_at: DateTime<Utc>,
    /// Observations recorded with it.
    pub observations: Option<Observations>,
    /// What is wrong with the above.
    pub problems: BTreeMap<String, String>,
}

fn json_of(observations: Option<&Observations>) -> Result<Option<String>, Refusal> {
    observations
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| Refusal::broken(&e))
}

fn audited(
    conn: &mut DbConnection,
    caller: &Caller,
    action: &'static str,
    row: &SessionRow,
    now: NaiveDateTime,
) -> diesel::QueryResult<()> {
    audit::record(
        conn,
        &AuditEntry::by(caller, action, now)
            .clinic(&row.clinic_id)
            .patient(&row.patient_id)
            .subject(&row.id),
    )
}

/// Schedules a session for a patient of the caller's clinic and replans their prompts. Audited.
pub fn schedule(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_patient: &str,
    new: NewSession,
    now: DateTime<Utc>,
    horizon: TimeDelta,
) -> Outcome<SessionRow> {
    patient::with_patient(
        conn,
        caller,
        raw_patient,
        SelfAccess::StaffOnly,
        |conn, patient| {
            if !new.problems.is_empty() {
                return Err(Refusal::validation(new.problems).into());
            }
            let observations = json_of(new.observations.as_ref())?;
            let row = SessionRow {
                id: TreatmentSessionId::generate().into_string(),
                patient_id: patient.id.to_string(),
                clinic_id: patient.clinic_id.to_string(),
                modality: new.modality.as_str().to_owned(),
                status: SessionStatus::Scheduled.as_str().to_owned(),
                scheduled_at: new.scheduled_at.naive_utc(),
                observations,
                created_by: caller.account_id.to_string(),
                created_at: now.naive_utc(),
                updated_at: now.naive_utc(),
            };
            store::insert(conn, &row)?;
            prompts::replan_patient(conn, &row.patient_id, now, horizon)?;
            audited(conn, caller, "session.create", &row, now.naive_utc())?;
            Ok(row)
        },
    )
}

/// A session of the caller's clinic, or not found.
fn staff_session(conn: &mut DbConnection, caller: &Caller, raw_id: &str) -> Outcome<SessionRow> {
    let Some(id) = TreatmentSessionId::parse(raw_id) else {
        return Err(Refusal::not_found("session").into());
    };
    let clinic = caller.clinic_id.as_ref().map(|c| c.as_str());
    Ok(store::find(conn, id.as_str())?
        .filter(|row| Some(row.clinic_id.as_str()) == clinic)
        .ok_or_else(|| Refusal::not_found("session"))?)
}

fn refused(refusal: model::Refusal) -> Refusal {
    match refusal {
        model::Refusal::Cancelled => {
            Refusal::conflict("session_cancelled", "This session was cancelled.")
        }
        model::Refusal::Completed => Refusal::conflict(
            "session_completed",
            "This session has taken place; only its observations can change.",
        ),
    }
}

fn status_of(row: &SessionRow) -> Result<SessionStatus, Refusal> {
    SessionStatus::parse(&row.status).ok_or_else(|| Refusal::broken(&"stored status is not known"))
}

/// A change to a session, with its own validation problems.
#[derive(Debug)]
pub struct SessionChange {
    /// Move it.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Record that it took place.
    pub complete: bool,
    /// Replace the observations.
    pub observations: Option<Observations>,
    /// What is wrong with the above.
    pub problems: BTreeMap<String, String>,
}

fn save(
    conn: &mut DbConnection,
    caller: &Caller,
    row: &SessionRow,
    action: &'static str,
    now: DateTime<Utc>,
    horizon: TimeDelta,
) -> diesel::QueryResult<()> {
    store::update(conn, row)?;
    // A moved or cancelled session replaces its prompts in the same transaction.
    prompts::replan_patient(conn, &row.patient_id, now, horizon)?;
    audited(conn, caller, action, row, now.naive_utc())
}

/// Moves, completes or annotates a session of the caller's clinic, as its status allows.
pub fn change(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_id: &str,
    change: SessionChange,
    now: DateTime<Utc>,
    horizon: TimeDelta,
) -> Outcome<SessionRow> {
    let mut row = staff_session(conn, caller, raw_id)?;
    if !change.problems.is_empty() {
        return Err(Refusal::validation(change.problems).into());
    }
    let allowed = status_of(&row).and_then(|status| {
        [
            change.scheduled_at.map(|_| Change::Move),
            change.complete.then_some(Change::Complete),
            change.observations.as_ref().map(|_| Change::Observe),
        ]
        .into_iter()
        .flatten()
        .try_for_each(|c| may_change(status, c).map_err(refused))
    });
    allowed?;
    if let Some(at) = change.scheduled_at {
        row.scheduled_at = at.naive_utc();
    }
    if change.complete {
        row.status = SessionStatus::Completed.as_str().to_owned();
    }
    if change.observations.is_some() {
        row.observations = json_of(change.observations.as_ref())?;
    }
    row.updated_at = now.naive_utc();
    save(conn, caller, &row, "session.update", now, horizon)?;
    Ok(row)
}

/// Cancels a session of the caller's clinic; cancelling again changes nothing, a completed
/// session cannot be cancelled.
pub fn cancel(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_id: &str,
    now: DateTime<Utc>,
    horizon: TimeDelta,
) -> Outcome<SessionRow> {
    let mut row = staff_session(conn, caller, raw_id)?;
    let status = status_of(&row)?;
    if let Err(refusal) = may_change(status, Change::Cancel) {
        return Err(refused(refusal).into());
    }
    if status != SessionStatus::Cancelled {
        row.status = SessionStatus::Cancelled.as_str().to_owned();
        row.updated_at = now.naive_utc();
        save(conn, caller, &row, "session.cancel", now, horizon)?;
    }
    Ok(row)
}

/// A page of sessions: the caller's own (`raw_patient` none), or, for staff of the patient's
/// clinic, a patient's, audited.
pub fn list(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_patient: Option<&str>,
    when: When,
    after: Option<(NaiveDateTime, String)>,
    limit: i64,
    now: DateTime<Utc>,
) -> Outcome<Vec<SessionRow>> {
    let Some(raw) = raw_patient else {
        return Ok(store::list(
            conn,
            caller.account_id.as_str(),
            when,
            after,
            limit,
        )?);
    };
    patient::with_patient(conn, caller, raw, SelfAccess::StaffOnly, |conn, patient| {
        let rows = store::list(conn, patient.id.as_str(), when, after, limit)?;
        audit::record(
            conn,
            &AuditEntry::by(caller, "sessions.read", now.naive_utc())
                .clinic(patient.clinic_id.as_str())
                .patient(patient.id.as_str()),
        )?;
        Ok(rows)
    })
}
