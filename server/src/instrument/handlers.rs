//! `GET /v1/instruments`.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::extract::Bearer;
use crate::error::{ApiResult, ErrorBody};
use crate::instrument::catalogue::Instrument;

/// The current instrument definitions.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstrumentList {
    /// One entry per instrument: its current version.
    pub items: Vec<Instrument>,
}

/// The instrument catalogue
///
/// Current versions of every instrument, complete enough to render a form from: items, prompt
/// text, answer options with their values, and LOINC codes where they exist.
#[utoipa::path(
    get,
    path = "/v1/instruments",
    tag = "check-ins",
    operation_id = "list_instruments",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The catalogue", body = InstrumentList),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list_instruments(
    State(state): State<AppState>,
    bearer: Bearer,
) -> ApiResult<Json<InstrumentList>> {
    // The session still has to stand; the catalogue itself is in memory.
    state.read_as(bearer, |_, _| Ok(())).await?;
    Ok(Json(InstrumentList {
        items: state.catalogue.current().into_iter().cloned().collect(),
    }))
}
