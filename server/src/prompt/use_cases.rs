//! Prompt use cases: a patient's open prompts and preferences, a patient's prompts, care plan
//! and adherence for the care team.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use companion_schema::ids::ClinicId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::account as accounts;
use crate::audit::{self, AuditEntry};
use crate::auth::extract::Caller;
use crate::check_in as check_ins;
use crate::db::DbConnection;
use crate::error::{Outcome, Refusal};
use crate::patient::{self, SelfAccess};
use crate::time::utc;

use super::adherence::{self, Adherence};
use super::local_time::DailySpan;
use super::plan::CarePlan;
use super::store::{self, PromptRow};

// What other domains call, inside their own transaction (prompt's tables are written here
// and in the store only).

/// Starts a newly enrolled patient's prompts: the default window and quiet hours, the clinic's
/// plan, planned ahead at once.
pub fn start_patient(
    conn: &mut DbConnection,
    patient_id: &str,
    clinic_id: &str,
    now: DateTime<Utc>,
    horizon: TimeDelta,
) -> diesel::QueryResult<()> {
    store::create_schedule(
        conn,
        &store::ScheduleRow::new(patient_id, clinic_id, now.naive_utc()),
    )?;
    store::replan(conn, patient_id, now, horizon).map(drop)
}

/// Plans `patient_id`'s prompts afresh (after a change to their account, sessions, consent or
/// zone): withdraws what no longer applies and plans up to `horizon` ahead.
pub fn replan_patient(
    conn: &mut DbConnection,
    patient_id: &str,
    now: DateTime<Utc>,
    horizon: TimeDelta,
) -> diesel::QueryResult<()> {
    store::replan(conn, patient_id, now, horizon).map(drop)
}

/// Replans every patient of `clinic_id` in the background (after its care plan changed).
pub fn replan_clinic_later(
    conn: &mut DbConnection,
    clinic_id: &str,
    now: DateTime<Utc>,
) -> diesel::QueryResult<bool> {
    store::enqueue_clinic_replan(conn, clinic_id, now.naive_utc())
}

/// Completes the prompt a stored check-in answers (the one it names, or the open one of its
/// instrument); returns the prompt completed, if any.
#[allow(clippy::too_many_arguments)]
pub fn complete_for_check_in(
    conn: &mut DbConnection,
    patient_id: &str,
    check_in_id: &str,
    instrument: &str,
    named: Option<&str>,
    completed_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> diesel::QueryResult<Option<String>> {
    store::complete_for_check_in(
        conn,
        patient_id,
        check_in_id,
        instrument,
        named,
        completed_at.naive_utc(),
        now.naive_utc(),
    )
}

/// The patients of `clinic_id` with a prompt still open.
pub fn patients_with_open_prompts(
    conn: &mut DbConnection,
    clinic_id: &str,
) -> diesel::QueryResult<Vec<String>> {
    store::patients_with_open_prompts(conn, clinic_id)
}

/// Cancels every open prompt of `patients` at `now` (they are no longer to be prompted).
pub fn cancel_open_prompts(
    conn: &mut DbConnection,
    patients: &[&String],
    now: DateTime<Utc>,
) -> diesel::QueryResult<()> {
    store::cancel_open(conn, patients, now.naive_utc())
}

/// Screening stays complete (CLINICAL.md, part 2): a positive PHQ-2 (`check_in_id`, stored in
/// the caller's transaction) schedules a PHQ-9 within 24 hours, unless one is already open or
/// due by then. Returns the prompt scheduled, if one was.
pub fn follow_up_positive_screen(
    conn: &mut DbConnection,
    patient_id: &str,
    check_in_id: &str,
    now: DateTime<Utc>,
) -> diesel::QueryResult<Option<String>> {
    store::schedule_follow_up(conn, patient_id, check_in_id, now)
}

/// A clinic's default care plan (the built-in default until one is set), for its staff.
pub fn clinic_care_plan(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_clinic: &str,
) -> Outcome<CarePlan> {
    let clinic = clinic_of(raw_clinic).and_then(|c| caller.ensure_staff_of(&c).map(|()| c))?;
    Ok(store::clinic_plan_of(conn, clinic.as_str())?
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default())
}

/// Replaces a clinic's default care plan (its admins only); `problems` is the plan's own
/// validation, answered after the role check. The clinic's patients who follow it are planned
/// again in the background. Audited.
pub fn set_clinic_care_plan(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_clinic: &str,
    plan: CarePlan,
    problems: BTreeMap<String, String>,
    now: DateTime<Utc>,
) -> Outcome<CarePlan> {
    let clinic = clinic_of(raw_clinic).and_then(|c| {
        caller
            .ensure_admin_of(&c, "change the clinic's care plan")
            .map(|()| c)
    })?;
    if !problems.is_empty() {
        return Err(Refusal::validation(problems).into());
    }
    let json = match serde_json::to_string(&plan) {
        Ok(json) => json,
        Err(e) => return Err(Refusal::broken(&e).into()),
    };
    store::set_clinic_plan(conn, clinic.as_str(), json)?;
    replan_clinic_later(conn, clinic.as_str(), now)?;
    audit::record(
        conn,
        &AuditEntry::by(caller, "care_plan.update", now.naive_utc()).clinic(clinic.as_str()),
    )?;
    Ok(plan)
}

fn clinic_of(raw: &str) -> Result<ClinicId, Refusal> {
    ClinicId::parse(raw).ok_or_else(|| Refusal::not_found("clinic"))
}

/// Care plans of a clinic that never ask PHQ-9 item 9: whether the clinic's default plan does
/// not (its own, or the built-in default), and the patients whose own plan does not.
pub fn plans_without_item9(
    conn: &mut DbConnection,
    clinic_id: &str,
) -> diesel::QueryResult<(bool, Vec<String>)> {
    let parse = |text: &str| serde_json::from_str::<CarePlan>(text).unwrap_or_default();
    let default = store::clinic_plan_of(conn, clinic_id)?
        .map(|text| parse(&text))
        .unwrap_or_default();
    let patients = store::own_plans(conn, clinic_id)?
        .into_iter()
        .filter(|(_, plan)| !parse(plan).asks_item9())
        .map(|(patient, _)| patient)
        .collect();
    Ok((!default.asks_item9(), patients))
}

/// The caller's prompts that can still be answered.
pub fn open_prompts(
    conn: &mut DbConnection,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Outcome<Vec<PromptRow>> {
    Ok(store::open_prompts(
        conn,
        caller.account_id.as_str(),
        now.naive_utc(),
    )?)
}

/// A patient's prompts from 14 days ago to `horizon` ahead (at most 1,000): for staff of the
/// patient's clinic (audited) or the patient.
pub fn patient_prompts(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_patient: &str,
    now: DateTime<Utc>,
    horizon: TimeDelta,
) -> Outcome<Vec<PromptRow>> {
    patient::with_patient(
        conn,
        caller,
        raw_patient,
        SelfAccess::StaffOrSelf,
        |conn, patient| {
            let from = (now - TimeDelta::days(14)).naive_utc();
            let to = (now + horizon).naive_utc();
            let rows = store::prompts_between(conn, patient.id.as_str(), from, to, 1000)?;
            audit::record(
                conn,
                &AuditEntry::by(caller, "prompts.read", now.naive_utc())
                    .clinic(patient.clinic_id.as_str())
                    .patient(patient.id.as_str()),
            )?;
            Ok(rows)
        },
    )
}

/// When a patient is prompted.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Preferences {
    /// IANA time zone; prompts follow its local clock, daylight saving included.
    pub timezone: String,
    /// Daily prompts are sent in this local window (at its start, or at a stable random minute
    /// of it when the plan says so). At least 15 minutes.
    pub check_in_window: DailySpan,
    /// Nothing is sent to the patient in these local hours (default 21:00-08:00); equal start
    /// and end means none.
    pub quiet_hours: DailySpan,
}

fn no_schedule() -> Refusal {
    Refusal::broken(&"patient without a schedule")
}

/// The caller's prompt preferences.
pub fn preferences(conn: &mut DbConnection, caller: &Caller) -> Outcome<Preferences> {
    let id = caller.account_id.as_str();
    let Some(schedule) = store::find_schedule(conn, id)? else {
        return Err(no_schedule().into());
    };
    Ok(Preferences {
        timezone: accounts::timezone_of(conn, id)?,
        check_in_window: schedule.window(),
        quiet_hours: schedule.quiet(),
    })
}

/// A change of preferences, its zone already validated; fields left out keep their value.
#[derive(Debug, Clone)]
pub struct PreferenceChange {
    /// The new zone.
    pub timezone: Option<String>,
    /// The new check-in window.
    pub check_in_window: Option<DailySpan>,
    /// The new quiet hours.
    pub quiet_hours: Option<DailySpan>,
}

/// Changes the caller's preferences and replans the prompts not sent yet. Audited.
pub fn set_preferences(
    conn: &mut DbConnection,
    caller: &Caller,
    change: PreferenceChange,
    now: DateTime<Utc>,
    horizon: TimeDelta,
) -> Outcome<Preferences> {
    let id = caller.account_id.as_str();
    let Some(mut schedule) = store::find_schedule(conn, id)? else {
        return Err(no_schedule().into());
    };
    let window = change.check_in_window.unwrap_or_else(|| schedule.window());
    let quiet = change.quiet_hours.unwrap_or_else(|| schedule.quiet());
    if !quiet.leaves_room_in(window) {
        return Err(Refusal::invalid_field(
            "check_in_window",
            "lies entirely inside the quiet hours",
        )
        .into());
    }
    schedule.window_start = window.start.to_string();
    schedule.window_end = window.end.to_string();
    schedule.quiet_start = quiet.start.to_string();
    schedule.quiet_end = quiet.end.to_string();
    schedule.updated_at = now.naive_utc();
    store::save_schedule(conn, &schedule)?;
    if let Some(zone) = &change.timezone {
        accounts::set_timezone(conn, id, zone, now.naive_utc())?;
    }
    store::replan(conn, id, now, horizon)?;
    audit::record(
        conn,
        &AuditEntry::by(caller, "preferences.update", now.naive_utc()).subject(id),
    )?;
    Ok(Preferences {
        timezone: accounts::timezone_of(conn, id)?,
        check_in_window: window,
        quiet_hours: quiet,
    })
}

/// Where a patient's plan comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanSource {
    /// The patient's own override.
    Patient,
    /// The clinic's default.
    Clinic,
    /// The built-in default (the clinic has set none).
    Default,
}

/// The care plan in force for a patient.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PatientCarePlan {
    /// Where it comes from.
    pub source: PlanSource,
    /// The plan.
    pub plan: CarePlan,
}

fn plan_in_force(
    conn: &mut DbConnection,
    patient_id: &str,
    clinic_id: &str,
) -> diesel::QueryResult<PatientCarePlan> {
    let own = store::find_schedule(conn, patient_id)?
        .and_then(|s| s.care_plan)
        .and_then(|text| serde_json::from_str::<CarePlan>(&text).ok());
    if let Some(plan) = own {
        return Ok(PatientCarePlan {
            source: PlanSource::Patient,
            plan,
        });
    }
    let clinic = store::clinic_plan_of(conn, clinic_id)?
        .and_then(|text| serde_json::from_str::<CarePlan>(&text).ok());
    Ok(match clinic {
        Some(plan) => PatientCarePlan {
            source: PlanSource::Clinic,
            plan,
        },
        None => PatientCarePlan {
            source: PlanSource::Default,
            plan: CarePlan::default(),
        },
    })
}

/// The care plan in force for a patient of the caller's clinic.
pub fn patient_care_plan(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_patient: &str,
) -> Outcome<PatientCarePlan> {
    patient::with_patient(
        conn,
        caller,
        raw_patient,
        SelfAccess::StaffOnly,
        |conn, patient| {
            Ok(plan_in_force(
                conn,
                patient.id.as_str(),
                patient.clinic_id.as_str(),
            )?)
        },
    )
}

/// Gives a patient of the caller's clinic their own plan (`plan`; its catalogue problems in
/// `problems`), or returns them to the clinic's (`None`); replans at once. Audited.
pub fn save_patient_plan(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_patient: &str,
    plan: Option<(CarePlan, BTreeMap<String, String>)>,
    now: DateTime<Utc>,
    horizon: TimeDelta,
) -> Outcome<PatientCarePlan> {
    patient::with_patient(
        conn,
        caller,
        raw_patient,
        SelfAccess::StaffOnly,
        |conn, patient| {
            let (json, action) = match plan {
                Some((_, problems)) if !problems.is_empty() => {
                    return Err(Refusal::validation(problems).into());
                }
                Some((plan, _)) => match serde_json::to_string(&plan) {
                    Ok(json) => (Some(json), "care_plan.update"),
                    Err(e) => return Err(Refusal::broken(&e).into()),
                },
                None => (None, "care_plan.reset"),
            };
            let id = patient.id.as_str();
            let Some(mut schedule) = store::find_schedule(conn, id)? else {
                return Err(no_schedule().into());
            };
            schedule.care_plan = json;
            schedule.updated_at = now.naive_utc();
            store::save_schedule(conn, &schedule)?;
            store::replan(conn, id, now, horizon)?;
            audit::record(
                conn,
                &AuditEntry::by(caller, action, now.naive_utc())
                    .clinic(patient.clinic_id.as_str())
                    .patient(id),
            )?;
            Ok(plan_in_force(conn, id, patient.clinic_id.as_str())?)
        },
    )
}

/// A patient's adherence: for staff of the patient's clinic or the patient.
pub fn patient_adherence(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_patient: &str,
    now: DateTime<Utc>,
) -> Outcome<Adherence> {
    patient::with_patient(
        conn,
        caller,
        raw_patient,
        SelfAccess::StaffOrSelf,
        |conn, patient| {
            let id = patient.id.to_string();
            let mut all = adherence_of(conn, vec![id.clone()], now)?;
            Ok(all
                .remove(&id)
                .unwrap_or_else(|| adherence::summarise(&[], None)))
        },
    )
}

/// Adherence of several patients over the last 30 days of closed prompts (the roster and the
/// endpoint above): two reads, whatever the number of patients.
pub fn adherence_of(
    conn: &mut DbConnection,
    patient_ids: Vec<String>,
    now: DateTime<Utc>,
) -> diesel::QueryResult<BTreeMap<String, Adherence>> {
    let since = (now - TimeDelta::days(adherence::WINDOW_DAYS)).naive_utc();
    let mut outcomes = store::recent_outcomes(conn, &patient_ids, since)?;
    let last: BTreeMap<String, DateTime<Utc>> = check_ins::latest_completed(conn, &patient_ids)?
        .into_iter()
        .filter_map(|(id, at)| at.map(|at| (id, utc(at))))
        .collect();
    Ok(patient_ids
        .into_iter()
        .map(|id| {
            let list = outcomes.remove(&id).unwrap_or_default();
            let summary = adherence::summarise(&list, last.get(&id).copied());
            (id, summary)
        })
        .collect())
}
