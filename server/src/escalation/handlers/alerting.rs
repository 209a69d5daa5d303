//! How a clinic's alerts reach its care team, over HTTP: a clinic's alert thresholds and
//! escalation policy, its readiness, and a staff member's on-call flag and working hours (use
//! cases in `escalation::alerting`).

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::extract::{Bearer, Staff};
use crate::error::{ApiResult, ErrorBody};
use crate::escalation::alerting;
use crate::escalation::policy::EscalationPolicy;
use crate::escalation::readiness::Readiness;
use crate::escalation::rules::Thresholds;
use crate::escalation::store::AlertingSetting;
use crate::escalation::working_hours;
use crate::http::extract::ApiJson;

/// On-call status.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OnCall {
    /// Whether the caller is on call (first tier of escalation).
    pub on_call: bool,
}

/// Mark myself on or off call
#[utoipa::path(
    put,
    path = "/v1/me/on-call",
    tag = "alerts",
    operation_id = "set_on_call",
    security(("bearer" = [])),
    request_body = OnCall,
    responses(
        (status = 200, description = "Updated", body = OnCall),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not clinic staff", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn set_on_call(
    State(state): State<AppState>,
    staff: Staff,
    ApiJson(body): ApiJson<OnCall>,
) -> ApiResult<Json<OnCall>> {
    let on_call = state
        .write_as(staff, move |conn, caller| {
            alerting::set_on_call(conn, caller, body.on_call)
        })
        .await?;
    Ok(Json(OnCall { on_call }))
}

/// A clinic's alert thresholds
#[utoipa::path(
    get,
    path = "/v1/clinics/{clinic_id}/alert-thresholds",
    tag = "alerts",
    operation_id = "get_alert_thresholds",
    security(("bearer" = [])),
    params(("clinic_id" = String, Path, description = "The clinic")),
    responses(
        (status = 200, description = "The thresholds in force", body = Thresholds),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not clinic staff", body = ErrorBody),
        (status = 404, description = "No such clinic, or not the caller's", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get_alert_thresholds(
    State(state): State<AppState>,
    staff: Staff,
    Path(clinic_id): Path<String>,
) -> ApiResult<Json<Thresholds>> {
    read_clinic_setting(&state, staff, clinic_id, AlertingSetting::AlertThresholds).await
}

/// Change a clinic's alert thresholds
///
/// Clinic admins only. Fields left out return to their defaults. Each value is range-checked.
#[utoipa::path(
    put,
    path = "/v1/clinics/{clinic_id}/alert-thresholds",
    tag = "alerts",
    operation_id = "set_alert_thresholds",
    security(("bearer" = [])),
    params(("clinic_id" = String, Path, description = "The clinic")),
    request_body = Thresholds,
    responses(
        (status = 200, description = "The thresholds now in force", body = Thresholds),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not a clinic admin", body = ErrorBody),
        (status = 404, description = "No such clinic, or not the caller's", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Values out of range, each named", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn set_alert_thresholds(
    State(state): State<AppState>,
    staff: Staff,
    Path(clinic_id): Path<String>,
    ApiJson(body): ApiJson<Thresholds>,
) -> ApiResult<Json<Thresholds>> {
    let problems = body.problems();
    update_clinic_setting(
        &state,
        staff,
        clinic_id,
        AlertingSetting::AlertThresholds,
        "change alert thresholds",
        problems,
        body,
    )
    .await
}

/// A clinic's escalation policy
#[utoipa::path(
    get,
    path = "/v1/clinics/{clinic_id}/escalation-policy",
    tag = "alerts",
    operation_id = "get_escalation_policy",
    security(("bearer" = [])),
    params(("clinic_id" = String, Path, description = "The clinic")),
    responses(
        (status = 200, description = "The policy in force", body = EscalationPolicy),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not clinic staff", body = ErrorBody),
        (status = 404, description = "No such clinic, or not the caller's", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get_escalation_policy(
    State(state): State<AppState>,
    staff: Staff,
    Path(clinic_id): Path<String>,
) -> ApiResult<Json<EscalationPolicy>> {
    read_clinic_setting(&state, staff, clinic_id, AlertingSetting::EscalationPolicy).await
}

/// Change a clinic's escalation policy
///
/// Clinic admins only. The tiers an unacknowledged alert climbs, each with an optional delay.
#[utoipa::path(
    put,
    path = "/v1/clinics/{clinic_id}/escalation-policy",
    tag = "alerts",
    operation_id = "set_escalation_policy",
    security(("bearer" = [])),
    params(("clinic_id" = String, Path, description = "The clinic")),
    request_body = EscalationPolicy,
    responses(
        (status = 200, description = "The policy now in force", body = EscalationPolicy),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not a clinic admin", body = ErrorBody),
        (status = 404, description = "No such clinic, or not the caller's", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid tiers, each named", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn set_escalation_policy(
    State(state): State<AppState>,
    staff: Staff,
    Path(clinic_id): Path<String>,
    ApiJson(body): ApiJson<EscalationPolicy>,
) -> ApiResult<Json<EscalationPolicy>> {
    let problems = body.problems();
    update_clinic_setting(
        &state,
        staff,
        clinic_id,
        AlertingSetting::EscalationPolicy,
        "change the escalation policy",
        problems,
        body,
    )
    .await
}

/// A clinic setting for its staff (also the care plan's route).
pub(crate) async fn read_clinic_setting<T>(
    state: &AppState,
    staff: Staff,
    clinic_id: String,
    setting: AlertingSetting,
) -> ApiResult<Json<T>>
where
    T: serde::de::DeserializeOwned + Default + Send + 'static,
{
    state
        .read_as(staff, move |conn, caller| {
            alerting::read_setting(conn, caller, &clinic_id, setting)
        })
        .await
        .map(Json)
}

/// Replaces a clinic setting (also the care plan's route).
pub(crate) async fn update_clinic_setting<T: Serialize + Send + 'static>(
    state: &AppState,
    staff: Staff,
    clinic_id: String,
    setting: AlertingSetting,
    what: &'static str,
    problems: std::collections::BTreeMap<String, String>,
    value: T,
) -> ApiResult<Json<T>> {
    let now = state.now();
    state
        .write_as(staff, move |conn, caller| {
            let change = alerting::AlertingChange {
                setting,
                what,
                value,
                problems,
            };
            alerting::update_setting(conn, caller, &clinic_id, change, now)
        })
        .await
        .map(Json)
}

/// What would leave a clinic's alerts unreachable
///
/// Nobody on call, tiers with nobody in them or nobody with an active device, staff without
/// devices, no country for the crisis resources: what the clinic can fix before an alert finds
/// nobody. Staff of the clinic and organisation admins.
#[utoipa::path(
    get,
    path = "/v1/clinics/{clinic_id}/readiness",
    tag = "alerts",
    operation_id = "get_clinic_readiness",
    security(("bearer" = [])),
    params(("clinic_id" = String, Path, description = "The clinic")),
    responses(
        (status = 200, description = "The clinic's readiness", body = Readiness),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Patients cannot read it", body = ErrorBody),
        (status = 404, description = "No such clinic, or not the caller's", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get_clinic_readiness(
    State(state): State<AppState>,
    bearer: Bearer,
    Path(clinic_id): Path<String>,
) -> ApiResult<Json<Readiness>> {
    let zones = state.zones.clone();
    let channels = state.channels();
    state
        .read_as(bearer, move |conn, caller| {
            alerting::clinic_readiness(conn, caller, &clinic_id, &zones, channels)
        })
        .await
        .map(Json)
}

/// Working hours as shown.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkingHoursView {
    /// The zone they are in (the account's).
    pub timezone: String,
    /// The days a shift starts on.
    pub days: Vec<working_hours::Day>,
    /// Start, `HH:MM` local.
    #[schema(example = "08:00")]
    pub start: String,
    /// End, `HH:MM` local (before `start` for a shift past midnight).
    #[schema(example = "18:00")]
    pub end: String,
}

/// New working hours.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetWorkingHours {
    /// The account's IANA zone, if it changes.
    #[schema(example = "America/Chicago")]
    pub timezone: Option<String>,
    /// The hours.
    #[serde(flatten)]
    pub hours: working_hours::WorkingHours,
}

fn hours_view(timezone: String, hours: &working_hours::WorkingHours) -> WorkingHoursView {
    WorkingHoursView {
        timezone,
        days: hours.days.clone(),
        start: hours.start.to_string(),
        end: hours.end.to_string(),
    }
}

/// My working hours
///
/// When routine alerts reach my phone: medium and low alerts (and high ones while I am not on
/// call) wait for the start of my next shift; urgent alerts reach me at any hour. Unset: Monday
/// to Friday, 08:00 to 18:00 in my zone.
#[utoipa::path(
    get,
    path = "/v1/me/working-hours",
    tag = "alerts",
    operation_id = "get_my_working_hours",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The hours in force", body = WorkingHoursView),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not clinic staff", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get_my_working_hours(
    State(state): State<AppState>,
    staff: Staff,
) -> ApiResult<Json<WorkingHoursView>> {
    let (timezone, hours) = state.read_as(staff, alerting::working_hours).await?;
    Ok(Json(hours_view(timezone, &hours)))
}

/// Set my working hours
#[utoipa::path(
    put,
    path = "/v1/me/working-hours",
    tag = "alerts",
    operation_id = "set_my_working_hours",
    security(("bearer" = [])),
    request_body = SetWorkingHours,
    responses(
        (status = 200, description = "The hours now in force", body = WorkingHoursView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not clinic staff", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields, each named", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn set_my_working_hours(
    State(state): State<AppState>,
    staff: Staff,
    ApiJson(body): ApiJson<SetWorkingHours>,
) -> ApiResult<Json<WorkingHoursView>> {
    let now = state.now();
    let hours = body.hours.clone();
    let zone = state
        .write_as(staff, move |conn, caller| {
            alerting::set_working_hours(conn, caller, &hours, body.timezone.as_deref(), now)
        })
        .await?;
    Ok(Json(hours_view(zone, &body.hours)))
}
