//! Treatment-session endpoints.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::AppState;
use crate::auth::extract::{Bearer, PatientCaller, Staff};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::pagination::{PageParams, Paginated, time_key};
use crate::time::utc;
use crate::treatment::model::{Modality, Observations, SessionStatus};
use crate::treatment::store::{SessionRow, When};
use crate::treatment::use_cases;

/// A treatment session.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TreatmentSession {
    /// Id.
    pub id: String,
    /// The patient.
    pub patient_id: String,
    /// The clinic.
    pub clinic_id: String,
    /// How the treatment is given.
    pub modality: Modality,
    /// Where it stands.
    pub status: SessionStatus,
    /// When it is (or was) planned.
    pub scheduled_at: DateTime<Utc>,
    /// In-clinic observations; shown to staff only (null for patients).
    pub observations: Option<Observations>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

fn view(row: &SessionRow, for_staff: bool) -> ApiResult<TreatmentSession> {
    let modality = Modality::parse(&row.modality)
        .ok_or_else(|| ApiError::internal(&"stored modality is not known"))?;
    let status = SessionStatus::parse(&row.status)
        .ok_or_else(|| ApiError::internal(&"stored status is not known"))?;
    let observations = match (&row.observations, for_staff) {
        (Some(text), true) => serde_json::from_str(text).ok(),
        _ => None,
    };
    Ok(TreatmentSession {
        id: row.id.clone(),
        patient_id: row.patient_id.clone(),
        clinic_id: row.clinic_id.clone(),
        modality,
        status,
        scheduled_at: utc(row.scheduled_at),
        observations,
        created_at: utc(row.created_at),
        updated_at: utc(row.updated_at),
    })
}

fn check_time(at: DateTime<Utc>, now: DateTime<Utc>, problems: &mut BTreeMap<String, String>) {
    crate::treatment::model::check_schedule_time(at, now, problems);
}

fn check_observations(
    observations: Option<&Observations>,
    problems: &mut BTreeMap<String, String>,
) {
    if let Some(observations) = observations {
        problems.extend(observations.problems());
    }
}

/// A new session.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// How the treatment is given.
    pub modality: Modality,
    /// When it is planned.
    pub scheduled_at: DateTime<Utc>,
    /// Observations, when recording a session after the fact.
    pub observations: Option<Observations>,
}

/// Schedule a treatment session
#[utoipa::path(
    post,
    path = "/v1/patients/{patient_id}/sessions",
    tag = "sessions",
    operation_id = "create_session",
    security(("bearer" = [])),
    params(("patient_id" = String, Path, description = "The patient")),
    request_body = CreateSession,
    responses(
        (status = 201, description = "Scheduled", body = TreatmentSession),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not clinic staff", body = ErrorBody),
        (status = 404, description = "No such patient in the caller's clinic", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn create_session(
    State(state): State<AppState>,
    staff: Staff,
    Path(patient_id): Path<String>,
    ApiJson(body): ApiJson<CreateSession>,
) -> ApiResult<(StatusCode, Json<TreatmentSession>)> {
    let (now, horizon) = (state.now(), state.config.prompts.horizon);
    let mut problems = BTreeMap::new();
    check_time(body.scheduled_at, now, &mut problems);
    check_observations(body.observations.as_ref(), &mut problems);
    let new = use_cases::NewSession {
        modality: body.modality,
        scheduled_at: body.scheduled_at,
        observations: body.observations,
        problems,
    };
    let row = state
        .write_as(staff, move |conn, caller| {
            use_cases::schedule(conn, caller, &patient_id, new, now, horizon)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(view(&row, true)?)))
}

/// A change to a session.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct UpdateSession {
    /// Move it (scheduled sessions only).
    #[schema(nullable = false)]
    pub scheduled_at: Option<DateTime<Utc>>,
    /// `completed` records that it took place (cancel with DELETE).
    #[schema(nullable = false)]
    pub status: Option<SessionStatus>,
    /// Replace the observations (scheduled or completed sessions).
    #[schema(nullable = false)]
    pub observations: Option<Observations>,
}

/// Move, complete or annotate a session
#[utoipa::path(
    patch,
    path = "/v1/sessions/{session_id}",
    tag = "sessions",
    operation_id = "update_session",
    security(("bearer" = [])),
    params(("session_id" = String, Path, description = "The session")),
    request_body = UpdateSession,
    responses(
        (status = 200, description = "Updated", body = TreatmentSession),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not clinic staff", body = ErrorBody),
        (status = 404, description = "No such session in the caller's clinic", body = ErrorBody),
        (status = 409, description = "The session is cancelled (`session_cancelled`) or completed (`session_completed`)", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn update_session(
    State(state): State<AppState>,
    staff: Staff,
    Path(session_id): Path<String>,
    ApiJson(body): ApiJson<UpdateSession>,
) -> ApiResult<Json<TreatmentSession>> {
    let (now, horizon) = (state.now(), state.config.prompts.horizon);
    let mut problems = BTreeMap::new();
    if let Some(at) = body.scheduled_at {
        check_time(at, now, &mut problems);
    }
    if matches!(
        body.status,
        Some(SessionStatus::Scheduled | SessionStatus::Cancelled)
    ) {
        problems.insert(
            "status".into(),
            "may only be set to completed (cancel with DELETE)".into(),
        );
    }
    check_observations(body.observations.as_ref(), &mut problems);
    if body.scheduled_at.is_none() && body.status.is_none() && body.observations.is_none() {
        problems.insert("body".into(), "names nothing to change".into());
    }
    let change = use_cases::SessionChange {
        scheduled_at: body.scheduled_at,
        complete: body.status.is_some(),
        observations: body.observations,
        problems,
    };
    let row = state
        .write_as(staff, move |conn, caller| {
            use_cases::change(conn, caller, &session_id, change, now, horizon)
        })
        .await?;
    Ok(Json(view(&row, true)?))
}

/// Cancel a session
///
/// Cancelling again is harmless; a completed session cannot be cancelled.
#[utoipa::path(
    delete,
    path = "/v1/sessions/{session_id}",
    tag = "sessions",
    operation_id = "cancel_session",
    security(("bearer" = [])),
    params(("session_id" = String, Path, description = "The session")),
    responses(
        (status = 200, description = "Cancelled", body = TreatmentSession),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not clinic staff", body = ErrorBody),
        (status = 404, description = "No such session in the caller's clinic", body = ErrorBody),
        (status = 409, description = "The session has taken place (`session_completed`)", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn cancel_session(
    State(state): State<AppState>,
    staff: Staff,
    Path(session_id): Path<String>,
) -> ApiResult<Json<TreatmentSession>> {
    let (now, horizon) = (state.now(), state.config.prompts.horizon);
    let row = state
        .write_as(staff, move |conn, caller| {
            use_cases::cancel(conn, caller, &session_id, now, horizon)
        })
        .await?;
    Ok(Json(view(&row, true)?))
}

/// Which sessions to list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SessionListParams {
    /// `upcoming` (from now on), `past`, or `all` (default).
    pub when: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(min_length = 1, pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

async fn list(
    state: &AppState,
    access: impl Into<Bearer>,
    raw_patient: Option<String>,
    params: SessionListParams,
) -> ApiResult<Json<Paginated<TreatmentSession>>> {
    let page = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    }
    .parse()?;
    let after = page.after_time_key()?;
    let now = state.now();
    let when = match params.when.as_deref() {
        None | Some("all") => When::All,
        Some("upcoming") => When::Upcoming(now.naive_utc()),
        Some("past") => When::Past(now.naive_utc()),
        Some(_) => {
            return Err(ApiError::invalid_field(
                "when",
                "must be upcoming, past or all",
            ));
        }
    };
    let limit = i64::from(page.limit) + 1;
    let for_staff = raw_patient.is_some();
    let rows = state
        .read_as(access, move |conn, caller| {
            use_cases::list(
                conn,
                caller,
                raw_patient.as_deref(),
                when,
                after,
                limit,
                now,
            )
        })
        .await?;
    let items = rows
        .iter()
        .map(|r| view(r, for_staff))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(Paginated::from_rows(items, &page, |s| {
        time_key(s.scheduled_at, &s.id)
    })))
}

/// A patient's sessions
///
/// In time order. Staff of the patient's clinic; every read is audited.
#[utoipa::path(
    get,
    path = "/v1/patients/{patient_id}/sessions",
    tag = "sessions",
    operation_id = "list_patient_sessions",
    security(("bearer" = [])),
    params(("patient_id" = String, Path, description = "The patient"), SessionListParams),
    responses(
        (status = 200, description = "A page of sessions", body = Paginated<TreatmentSession>),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not clinic staff", body = ErrorBody),
        (status = 404, description = "No such patient in the caller's clinic", body = ErrorBody),
        (status = 422, description = "Invalid query parameters", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list_patient_sessions(
    State(state): State<AppState>,
    staff: Staff,
    Path(patient_id): Path<String>,
    ApiQuery(params): ApiQuery<SessionListParams>,
) -> ApiResult<Json<Paginated<TreatmentSession>>> {
    list(&state, staff, Some(patient_id), params).await
}

/// My sessions
///
/// In time order; `?when=upcoming` for what is next.
#[utoipa::path(
    get,
    path = "/v1/me/sessions",
    tag = "sessions",
    operation_id = "list_my_sessions",
    security(("bearer" = [])),
    params(SessionListParams),
    responses(
        (status = 200, description = "A page of sessions (without staff observations)", body = Paginated<TreatmentSession>),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not a patient", body = ErrorBody),
        (status = 422, description = "Invalid query parameters", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list_my_sessions(
    State(state): State<AppState>,
    patient: PatientCaller,
    ApiQuery(params): ApiQuery<SessionListParams>,
) -> ApiResult<Json<Paginated<TreatmentSession>>> {
    list(&state, patient, None, params).await
}
