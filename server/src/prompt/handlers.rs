//! HTTP: a patient's open prompts and preferences; care plans (clinic default and per-patient
//! override); a patient's prompts and adherence for staff.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, TimeDelta, Utc};
use companion_schema::schema::{accounts, check_ins};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::audit::{self, AuditEntry};
use crate::auth::extract::{Caller, PatientCaller, Staff};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::escalation::store::ClinicSetting;
use crate::http::extract::ApiJson;
use crate::patient::{self, SelfAccess};
use crate::time::utc;

use super::adherence::{self, Adherence};
use super::local_time::DailySpan;
use super::plan::CarePlan;
use super::store::{self, PromptRow};

/// A check-in prompt.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Prompt {
    /// Id; send it as `prompt_id` with the check-in that answers it.
    pub id: String,
    /// The instrument to answer (catalogue key).
    pub instrument: String,
    /// `scheduled`, `sent`, `reminded`, `completed`, `expired` or `cancelled`.
    pub status: String,
    /// The care-plan rule that planned it.
    pub rule: String,
    /// The session a before-session prompt belongs to.
    pub session_id: Option<String>,
    /// The local time in the patient's zone the rule aimed at, `YYYY-MM-DDTHH:MM`.
    pub local_time: String,
    /// When it is (or was) sent.
    pub due_at: DateTime<Utc>,
    /// When its one reminder is (or was) due, if it has one.
    pub remind_at: Option<DateTime<Utc>>,
    /// When it stops being answerable.
    pub expires_at: DateTime<Utc>,
    /// When it was completed, expired or cancelled.
    pub closed_at: Option<DateTime<Utc>>,
    /// The check-in that answered it.
    pub check_in_id: Option<String>,
}

impl From<PromptRow> for Prompt {
    fn from(row: PromptRow) -> Self {
        Self {
            id: row.id,
            instrument: row.instrument,
            status: row.status,
            rule: row.rule,
            session_id: row.session_id,
            local_time: row.local_time,
            due_at: utc(row.due_at),
            remind_at: row.remind_at.map(utc),
            expires_at: utc(row.expires_at),
            closed_at: row.closed_at.map(utc),
            check_in_id: row.check_in_id,
        }
    }
}

/// A list of prompts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PromptList {
    /// The prompts, oldest first.
    pub items: Vec<Prompt>,
}

/// My open prompts
///
/// Prompts that are due and can still be answered, oldest first. Answer one by sending its id
/// as `prompt_id` with the check-in (a check-in of the same instrument inside a prompt's window
/// completes it too).
#[utoipa::path(
    get,
    path = "/v1/me/prompts",
    tag = "prompts",
    operation_id = "list_my_prompts",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Open prompts", body = PromptList),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not a patient", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list_my_prompts(
    State(state): State<AppState>,
    PatientCaller(caller): PatientCaller,
) -> ApiResult<Json<PromptList>> {
    let (id, now) = (caller.account_id.to_string(), state.now().naive_utc());
    let rows = state
        .db
        .run(move |conn| store::open_prompts(conn, &id, now))
        .await?;
    Ok(Json(PromptList {
        items: rows.into_iter().map(Prompt::from).collect(),
    }))
}

/// A patient's prompts
///
/// Everything from 14 days ago to the planning horizon, any state, in time order (at most
/// 1,000). Staff of the patient's clinic, or the patient.
#[utoipa::path(
    get,
    path = "/v1/patients/{patient_id}/prompts",
    tag = "prompts",
    operation_id = "list_patient_prompts",
    security(("bearer" = [])),
    params(("patient_id" = String, Path, description = "The patient")),
    responses(
        (status = 200, description = "The patient's prompts", body = PromptList),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not allowed to read patient data", body = ErrorBody),
        (status = 404, description = "No such patient in the caller's clinic", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list_patient_prompts(
    State(state): State<AppState>,
    caller: Caller,
    Path(patient_id): Path<String>,
) -> ApiResult<Json<PromptList>> {
    let patient = patient::resolve(&state, &caller, &patient_id, SelfAccess::StaffOrSelf).await?;
    let now = state.now();
    let entry = AuditEntry::by(&caller, "prompts.read", now.naive_utc())
        .clinic(patient.clinic_id.as_str())
        .patient(patient.id.as_str());
    let from = (now - TimeDelta::days(14)).naive_utc();
    let to = (now + state.config.prompts.horizon).naive_utc();
    let id = patient.id.to_string();
    let rows = state
        .db
        .write(move |conn| {
            audit::record(conn, &entry)?;
            store::prompts_between(conn, &id, from, to, 1000)
        })
        .await?;
    Ok(Json(PromptList {
        items: rows.into_iter().map(Prompt::from).collect(),
    }))
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

/// A change of preferences; fields left out keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePreferences {
    /// IANA time zone.
    pub timezone: Option<String>,
    /// The check-in window.
    pub check_in_window: Option<DailySpan>,
    /// Quiet hours.
    pub quiet_hours: Option<DailySpan>,
}

/// My prompt preferences
#[utoipa::path(
    get,
    path = "/v1/me/preferences",
    tag = "prompts",
    operation_id = "get_my_preferences",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The preferences in force", body = Preferences),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not a patient", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get_my_preferences(
    State(state): State<AppState>,
    PatientCaller(caller): PatientCaller,
) -> ApiResult<Json<Preferences>> {
    let id = caller.account_id.to_string();
    let (schedule, timezone) = state
        .db
        .run(move |conn| {
            let schedule = store::find_schedule(conn, &id)?;
            let zone: String = accounts::table
                .find(&id)
                .select(accounts::timezone)
                .first(conn)?;
            Ok((schedule, zone))
        })
        .await?;
    let schedule = schedule.ok_or_else(|| ApiError::internal(&"patient without a schedule"))?;
    Ok(Json(Preferences {
        timezone,
        check_in_window: schedule.window(),
        quiet_hours: schedule.quiet(),
    }))
}

/// Change my prompt preferences
///
/// Prompts not sent yet are replanned at once for the new zone, window and quiet hours;
/// prompts already sent stay as they are.
#[utoipa::path(
    put,
    path = "/v1/me/preferences",
    tag = "prompts",
    operation_id = "set_my_preferences",
    security(("bearer" = [])),
    request_body = UpdatePreferences,
    responses(
        (status = 200, description = "The preferences now in force", body = Preferences),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not a patient", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields, each named", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn set_my_preferences(
    State(state): State<AppState>,
    PatientCaller(caller): PatientCaller,
    ApiJson(body): ApiJson<UpdatePreferences>,
) -> ApiResult<Json<Preferences>> {
    let mut problems = BTreeMap::new();
    let timezone = match body
        .timezone
        .as_deref()
        .map(crate::account::model::parse_timezone)
        .transpose()
    {
        Ok(tz) => tz.map(|tz| tz.name().to_owned()),
        Err(problem) => {
            problems.insert("timezone".to_owned(), problem.to_owned());
            None
        }
    };
    if let Some(window) = body.check_in_window
        && window.minutes() < 15
    {
        problems.insert(
            "check_in_window".into(),
            "must be at least 15 minutes long".into(),
        );
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let (id, now) = (caller.account_id.to_string(), state.now());
    let horizon = state.config.prompts.horizon;
    let entry = AuditEntry::by(&caller, "preferences.update", now.naive_utc()).subject(&id);
    let (window, quiet) = (body.check_in_window, body.quiet_hours);
    let saved = state
        .db
        .write(move |conn| {
            let Some(mut schedule) = store::find_schedule(conn, &id)? else {
                return Ok(Err("patient without a schedule"));
            };
            let window = window.unwrap_or_else(|| schedule.window());
            let quiet = quiet.unwrap_or_else(|| schedule.quiet());
            if !quiet.leaves_room_in(window) {
                return Ok(Ok(None));
            }
            schedule.window_start = window.start.to_string();
            schedule.window_end = window.end.to_string();
            schedule.quiet_start = quiet.start.to_string();
            schedule.quiet_end = quiet.end.to_string();
            schedule.updated_at = now.naive_utc();
            store::save_schedule(conn, &schedule)?;
            if let Some(zone) = &timezone {
                diesel::update(accounts::table.find(&id))
                    .set((
                        accounts::timezone.eq(zone),
                        accounts::updated_at.eq(now.naive_utc()),
                    ))
                    .execute(conn)?;
            }
            store::replan(conn, &id, now, horizon)?;
            audit::record(conn, &entry)?;
            let zone: String = accounts::table
                .find(&id)
                .select(accounts::timezone)
                .first(conn)?;
            Ok(Ok(Some(Preferences {
                timezone: zone,
                check_in_window: window,
                quiet_hours: quiet,
            })))
        })
        .await?;
    match saved {
        Ok(Some(preferences)) => Ok(Json(preferences)),
        Ok(None) => Err(ApiError::invalid_field(
            "check_in_window",
            "lies entirely inside the quiet hours",
        )),
        Err(cause) => Err(ApiError::internal(&cause)),
    }
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

/// A patient's care plan
#[utoipa::path(
    get,
    path = "/v1/patients/{patient_id}/care-plan",
    tag = "prompts",
    operation_id = "get_patient_care_plan",
    security(("bearer" = [])),
    params(("patient_id" = String, Path, description = "The patient")),
    responses(
        (status = 200, description = "The plan in force and where it comes from", body = PatientCarePlan),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not clinic staff", body = ErrorBody),
        (status = 404, description = "No such patient in the caller's clinic", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get_patient_care_plan(
    State(state): State<AppState>,
    Staff(caller): Staff,
    Path(patient_id): Path<String>,
) -> ApiResult<Json<PatientCarePlan>> {
    let patient = patient::resolve(&state, &caller, &patient_id, SelfAccess::StaffOnly).await?;
    let (id, clinic) = (patient.id.to_string(), patient.clinic_id.to_string());
    let plan = state
        .db
        .run(move |conn| plan_in_force(conn, &id, &clinic))
        .await?;
    Ok(Json(plan))
}

fn plan_in_force(
    conn: &mut crate::db::DbConnection,
    patient_id: &str,
    clinic_id: &str,
) -> QueryResult<PatientCarePlan> {
    let own = store::find_schedule(conn, patient_id)?
        .and_then(|s| s.care_plan)
        .and_then(|text| serde_json::from_str::<CarePlan>(&text).ok());
    if let Some(plan) = own {
        return Ok(PatientCarePlan {
            source: PlanSource::Patient,
            plan,
        });
    }
    let clinic: Option<Option<String>> = companion_schema::schema::clinics::table
        .find(clinic_id)
        .select(companion_schema::schema::clinics::care_plan)
        .first(conn)
        .optional()?;
    Ok(
        match clinic
            .flatten()
            .and_then(|text| serde_json::from_str::<CarePlan>(&text).ok())
        {
            Some(plan) => PatientCarePlan {
                source: PlanSource::Clinic,
                plan,
            },
            None => PatientCarePlan {
                source: PlanSource::Default,
                plan: CarePlan::default(),
            },
        },
    )
}

/// Give a patient their own care plan
///
/// Overrides the clinic's plan for this patient; prompts not sent yet are replanned at once.
#[utoipa::path(
    put,
    path = "/v1/patients/{patient_id}/care-plan",
    tag = "prompts",
    operation_id = "set_patient_care_plan",
    security(("bearer" = [])),
    params(("patient_id" = String, Path, description = "The patient")),
    request_body = CarePlan,
    responses(
        (status = 200, description = "The plan now in force", body = PatientCarePlan),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not clinic staff", body = ErrorBody),
        (status = 404, description = "No such patient in the caller's clinic", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid rules, each named", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn set_patient_care_plan(
    State(state): State<AppState>,
    Staff(caller): Staff,
    Path(patient_id): Path<String>,
    ApiJson(body): ApiJson<CarePlan>,
) -> ApiResult<Json<PatientCarePlan>> {
    let patient = patient::resolve(&state, &caller, &patient_id, SelfAccess::StaffOnly).await?;
    let problems = body.problems(|key| state.catalogue.find(key, None).is_some());
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let json = serde_json::to_string(&body).map_err(|e| ApiError::internal(&e))?;
    save_patient_plan(&state, &caller, &patient, Some(json), "care_plan.update").await
}

/// Return a patient to the clinic's care plan
#[utoipa::path(
    delete,
    path = "/v1/patients/{patient_id}/care-plan",
    tag = "prompts",
    operation_id = "reset_patient_care_plan",
    security(("bearer" = [])),
    params(("patient_id" = String, Path, description = "The patient")),
    responses(
        (status = 200, description = "The plan now in force (the clinic's)", body = PatientCarePlan),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not clinic staff", body = ErrorBody),
        (status = 404, description = "No such patient in the caller's clinic", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn reset_patient_care_plan(
    State(state): State<AppState>,
    Staff(caller): Staff,
    Path(patient_id): Path<String>,
) -> ApiResult<Json<PatientCarePlan>> {
    let patient = patient::resolve(&state, &caller, &patient_id, SelfAccess::StaffOnly).await?;
    save_patient_plan(&state, &caller, &patient, None, "care_plan.reset").await
}

async fn save_patient_plan(
    state: &AppState,
    caller: &Caller,
    patient: &patient::PatientRef,
    json: Option<String>,
    action: &'static str,
) -> ApiResult<Json<PatientCarePlan>> {
    let now = state.now();
    let horizon = state.config.prompts.horizon;
    let entry = AuditEntry::by(caller, action, now.naive_utc())
        .clinic(patient.clinic_id.as_str())
        .patient(patient.id.as_str());
    let (id, clinic) = (patient.id.to_string(), patient.clinic_id.to_string());
    let plan = state
        .db
        .write(move |conn| {
            let Some(mut schedule) = store::find_schedule(conn, &id)? else {
                return Ok(None);
            };
            schedule.care_plan = json;
            schedule.updated_at = now.naive_utc();
            store::save_schedule(conn, &schedule)?;
            store::replan(conn, &id, now, horizon)?;
            audit::record(conn, &entry)?;
            plan_in_force(conn, &id, &clinic).map(Some)
        })
        .await?;
    plan.map(Json)
        .ok_or_else(|| ApiError::internal(&"patient without a schedule"))
}

/// A clinic's default care plan
#[utoipa::path(
    get,
    path = "/v1/clinics/{clinic_id}/care-plan",
    tag = "prompts",
    operation_id = "get_clinic_care_plan",
    security(("bearer" = [])),
    params(("clinic_id" = String, Path, description = "The clinic")),
    responses(
        (status = 200, description = "The clinic's plan (the built-in default until one is set)", body = CarePlan),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not clinic staff", body = ErrorBody),
        (status = 404, description = "No such clinic, or not the caller's", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get_clinic_care_plan(
    State(state): State<AppState>,
    Staff(caller): Staff,
    Path(clinic_id): Path<String>,
) -> ApiResult<Json<CarePlan>> {
    crate::escalation::handlers::read_clinic_setting(
        &state,
        &caller,
        &clinic_id,
        ClinicSetting::CarePlan,
    )
    .await
}

/// Change a clinic's default care plan
///
/// Clinic admins only. Patients without a plan of their own are replanned in the background.
#[utoipa::path(
    put,
    path = "/v1/clinics/{clinic_id}/care-plan",
    tag = "prompts",
    operation_id = "set_clinic_care_plan",
    security(("bearer" = [])),
    params(("clinic_id" = String, Path, description = "The clinic")),
    request_body = CarePlan,
    responses(
        (status = 200, description = "The plan now in force", body = CarePlan),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not a clinic admin", body = ErrorBody),
        (status = 404, description = "No such clinic, or not the caller's", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid rules, each named", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn set_clinic_care_plan(
    State(state): State<AppState>,
    Staff(caller): Staff,
    Path(clinic_id): Path<String>,
    ApiJson(body): ApiJson<CarePlan>,
) -> ApiResult<Json<CarePlan>> {
    let problems = body.problems(|key| state.catalogue.find(key, None).is_some());
    let response = crate::escalation::handlers::update_clinic_setting(
        &state,
        &caller,
        &clinic_id,
        ClinicSetting::CarePlan,
        "change the clinic's care plan",
        problems,
        body,
    )
    .await;
    state.jobs_enqueued();
    response
}

/// A patient's adherence
///
/// Over the last 30 days of closed prompts: completion rate, the current streak of answered
/// prompts, missed prompts in a row, and the latest check-in. Staff of the patient's clinic, or
/// the patient.
#[utoipa::path(
    get,
    path = "/v1/patients/{patient_id}/adherence",
    tag = "prompts",
    operation_id = "get_patient_adherence",
    security(("bearer" = [])),
    params(("patient_id" = String, Path, description = "The patient")),
    responses(
        (status = 200, description = "Adherence", body = Adherence),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not allowed to read patient data", body = ErrorBody),
        (status = 404, description = "No such patient in the caller's clinic", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get_patient_adherence(
    State(state): State<AppState>,
    caller: Caller,
    Path(patient_id): Path<String>,
) -> ApiResult<Json<Adherence>> {
    let patient = patient::resolve(&state, &caller, &patient_id, SelfAccess::StaffOrSelf).await?;
    let ids = vec![patient.id.to_string()];
    let now = state.now();
    let mut all = adherence_of(&state, ids, now).await?;
    Ok(Json(
        all.remove(patient.id.as_str())
            .unwrap_or_else(|| adherence::summarise(&[], None)),
    ))
}

/// Adherence of several patients, for the roster and the endpoint above.
pub async fn adherence_of(
    state: &AppState,
    patient_ids: Vec<String>,
    now: DateTime<Utc>,
) -> ApiResult<BTreeMap<String, Adherence>> {
    let since = (now - TimeDelta::days(adherence::WINDOW_DAYS)).naive_utc();
    let ids = patient_ids.clone();
    let (mut outcomes, last) = state
        .db
        .run(move |conn| {
            let outcomes = store::recent_outcomes(conn, &ids, since)?;
            let last: Vec<(String, Option<chrono::NaiveDateTime>)> = check_ins::table
                .filter(check_ins::patient_id.eq_any(&ids))
                .group_by(check_ins::patient_id)
                .select((
                    check_ins::patient_id,
                    diesel::dsl::max(check_ins::completed_at),
                ))
                .load(conn)?;
            Ok((outcomes, last))
        })
        .await?;
    let last: BTreeMap<String, DateTime<Utc>> = last
        .into_iter()
        .filter_map(|(id, at)| at.map(|at| (id, utc(at))))
        .collect();
    let all: BTreeMap<String, Vec<bool>> = patient_ids
        .into_iter()
        .map(|id| {
            let list = outcomes.remove(&id).unwrap_or_default();
            (id, list)
        })
        .collect();
    Ok(all
        .into_iter()
        .map(|(id, list)| {
            let summary = adherence::summarise(&list, last.get(&id).copied());
            (id, summary)
        })
        .collect())
}
