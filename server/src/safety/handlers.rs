//! `GET /v1/me/crisis-resources`: what the app shows on a safety answer, fetched ahead of time so
//! that a phone without a connection can show it at once.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::app::AppState;
use crate::auth::extract::PatientCaller;
use crate::error::{ApiResult, ErrorBody, Refusal};

use super::crisis::CrisisResources;

/// How long the app may show its cached copy without asking again.
pub const CACHE_CONTROL: &str = "private, max-age=86400";

/// My crisis resources
///
/// The crisis lines and emergency number the app shows when a patient's answer signals risk:
/// the same list the check-in response carries on a safety answer. Never empty: the clinic's own
/// list if it set one, else the lines of the clinic's country (or, when it set none, the country
/// of its time zone, then of the patient's), else the clinic's number, "call your local emergency
/// number" and an international directory. Cache it (`Cache-Control: private, max-age=86400`) to
/// show offline; fetch again after a day or when the app starts.
#[utoipa::path(
    get,
    path = "/v1/me/crisis-resources",
    tag = "check-ins",
    operation_id = "get_my_crisis_resources",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The resources", body = CrisisResources,
         headers(("cache-control" = String, description = "`private, max-age=86400`"))),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not a patient", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get_my_crisis_resources(
    State(state): State<AppState>,
    patient: PatientCaller,
) -> ApiResult<impl IntoResponse> {
    let zones = state.zones.clone();
    let resources = state
        .read_as(patient, move |conn, caller| {
            Ok(
                super::store::for_patient(conn, caller.account_id.as_str(), &zones)?
                    .ok_or_else(|| Refusal::broken(&"patient without a clinic"))?,
            )
        })
        .await?;
    Ok(([(header::CACHE_CONTROL, CACHE_CONTROL)], Json(resources)))
}
