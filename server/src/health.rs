//! Liveness and readiness probes for load balancers and orchestrators.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};

/// A probe's answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthStatus {
    /// `ok` (live) or `ready`.
    pub status: String,
}

/// Is the process up
///
/// Answers without touching the database.
#[utoipa::path(
    get,
    path = "/health/live",
    tag = "operations",
    operation_id = "get_liveness",
    security(()),
    responses((status = 200, description = "The process is running", body = HealthStatus))
)]
pub async fn get_liveness() -> Json<HealthStatus> {
    Json(HealthStatus {
        status: "ok".into(),
    })
}

/// Can the process serve requests
///
/// Ready when the database answers and its schema is current.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "operations",
    operation_id = "get_readiness",
    security(()),
    responses(
        (status = 200, description = "Ready", body = HealthStatus),
        (status = 503, description = "Database unreachable (`database_unavailable`) or migrations pending (`migrations_pending`)", body = ErrorBody),
    )
)]
pub async fn get_readiness(State(state): State<AppState>) -> ApiResult<Json<HealthStatus>> {
    let pending = state.db.pending_migrations().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check failed");
        ApiError::unavailable()
    })?;
    if !pending.is_empty() {
        return Err(ApiError::with_status(
            StatusCode::SERVICE_UNAVAILABLE,
            "migrations_pending",
            "The database schema is not current; run `companion migrate`.",
        ));
    }
    Ok(Json(HealthStatus {
        status: "ready".into(),
    }))
}
