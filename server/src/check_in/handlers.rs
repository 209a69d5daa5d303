//! `POST /v1/check-ins`, check-in history and trends.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::app::AppState;
use crate::auth::extract::{Bearer, PatientCaller, Staff};
use crate::check_in::store::HistoryFilter;
use crate::check_in::submission::Submission;
use crate::check_in::trends::{DailyMood, InstrumentTrend};
use crate::check_in::use_cases::{self, Safety, Stored};
pub use crate::check_in::view::{CheckIn, SafetyNotice, ScoreView, view};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::escalation::decide::CareTeam;
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::pagination::{Page, PageParams, Paginated, time_key};

/// Submit a check-in
///
/// Scores the answers on the server. Safe to repeat: the same `id` with the same content returns
/// the stored check-in (200, same body), and so do identical answers re-sent under a new `id`
/// within 10 minutes of the first, completed within 10 minutes of it by the device's clock (200
/// with the first check-in: its `id` is the first one's; nobody is paged again). A phone that
/// was offline and sends the same answers for several days sends them with different completion
/// times: each is stored.
/// The same `id` with different content is a 409, with one exception: different answers that
/// carry a higher PHQ-9 item 9 answer than the stored ones are stored as an amendment of the
/// check-in (200, `amended_at` set, the replaced answers in `earlier_versions`) and raise the
/// safety signal. When item 9 is answered 1 or more the response carries crisis resources, and
/// such a check-in is never refused for its form: other items missing, out of range or unknown,
/// a malformed `id`, `prompt_id`, `instrument_version` or `completed_at` (then the time of
/// receipt), or fields this document does not name, store it as `incomplete` (no score, its
/// `problems` listed; complete answers keep their score) with 201 and the urgent alert raised.
/// Without a safety answer, invalid answers are a 422.
///
/// When PHQ-9 item 9 is answered 1 or more, or a home blood pressure is dangerous, the response
/// carries `safety`: the crisis resources, where the care team stands (`care_team`: `reached`,
/// `trying` or `unreachable`) and a message in the same words. The server waits a few seconds
/// for the first delivery outcome before answering, so that most answers say `reached` or
/// `unreachable`; read the check-in again for the current value.
#[utoipa::path(
    post,
    path = "/v1/check-ins",
    tag = "check-ins",
    operation_id = "create_check_in",
    security(("bearer" = [])),
    request_body = Submission,
    responses(
        (status = 201, description = "Stored: `status` is `complete`, or `incomplete` for a safety answer kept with problems (listed in `problems`; no score)", body = CheckIn),
        (status = 200, description = "Already stored: a replay, identical answers re-sent under a new id within 10 minutes and completed within 10 minutes of the first (the first check-in), or an amendment (the same id with a higher item 9 answer; `amended_at` set)", body = CheckIn),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not a patient", body = ErrorBody),
        (status = 409, description = "This id was already used for different content without a higher safety answer (`check_in_conflict`)", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields and no safety answer; each answer problem is named `answers.<item id>`", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn create_check_in(
    State(state): State<AppState>,
    patient: PatientCaller,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult<(StatusCode, Json<CheckIn>)> {
    let now = state.now();
    let parsed = match use_cases::read_submission(body, &state.catalogue, now) {
        Ok(parsed) => parsed,
        // Answered after the session check, so that a 401 comes before a 422.
        Err(refused) => {
            return state
                .read_as(patient, move |_, _| Err(refused.into()))
                .await;
        }
    };
    let zones = state.zones.clone();
    // One unit of work: the session check, the check-in, the alerts its answers raise, the jobs
    // that notify the care team and the crisis notice, on one connection in one transaction.
    let outcome = state
        .write_as(patient, move |conn, caller| {
            use_cases::submit(conn, caller, parsed, &zones)
        })
        .await?;
    if outcome.enqueued {
        state.jobs_enqueued();
    }
    let (status, stored, safety) = match outcome.stored {
        Stored::Created(row, safety) => (StatusCode::CREATED, row, safety),
        Stored::Replayed(row, safety) | Stored::Amended(row, safety) => {
            (StatusCode::OK, row, safety)
        }
    };
    let safety = match (safety, stored.safety_alert_id.clone()) {
        (Some(safety), Some(alert)) if safety.care_team == CareTeam::Trying => {
            let care_team = crate::escalation::wait::wait_for_outcome(&state, alert).await;
            Some(Safety {
                care_team,
                ..safety
            })
        }
        (safety, _) => safety,
    };
    let notice = safety.map(|s| crate::check_in::view::notice(&stored, s.care_team, s.resources));
    Ok((status, Json(view(&stored, &state.catalogue, notice))))
}

/// One of my check-ins
///
/// With `safety` (for a safety answer or a dangerous blood pressure) showing where the care team
/// stands now.
#[utoipa::path(
    get,
    path = "/v1/me/check-ins/{check_in_id}",
    tag = "check-ins",
    operation_id = "get_my_check_in",
    security(("bearer" = [])),
    params(("check_in_id" = String, Path, description = "The check-in's id (the app's UUID)")),
    responses(
        (status = 200, description = "The check-in", body = CheckIn),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not a patient", body = ErrorBody),
        (status = 404, description = "No such check-in of the caller's", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get_my_check_in(
    State(state): State<AppState>,
    patient: PatientCaller,
    Path(check_in_id): Path<String>,
) -> ApiResult<Json<CheckIn>> {
    let zones = state.zones.clone();
    let (row, safety) = state
        .read_as(patient, move |conn, caller| {
            use_cases::own(conn, caller, &check_in_id, &zones)
        })
        .await?;
    let notice = safety.map(|s| crate::check_in::view::notice(&row, s.care_team, s.resources));
    Ok(Json(view(&row, &state.catalogue, notice)))
}

/// History filters and paging.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Only this instrument (catalogue key).
    #[param(value_type = Option<crate::instrument::catalogue::InstrumentKey>)]
    pub instrument: Option<String>,
    /// Completed at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Completed before this instant.
    pub to: Option<DateTime<Utc>>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(min_length = 1, pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

impl HistoryParams {
    fn parse(&self, state: &AppState) -> ApiResult<(Page, HistoryFilter)> {
        let page = PageParams {
            limit: self.limit,
            cursor: self.cursor.clone(),
        }
        .parse()?;
        let before = page.after_time_key()?;
        if let Some(instrument) = &self.instrument
            && state.catalogue.find(instrument, None).is_none()
        {
            return Err(ApiError::invalid_field(
                "instrument",
                "is not in the catalogue",
            ));
        }
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from >= to
        {
            return Err(ApiError::invalid_field("to", "must be after from"));
        }
        Ok((
            page,
            HistoryFilter {
                instrument: self.instrument.clone(),
                from: self.from.map(|t| t.naive_utc()),
                to: self.to.map(|t| t.naive_utc()),
                before,
            },
        ))
    }
}

async fn history(
    state: &AppState,
    access: impl Into<Bearer>,
    raw_patient: Option<String>,
    params: &HistoryParams,
) -> ApiResult<Json<Paginated<CheckIn>>> {
    let (page, filter) = params.parse(state)?;
    let limit = i64::from(page.limit) + 1;
    let now = state.now();
    let zones = state.zones.clone();
    let rows = state
        .read_as(access, move |conn, caller| {
            let rows =
                use_cases::history(conn, caller, raw_patient.as_deref(), &filter, limit, now)?;
            Ok(use_cases::with_safety(conn, rows, &zones)?)
        })
        .await?;
    let items: Vec<CheckIn> = rows
        .into_iter()
        .map(|(row, safety)| {
            let notice =
                safety.map(|s| crate::check_in::view::notice(&row, s.care_team, s.resources));
            view(&row, &state.catalogue, notice)
        })
        .collect();
    Ok(Json(Paginated::from_rows(items, &page, |c| {
        time_key(c.completed_at, &c.id)
    })))
}

/// My check-ins
///
/// Newest first.
#[utoipa::path(
    get,
    path = "/v1/me/check-ins",
    tag = "check-ins",
    operation_id = "list_my_check_ins",
    security(("bearer" = [])),
    params(HistoryParams),
    responses(
        (status = 200, description = "A page of check-ins, newest first", body = Paginated<CheckIn>),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not a patient", body = ErrorBody),
        (status = 422, description = "Invalid query parameters", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list_my_check_ins(
    State(state): State<AppState>,
    patient: PatientCaller,
    ApiQuery(params): ApiQuery<HistoryParams>,
) -> ApiResult<Json<Paginated<CheckIn>>> {
    history(&state, patient, None, &params).await
}

/// A patient's check-ins
///
/// Newest first. Staff of the patient's clinic only; every read is audited.
#[utoipa::path(
    get,
    path = "/v1/patients/{patient_id}/check-ins",
    tag = "check-ins",
    operation_id = "list_patient_check_ins",
    security(("bearer" = [])),
    params(("patient_id" = String, Path, description = "The patient"), HistoryParams),
    responses(
        (status = 200, description = "A page of check-ins, newest first", body = Paginated<CheckIn>),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not clinic staff", body = ErrorBody),
        (status = 404, description = "No such patient in the caller's clinic", body = ErrorBody),
        (status = 422, description = "Invalid query parameters", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list_patient_check_ins(
    State(state): State<AppState>,
    staff: Staff,
    Path(patient_id): Path<String>,
    ApiQuery(params): ApiQuery<HistoryParams>,
) -> ApiResult<Json<Paginated<CheckIn>>> {
    history(&state, staff, Some(patient_id), &params).await
}

/// Trend window.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TrendParams {
    /// Days of daily mood to return, 1 to 365 (default 90).
    #[param(minimum = 1, maximum = 365)]
    pub days: Option<u32>,
}

/// A patient's trends.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Trends {
    /// The patient.
    pub patient_id: String,
    /// The zone the daily series uses.
    pub timezone: String,
    /// Start of the daily series.
    pub from: DateTime<Utc>,
    /// End of the daily series (now).
    pub to: DateTime<Utc>,
    /// Mean mood per local day, oldest first; days without answers are absent.
    pub daily_mood: Vec<DailyMood>,
    /// Per scored instrument (PHQ-9, GAD-7, PHQ-2) answered at least once in the last year.
    pub instruments: Vec<InstrumentTrend>,
}

/// A patient's trends
///
/// The daily mood series (means per local day) and, per instrument, latest, first and baseline
/// scores with response, remission and reliable-deterioration flags. Staff of the patient's
/// clinic (audited), or the patient.
#[utoipa::path(
    get,
    path = "/v1/patients/{patient_id}/trends",
    tag = "check-ins",
    operation_id = "get_patient_trends",
    security(("bearer" = [])),
    params(("patient_id" = String, Path, description = "The patient"), TrendParams),
    responses(
        (status = 200, description = "Trends", body = Trends),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Organisation admins read no patient data", body = ErrorBody),
        (status = 404, description = "No such patient visible to the caller", body = ErrorBody),
        (status = 422, description = "Invalid query parameters", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get_patient_trends(
    State(state): State<AppState>,
    bearer: Bearer,
    Path(patient_id): Path<String>,
    ApiQuery(params): ApiQuery<TrendParams>,
) -> ApiResult<Json<Trends>> {
    let days = params.days.unwrap_or(90);
    let now = state.now();
    let trends = state
        .read_as(bearer, move |conn, caller| {
            use_cases::trends_of(conn, caller, &patient_id, days, now)
        })
        .await?;
    Ok(Json(Trends {
        patient_id: trends.patient.id.to_string(),
        timezone: trends.timezone.name().to_owned(),
        from: trends.from,
        to: now,
        daily_mood: trends.daily_mood,
        instruments: trends.instruments,
    }))
}
