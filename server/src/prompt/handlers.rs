//! HTTP: a patient's open prompts and preferences; care plans (clinic default and per-patient
//! override); a patient's prompts and adherence for staff.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::extract::{Bearer, PatientCaller, Staff};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::ApiJson;
use crate::time::utc;

use super::adherence::Adherence;
use super::local_time::DailySpan;
use super::plan::CarePlan;
use super::store::PromptRow;
use super::use_cases;
pub use super::use_cases::{PatientCarePlan, PlanSource, Preferences};

/// A check-in prompt.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Prompt {
    /// Id; send it as `prompt_id` with the check-in that answers it.
    pub id: String,
    /// The instrument to answer (catalogue key).
    #[schema(value_type = crate::instrument::catalogue::InstrumentKey)]
    pub instrument: String,
    /// `scheduled`, `sent`, `reminded`, `completed`, `expired` or `cancelled`.
    pub status: String,
    /// The care-plan rule that planned it, or `positive_screen_follow_up`: the PHQ-9 a positive
    /// PHQ-2 asks for within 24 hours.
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
    patient: PatientCaller,
) -> ApiResult<Json<PromptList>> {
    let now = state.now();
    let rows = state
        .read_as(patient, move |conn, caller| {
            use_cases::open_prompts(conn, caller, now)
        })
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
    bearer: Bearer,
    Path(patient_id): Path<String>,
) -> ApiResult<Json<PromptList>> {
    let (now, horizon) = (state.now(), state.config.prompts.horizon);
    let rows = state
        .read_as(bearer, move |conn, caller| {
            use_cases::patient_prompts(conn, caller, &patient_id, now, horizon)
        })
        .await?;
    Ok(Json(PromptList {
        items: rows.into_iter().map(Prompt::from).collect(),
    }))
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
    patient: PatientCaller,
) -> ApiResult<Json<Preferences>> {
    state
        .read_as(patient, use_cases::preferences)
        .await
        .map(Json)
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
    patient: PatientCaller,
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
    let (now, horizon) = (state.now(), state.config.prompts.horizon);
    let change = use_cases::PreferenceChange {
        timezone,
        check_in_window: body.check_in_window,
        quiet_hours: body.quiet_hours,
    };
    state
        .write_as(patient, move |conn, caller| {
            use_cases::set_preferences(conn, caller, change, now, horizon)
        })
        .await
        .map(Json)
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
    staff: Staff,
    Path(patient_id): Path<String>,
) -> ApiResult<Json<PatientCarePlan>> {
    state
        .read_as(staff, move |conn, caller| {
            use_cases::patient_care_plan(conn, caller, &patient_id)
        })
        .await
        .map(Json)
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
    staff: Staff,
    Path(patient_id): Path<String>,
    ApiJson(body): ApiJson<CarePlan>,
) -> ApiResult<Json<PatientCarePlan>> {
    let problems = body.problems(|key| state.catalogue.find(key, None).is_some());
    save_patient_plan(&state, staff, patient_id, Some((body, problems))).await
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
    staff: Staff,
    Path(patient_id): Path<String>,
) -> ApiResult<Json<PatientCarePlan>> {
    save_patient_plan(&state, staff, patient_id, None).await
}

async fn save_patient_plan(
    state: &AppState,
    staff: Staff,
    patient_id: String,
    plan: Option<(CarePlan, BTreeMap<String, String>)>,
) -> ApiResult<Json<PatientCarePlan>> {
    let (now, horizon) = (state.now(), state.config.prompts.horizon);
    state
        .write_as(staff, move |conn, caller| {
            use_cases::save_patient_plan(conn, caller, &patient_id, plan, now, horizon)
        })
        .await
        .map(Json)
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
    staff: Staff,
    Path(clinic_id): Path<String>,
) -> ApiResult<Json<CarePlan>> {
    state
        .read_as(staff, move |conn, caller| {
            use_cases::clinic_care_plan(conn, caller, &clinic_id)
        })
        .await
        .map(Json)
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
    staff: Staff,
    Path(clinic_id): Path<String>,
    ApiJson(body): ApiJson<CarePlan>,
) -> ApiResult<Json<CarePlan>> {
    let problems = body.problems(|key| state.catalogue.find(key, None).is_some());
    let now = state.now();
    let plan = state
        .write_as(staff, move |conn, caller| {
            use_cases::set_clinic_care_plan(conn, caller, &clinic_id, body, problems, now)
        })
        .await?;
    state.jobs_enqueued();
    Ok(Json(plan))
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
    bearer: Bearer,
    Path(patient_id): Path<String>,
) -> ApiResult<Json<Adherence>> {
    let now = state.now();
    state
        .read_as(bearer, move |conn, caller| {
            use_cases::patient_adherence(conn, caller, &patient_id, now)
        })
        .await
        .map(Json)
}
