//! Check-in use cases: storing a submission once (with the prompt it completes, the alerts its
//! answers raise and, on a safety signal, the crisis resources), a patient's history and trends.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::QueryResult;
use serde_json::{Map, Value};

use crate::account::model::{Role, parse_timezone};
use crate::audit::{self, AuditEntry};
use crate::auth::extract::Caller;
use crate::check_in::resend::{self, Resend};
use crate::check_in::store::{self, CheckInRow, HistoryFilter};
use crate::check_in::submission::{self, Parsed, Submission};
use crate::check_in::trends::{self, DailyMood, InstrumentTrend, Record};
use crate::db::DbConnection;
use crate::error::{Outcome, Refusal};
use crate::escalation::Raised;
use crate::escalation::decide::{CareTeam, OnSignal};
use crate::escalation::reach;
use crate::escalation::rules::Severity;
use crate::instrument::catalogue::Catalogue;
use crate::patient::{self, PatientRef, SelfAccess};
use crate::safety::crisis::CrisisResources;
use crate::safety::zones::ZoneCountries;
use crate::time::utc;

/// What a patient whose answers signal risk is shown: their crisis resources and where the care
/// team stands.
#[derive(Debug, Clone)]
pub struct Safety {
    /// The patient's crisis resources.
    pub resources: CrisisResources,
    /// Where the care team stands on the alert the answers raised.
    pub care_team: CareTeam,
}

/// A submission's outcome, with the safety notice's inputs when the stored answers carry a
/// safety signal or a dangerous blood pressure (read in the same transaction: nothing can fail
/// between the commit and the notice).
#[derive(Debug)]
pub enum Stored {
    /// Stored now.
    Created(CheckInRow, Option<Safety>),
    /// Stored before: the same content under the same id, or the same answers under a new id
    /// within minutes of the first. The stored check-in.
    Replayed(CheckInRow, Option<Safety>),
    /// The same id with a higher safety answer: stored as an amendment of the first, and
    /// raised.
    Amended(CheckInRow, Option<Safety>),
}

/// The safety notice's inputs for `row`, if it needs one.
pub fn safety_of(
    conn: &mut DbConnection,
    row: &CheckInRow,
    zones: &ZoneCountries,
) -> QueryResult<Option<Safety>> {
    if !super::view::needs_notice(row) {
        return Ok(None);
    }
    let Some(resources) = crate::safety::for_patient(conn, &row.patient_id, zones)? else {
        return Ok(None);
    };
    // No alert behind the answers (a clinic that raised its blood-pressure threshold): nobody
    // is being told, and the patient is not told otherwise.
    let care_team = match &row.safety_alert_id {
        Some(alert) => reach::care_team_of(conn, alert)?.unwrap_or(CareTeam::Unreachable),
        None => CareTeam::Unreachable,
    };
    Ok(Some(Safety {
        resources,
        care_team,
    }))
}

/// The urgent or high alert (most severe first) that a check-in's signals went to.
fn safety_alert(raised: &[Raised]) -> Option<&str> {
    raised
        .iter()
        .filter(|r| r.severity >= Severity::High && r.outcome != OnSignal::Suppress)
        .max_by_key(|r| r.severity)
        .map(|r| r.alert_id.as_str())
}

/// Raises the alerts of `row`'s answers and names the urgent or high one it went to; true when
/// anything was raised (and so may have enqueued jobs).
fn raise(
    conn: &mut DbConnection,
    caller: &Caller,
    row: &mut CheckInRow,
    answers: &BTreeMap<String, Value>,
) -> QueryResult<bool> {
    let raised = crate::escalation::intake::on_check_in(conn, caller, row, answers)?;
    if let Some(alert) = safety_alert(&raised) {
        store::set_safety_alert(conn, &row.id, alert)?;
        row.safety_alert_id = Some(alert.to_owned());
    }
    Ok(!raised.is_empty())
}

/// A submission's outcome and whether its transaction enqueued jobs (an alert raised, a
/// follow-up prompt), so that the workers are woken only when there is work.
#[derive(Debug)]
pub struct Submitted {
    /// What became of the submission.
    pub stored: Stored,
    /// Jobs may wait: wake the workers after the commit.
    pub enqueued: bool,
}

/// Attempts at storing a submission whose id another request stores at the same moment.
const ATTEMPTS: usize = 3;

/// Reads a check-in as the app sent it (the JSON object `POST /v1/check-ins` receives), received
/// at `now`, against the catalogue. A body that is not a well-formed submission is refused with
/// the field at fault, unless it carries a safety answer: then it is read as well as it can be,
/// and what was wrong is listed with the check-in (see [`submission::lenient`]). Invalid answers
/// without a safety answer are refused, each problem named (`answers.q3`). Pure: nothing is
/// read or written.
pub fn read_submission(
    body: Map<String, Value>,
    catalogue: &Catalogue,
    now: DateTime<Utc>,
) -> Result<Parsed, Refusal> {
    let (sent, envelope) =
        match crate::http::extract::read_value::<Submission>(Value::Object(body.clone())) {
            Ok(sent) => (sent, Default::default()),
            Err(refused) => submission::lenient(&body, catalogue, now).ok_or(refused)?,
        };
    submission::parse_with(&sent, envelope, catalogue, now).map_err(Refusal::validation)
}

/// Stores the caller's check-in once: `parsed` is the submission [`read_submission`] read (its
/// patient and clinic are the caller's). With it, in the same transaction: the prompt
/// it completes, the alerts its answers raise (and the jobs that notify the care team), the
/// PHQ-9 a positive PHQ-2 calls for and, on a safety signal, the crisis resources to show. A
/// replay (or identical answers re-sent under a new id within minutes) returns the stored
/// check-in; the same id with a higher safety answer amends it; any other content under the
/// same id is a conflict.
pub fn submit(
    conn: &mut DbConnection,
    caller: &Caller,
    parsed: Parsed,
    zones: &ZoneCountries,
) -> Outcome<Submitted> {
    let Parsed { row, answers } = parsed;
    let answers = &answers;
    let clinic_id = caller.own_clinic()?.to_string();
    let mut row = CheckInRow {
        patient_id: caller.account_id.to_string(),
        clinic_id,
        mood: mood_of(&row.instrument, answers),
        ..row
    };
    let crisis = |conn: &mut DbConnection, row: &CheckInRow| safety_of(conn, row, zones);
    let conflict = || {
        Refusal::conflict(
            "check_in_conflict",
            "A different check-in was already submitted with this id; generate a new id.",
        )
    };
    let since = row.received_at - resend::SAME_ANSWERS_WINDOW;
    for _ in 0..ATTEMPTS {
        // One statement for a first submission: stored unless its id is taken or the same
        // answers came minutes before; only then is what stopped it read.
        if store::insert_unless_repeated(conn, &row, since, resend::SAME_ANSWERS_WINDOW)? {
            crate::prompt::use_cases::complete_for_check_in(
                conn,
                &row.patient_id,
                &row.id,
                &row.instrument,
                row.prompt_id.as_deref(),
                utc(row.completed_at),
                utc(row.received_at),
            )?;
            let mut enqueued = raise(conn, caller, &mut row, answers)?;
            if positive_screen(&row) {
                enqueued = true;
                crate::prompt::use_cases::follow_up_positive_screen(
                    conn,
                    &row.patient_id,
                    &row.id,
                    utc(row.received_at),
                )?;
            }
            let resources = crisis(conn, &row)?;
            return Ok(Submitted {
                stored: Stored::Created(row, resources),
                enqueued,
            });
        }
        let Some(existing) = store::find(conn, &row.id)? else {
            // Not its id: the same answers, sent minutes before under another one, are the
            // first check-in.
            let hash = row.answers_hash.as_deref().unwrap_or_default();
            let candidates = store::identical_since(conn, &row.patient_id, hash, since)?;
            if let Some(first) = resend::repeated(&candidates, &row) {
                let resources = crisis(conn, first)?;
                return Ok(Submitted {
                    stored: Stored::Replayed(first.clone(), resources),
                    enqueued: false,
                });
            }
            // Gone again in between: try the insert again.
            continue;
        };
        if existing.patient_id != row.patient_id {
            return Err(conflict().into());
        }
        match resend::decide(&existing, &row) {
            Resend::Replay => {
                let resources = crisis(conn, &existing)?;
                return Ok(Submitted {
                    stored: Stored::Replayed(existing, resources),
                    enqueued: false,
                });
            }
            Resend::Conflict => return Err(conflict().into()),
            Resend::Amend => {
                if !store::amend(conn, &existing, &row, row.received_at)? {
                    // Changed since it was read: decide again on what is stored now.
                    continue;
                }
                let Some(mut amended) = store::find(conn, &row.id)? else {
                    continue;
                };
                let enqueued = raise(conn, caller, &mut amended, answers)?;
                let resources = crisis(conn, &amended)?;
                return Ok(Submitted {
                    stored: Stored::Amended(amended, resources),
                    enqueued,
                });
            }
        }
    }
    Err(conflict().into())
}

/// A positive PHQ-2 (CLINICAL.md): a total of 3 or more, or any answer to item 9 on a PHQ-2
/// that carries it. Calls for a full PHQ-9.
pub fn positive_screen(row: &CheckInRow) -> bool {
    row.instrument == "phq2" && (row.total.is_some_and(|t| t >= 3) || row.safety_signal())
}

/// Each row with its safety notice's inputs, where it needs one.
pub fn with_safety(
    conn: &mut DbConnection,
    rows: Vec<CheckInRow>,
    zones: &ZoneCountries,
) -> QueryResult<Vec<(CheckInRow, Option<Safety>)>> {
    rows.into_iter()
        .map(|row| {
            let safety = safety_of(conn, &row, zones)?;
            Ok((row, safety))
        })
        .collect()
}

/// One of the caller's own check-ins, with its safety notice's inputs (the current
/// `care_team`); not found when it is not theirs.
pub fn own(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_id: &str,
    zones: &ZoneCountries,
) -> Outcome<(CheckInRow, Option<Safety>)> {
    let Ok(id) = uuid::Uuid::try_parse(raw_id) else {
        return Err(Refusal::not_found("check-in").into());
    };
    let row = store::find(conn, &id.hyphenated().to_string())?
        .filter(|row| row.patient_id == caller.account_id.as_str());
    let Some(row) = row else {
        return Err(Refusal::not_found("check-in").into());
    };
    let safety = safety_of(conn, &row, zones)?;
    Ok((row, safety))
}

/// The daily mood answer of a check-in, kept in its own column so that the mood rules read
/// numbers rather than every answer's JSON.
pub fn mood_of(instrument: &str, answers: &BTreeMap<String, Value>) -> Option<f64> {
    (instrument == "daily_mood")
        .then(|| answers.get("mood").and_then(Value::as_f64))
        .flatten()
}

/// A page of a patient's history (`limit` + 1 rows when there is a next page): the caller's own
/// (`raw_patient` none), or, for staff of the patient's clinic, a patient's, audited.
pub fn history(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_patient: Option<&str>,
    filter: &HistoryFilter,
    limit: i64,
    now: DateTime<Utc>,
) -> Outcome<Vec<CheckInRow>> {
    let Some(raw) = raw_patient else {
        return Ok(store::history(
            conn,
            caller.account_id.as_str(),
            filter,
            limit,
        )?);
    };
    patient::with_patient(conn, caller, raw, SelfAccess::StaffOnly, |conn, patient| {
        let rows = store::history(conn, patient.id.as_str(), filter, limit)?;
        audit::record(
            conn,
            &AuditEntry::by(caller, "check_ins.read", now.naive_utc())
                .clinic(patient.clinic_id.as_str())
                .patient(patient.id.as_str()),
        )?;
        Ok(rows)
    })
}

/// A patient's trends over a window.
#[derive(Debug)]
pub struct PatientTrends {
    /// The patient.
    pub patient: PatientRef,
    /// The zone the daily series uses.
    pub timezone: chrono_tz::Tz,
    /// Start of the daily series.
    pub from: DateTime<Utc>,
    /// Mean mood per local day.
    pub daily_mood: Vec<DailyMood>,
    /// Per scored instrument answered in the last year.
    pub instruments: Vec<InstrumentTrend>,
}

/// The daily mood series of the last `days` and each scored instrument's trend: for staff of
/// the patient's clinic (audited) or the patient.
pub fn trends_of(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_patient: &str,
    days: u32,
    now: DateTime<Utc>,
) -> Outcome<PatientTrends> {
    if !(1..=365).contains(&days) {
        return Err(Refusal::invalid_field("days", "must be between 1 and 365").into());
    }
    patient::with_patient(
        conn,
        caller,
        raw_patient,
        SelfAccess::StaffOrSelf,
        |conn, patient| {
            let tz = parse_timezone(&patient.timezone).unwrap_or(chrono_tz::UTC);
            let from = now - TimeDelta::days(i64::from(days));
            let since = (now - TimeDelta::days(365)).min(from).naive_utc();
            let id = patient.id.as_str();
            let rows = store::since(conn, id, since)?;
            let mut firsts = Vec::new();
            for instrument in ["phq9", "gad7", "phq2"] {
                firsts.push(store::first_of(conn, id, instrument)?);
            }
            if caller.role != Role::Patient {
                audit::record(
                    conn,
                    &AuditEntry::by(caller, "trends.read", now.naive_utc())
                        .clinic(patient.clinic_id.as_str())
                        .patient(id),
                )?;
            }
            let record = |r: &CheckInRow| Record {
                id: r.id.clone(),
                instrument: r.instrument.clone(),
                total: r.total.map(i64::from),
                mood: r.mood,
                completed_at: utc(r.completed_at),
            };
            let records: Vec<Record> = rows.iter().map(record).collect();
            let instruments = ["phq9", "gad7", "phq2"]
                .iter()
                .zip(firsts.iter())
                .filter_map(|(key, first)| {
                    let first = first.as_ref().map(record);
                    trends::instrument_trend(key, &records, first.as_ref())
                })
                .collect();
            Ok(PatientTrends {
                daily_mood: trends::daily_mood(&records, tz, from),
                timezone: tz,
                from,
                patient,
                instruments,
            })
        },
    )
}
