//! Webhook endpoints over HTTP: add, rotate the secret, remove (use cases and delivery in
//! `escalation::webhooks`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::extract::Admin;
use crate::error::{ApiResult, ErrorBody};
use crate::escalation::webhooks;
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::pagination::{PageParams, Paginated};
use crate::time::utc;

/// A new endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where to POST: an http or https URL with a host name (or IPv4 address), an optional port
    /// and path, and no query, fragment or credentials.
    #[schema(
        format = "uri",
        max_length = 2048,
        example = "https://hooks.example.org/companion",
        pattern = r"^https?://[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*)?$"
    )]
    pub url: String,
}

/// An endpoint. `secret` appears only when it is created or rotated.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Webhook {
    /// Id.
    pub id: String,
    /// Where deliveries go.
    pub url: String,
    /// The signing secret (shown once).
    pub secret: Option<String>,
    /// Whether deliveries are made.
    pub active: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// Add a signed webhook endpoint
///
/// Every alert notification (and each escalation) is also POSTed here, signed with the secret in
/// this response (`Companion-Signature: v1=HMAC-SHA256(secret, "<Companion-Timestamp>.<body>")`).
#[utoipa::path(
    post,
    path = "/v1/clinics/{clinic_id}/webhooks",
    tag = "alerts",
    operation_id = "create_webhook",
    security(("bearer" = [])),
    params(("clinic_id" = String, Path, description = "The clinic")),
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "Created; the secret is shown only now", body = Webhook),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not a clinic admin", body = ErrorBody),
        (status = 404, description = "No such clinic, or not the caller's", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Not an http(s) URL (https in production), or a host webhooks may not reach (a local or internal address or name)", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn create_webhook(
    State(state): State<AppState>,
    admin: Admin,
    Path(clinic_id): Path<String>,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> ApiResult<(StatusCode, Json<Webhook>)> {
    let now = state.now();
    let policy = state.outbound.policy.clone();
    let row = state
        .write_as(admin, move |conn, caller| {
            webhooks::create_endpoint(conn, caller, &policy, &clinic_id, &body.url, now)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Webhook {
            id: row.id,
            url: row.url,
            secret: Some(row.secret),
            active: true,
            created_at: utc(row.created_at),
        }),
    ))
}

/// Rotate a webhook's signing secret
///
/// Returns the new secret. For 24 hours deliveries carry signatures with both secrets.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{webhook_id}/rotate-secret",
    tag = "alerts",
    operation_id = "rotate_webhook_secret",
    security(("bearer" = [])),
    params(("webhook_id" = String, Path, description = "The endpoint")),
    responses(
        (status = 200, description = "The new secret", body = Webhook),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 404, description = "No such endpoint of the caller's clinic", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn rotate_webhook_secret(
    State(state): State<AppState>,
    admin: Admin,
    Path(webhook_id): Path<String>,
) -> ApiResult<Json<Webhook>> {
    let now = state.now();
    let row = state
        .write_as(admin, move |conn, caller| {
            webhooks::rotate_secret(conn, caller, &webhook_id, now)
        })
        .await?;
    Ok(Json(Webhook {
        id: row.id,
        url: row.url,
        secret: Some(row.secret),
        active: row.active,
        created_at: utc(row.created_at),
    }))
}

/// Remove a webhook endpoint
#[utoipa::path(
    delete,
    path = "/v1/webhooks/{webhook_id}",
    tag = "alerts",
    operation_id = "delete_webhook",
    security(("bearer" = [])),
    params(("webhook_id" = String, Path, description = "The endpoint")),
    responses(
        (status = 204, description = "Removed; nothing more is sent to it"),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 404, description = "No such endpoint of the caller's clinic", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn delete_webhook(
    State(state): State<AppState>,
    admin: Admin,
    Path(webhook_id): Path<String>,
) -> ApiResult<StatusCode> {
    let now = state.now();
    state
        .write_as(admin, move |conn, caller| {
            webhooks::deactivate(conn, caller, &webhook_id, now)
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A configured endpoint, as listed: its secret is never shown again.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookEndpoint {
    /// Id.
    pub id: String,
    /// Where deliveries go.
    pub url: String,
    /// Whether deliveries are made.
    pub active: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// A clinic's webhook endpoints
///
/// The active endpoints, oldest first, without their secrets (shown only when created or
/// rotated). Clinic admins of the clinic.
#[utoipa::path(
    get,
    path = "/v1/clinics/{clinic_id}/webhooks",
    tag = "alerts",
    operation_id = "list_webhooks",
    security(("bearer" = [])),
    params(("clinic_id" = String, Path, description = "The clinic"), PageParams),
    responses(
        (status = 200, description = "A page of endpoints", body = Paginated<WebhookEndpoint>),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 404, description = "No such clinic, or not the caller's", body = ErrorBody),
        (status = 422, description = "Invalid query parameters", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list_webhooks(
    State(state): State<AppState>,
    admin: Admin,
    Path(clinic_id): Path<String>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<Json<Paginated<WebhookEndpoint>>> {
    let page = params.parse()?;
    let (after, limit) = (page.after.clone(), i64::from(page.limit) + 1);
    let now = state.now();
    let rows = state
        .read_as(admin, move |conn, caller| {
            webhooks::list_endpoints(conn, caller, &clinic_id, after.as_deref(), limit, now)
        })
        .await?;
    let items = rows
        .into_iter()
        .map(|row| WebhookEndpoint {
            id: row.id,
            url: row.url,
            active: row.active,
            created_at: utc(row.created_at),
        })
        .collect();
    Ok(Json(Paginated::from_rows(items, &page, |w| w.id.clone())))
}
