//! The operations endpoints: liveness and readiness probes for load balancers and orchestrators,
//! and the Prometheus metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
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

/// Prometheus metrics
///
/// Text exposition format. When `COMPANION_METRICS_TOKEN` is set, send it as a bearer token;
/// otherwise the endpoint is open and should be reachable only from the monitoring network.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "get_metrics",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Metrics in the Prometheus text format", content_type = "text/plain; version=0.0.4", body = String),
        (status = 401, description = "`COMPANION_METRICS_TOKEN` is set and was not sent", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get_metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(expected) = &state.config.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        let same: bool =
            subtle::ConstantTimeEq::ct_eq(given.as_bytes(), expected.expose().as_bytes()).into();
        if !same {
            return ApiError::with_status(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "Send the metrics token as a bearer token.",
            )
            .into_response();
        }
    }
    let now = state.now();
    let shared = match state
        .db
        .run(move |conn| crate::metrics::read_shared(conn, now))
        .await
    {
        Ok(shared) => shared,
        Err(e) => return ApiError::from(e).into_response(),
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&shared),
    )
        .into_response()
}
