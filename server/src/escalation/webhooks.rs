//! Signed webhooks: a clinic points endpoints at its EHR or paging tool, and every alert
//! notification is also POSTed there, retried with backoff until accepted.
//!
//! Signature scheme: `Companion-Timestamp: <unix seconds>` and
//! `Companion-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`. During a secret
//! rotation the header carries a second `v1=` made with the previous secret, for 24 hours, so a
//! receiver can switch secrets without missing a delivery. Receivers should refuse timestamps
//! more than five minutes old. Bodies carry opaque ids and the severity, never clinical details;
//! `type` is `alert.opened`, `alert.reopened` (a new urgent or high signal after an
//! acknowledgement) or `alert.escalated`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine as _;
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use companion_schema::ids::ClinicId;
use companion_schema::schema::webhook_endpoints;
use diesel::prelude::*;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;

use crate::app::{App, AppState};
use crate::audit::{self, AuditEntry};
use crate::auth::extract::{Admin, Caller};
use crate::db::DbConnection;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::ApiJson;
use crate::jobs::runner::JobResult;
use crate::jobs::store::Claimed;
use crate::jobs::{self, NewJob};
use crate::time::utc;

/// The job kind.
pub const DELIVER: &str = "webhook.deliver";
const ATTEMPTS: i32 = 12;
const ROTATION_OVERLAP: TimeDelta = TimeDelta::hours(24);

/// The `v1` signature of `body` sent at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The `Companion-Signature` header for the given secrets.
pub fn signature_header(secrets: &[&str], timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|secret| format!("v1={}", sign(secret, timestamp, body)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a receiver does: true if any `v1` signature in `header` matches `secret`.
pub fn verify(header: &str, secret: &str, timestamp: i64, body: &[u8]) -> bool {
    let expected = sign(secret, timestamp, body);
    header
        .split(',')
        .filter_map(|part| part.trim().strip_prefix("v1="))
        .any(|candidate| {
            subtle::ConstantTimeEq::ct_eq(candidate.as_bytes(), expected.as_bytes()).into()
        })
}

fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_endpoints)]
struct EndpointRow {
    id: String,
    clinic_id: String,
    url: String,
    secret: String,
    previous_secret: Option<String>,
    previous_expires_at: Option<NaiveDateTime>,
    active: bool,
    created_at: NaiveDateTime,
}

/// Enqueues a delivery of `event` about `alert_id` to every active endpoint of the clinic, in
/// the caller's transaction.
pub fn enqueue_for_alert(
    conn: &mut DbConnection,
    endpoints: &[String],
    alert_id: &str,
    event: &str,
    step: super::store::Step,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    let escalation = step.escalation;
    let round = match step.round {
        0 => String::new(),
        r => format!("r{r}:"),
    };
    for endpoint in endpoints {
        jobs::enqueue(
            conn,
            &NewJob {
                kind: DELIVER,
                payload: serde_json::json!({"endpoint_id": endpoint, "alert_id": alert_id, "event": event, "escalation": escalation}),
                dedupe_key: Some(format!(
                    "{DELIVER}:{endpoint}:{alert_id}:{round}{escalation}"
                )),
                run_at: now,
                max_attempts: ATTEMPTS,
            },
            now,
        )?;
    }
    Ok(endpoints.len())
}

#[derive(Deserialize)]
struct Payload {
    endpoint_id: String,
    alert_id: String,
    event: String,
    escalation: i32,
}

/// The clinic's active webhook endpoints.
pub fn active_endpoints(conn: &mut DbConnection, clinic_id: &str) -> QueryResult<Vec<String>> {
    webhook_endpoints::table
        .filter(webhook_endpoints::clinic_id.eq(clinic_id))
        .filter(webhook_endpoints::active.eq(true))
        .select(webhook_endpoints::id)
        .load(conn)
}

/// The `webhook.deliver` job.
pub async fn deliver(app: &App, job: &Claimed) -> JobResult {
    let Ok(payload) = serde_json::from_str::<Payload>(&job.payload) else {
        return JobResult::Dead("payload is not a webhook payload".into());
    };
    let (endpoint_id, alert_id) = (payload.endpoint_id.clone(), payload.alert_id.clone());
    let found = app
        .db
        .run(move |conn| {
            let endpoint: Option<EndpointRow> = webhook_endpoints::table
                .find(&endpoint_id)
                .select(EndpointRow::as_select())
                .first(conn)
                .optional()?;
            let alert = super::store::find(conn, &alert_id)?;
            Ok((endpoint, alert))
        })
        .await;
    let (endpoint, alert) = match found {
        Ok((Some(endpoint), Some(alert))) => (endpoint, alert),
        Ok(_) => return JobResult::Dead("endpoint or alert not found".into()),
        Err(e) => return JobResult::retry(format!("database: {e}")),
    };
    if !endpoint.active {
        return JobResult::Done;
    }
    let now = app.now();
    let body = serde_json::json!({
        "type": payload.event,
        "alert_id": alert.id,
        "clinic_id": alert.clinic_id,
        "patient_id": alert.patient_id,
        "severity": alert.severity,
        "escalation": payload.escalation,
        "occurred_at": now,
    })
    .to_string();
    let mut secrets = vec![endpoint.secret.as_str()];
    if let (Some(previous), Some(until)) = (&endpoint.previous_secret, endpoint.previous_expires_at)
        && now.naive_utc() < until
    {
        secrets.push(previous);
    }
    let timestamp = now.timestamp();
    let result = app
        .webhook_client
        .post(&endpoint.url)
        .header("content-type", "application/json")
        .header("companion-webhook-id", &job.id)
        .header("companion-timestamp", timestamp.to_string())
        .header(
            "companion-signature",
            signature_header(&secrets, timestamp, body.as_bytes()),
        )
        .body(body)
        .send()
        .await;
    match result {
        Ok(response) if response.status().is_success() => JobResult::Done,
        Ok(response) => {
            JobResult::retry(format!("endpoint answered {}", response.status().as_u16()))
        }
        Err(e) if e.is_timeout() => JobResult::retry("endpoint timed out".into()),
        Err(_) => JobResult::retry("endpoint unreachable".into()),
    }
}

/// A new endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where to POST (http or https).
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

fn require_clinic_admin(caller: &Caller, clinic: &ClinicId) -> ApiResult<()> {
    caller.ensure_admin_of(clinic, "manage webhooks")
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
        (status = 422, description = "Not an http(s) URL", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn create_webhook(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(clinic_id): Path<String>,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> ApiResult<(StatusCode, Json<Webhook>)> {
    let clinic = ClinicId::parse(&clinic_id).ok_or_else(|| ApiError::not_found("clinic"))?;
    require_clinic_admin(&caller, &clinic)?;
    let valid = url::Url::parse(body.url.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    let Some(url) = valid else {
        return Err(ApiError::invalid_field(
            "url",
            "must be an http or https URL",
        ));
    };
    let now = state.now().naive_utc();
    let row = EndpointRow {
        id: uuid::Uuid::now_v7().to_string(),
        clinic_id: clinic.to_string(),
        url: url.to_string(),
        secret: new_secret(),
        previous_secret: None,
        previous_expires_at: None,
        active: true,
        created_at: now,
    };
    let stored = row.clone();
    let entry = AuditEntry::by(&caller, "webhook.create", now)
        .clinic(clinic.as_str())
        .subject(&row.id);
    state
        .db
        .write(move |conn| {
            diesel::insert_into(webhook_endpoints::table)
                .values(&stored)
                .execute(conn)?;
            audit::record(conn, &entry)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Webhook {
            id: row.id,
            url: row.url,
            secret: Some(row.secret),
            active: true,
            created_at: utc(now),
        }),
    ))
}

async fn own_endpoint(state: &AppState, caller: &Caller, raw_id: &str) -> ApiResult<EndpointRow> {
    let id = uuid::Uuid::try_parse(raw_id)
        .map_err(|_| ApiError::not_found("webhook"))?
        .to_string();
    let row: Option<EndpointRow> = state
        .db
        .run(move |conn| {
            webhook_endpoints::table
                .find(&id)
                .select(EndpointRow::as_select())
                .first(conn)
                .optional()
        })
        .await?;
    let row = row.ok_or_else(|| ApiError::not_found("webhook"))?;
    require_clinic_admin(caller, &ClinicId::from_db(row.clinic_id.clone()))
        .map_err(|_| ApiError::not_found("webhook"))?;
    Ok(row)
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
    Admin(caller): Admin,
    Path(webhook_id): Path<String>,
) -> ApiResult<Json<Webhook>> {
    let row = own_endpoint(&state, &caller, &webhook_id).await?;
    let now = state.now().naive_utc();
    let secret = new_secret();
    let (id, new, old) = (row.id.clone(), secret.clone(), row.secret.clone());
    let entry = AuditEntry::by(&caller, "webhook.rotate", now)
        .clinic(&row.clinic_id)
        .subject(&row.id);
    state
        .db
        .write(move |conn| {
            diesel::update(webhook_endpoints::table.find(&id))
                .set((
                    webhook_endpoints::secret.eq(&new),
                    webhook_endpoints::previous_secret.eq(Some(old)),
                    webhook_endpoints::previous_expires_at.eq(Some(now + ROTATION_OVERLAP)),
                ))
                .execute(conn)?;
            audit::record(conn, &entry)
        })
        .await?;
    Ok(Json(Webhook {
        id: row.id,
        url: row.url,
        secret: Some(secret),
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
    Admin(caller): Admin,
    Path(webhook_id): Path<String>,
) -> ApiResult<StatusCode> {
    let row = own_endpoint(&state, &caller, &webhook_id).await?;
    let now = state.now().naive_utc();
    let entry = AuditEntry::by(&caller, "webhook.delete", now)
        .clinic(&row.clinic_id)
        .subject(&row.id);
    state
        .db
        .write(move |conn| {
            diesel::update(webhook_endpoints::table.find(&row.id))
                .set(webhook_endpoints::active.eq(false))
                .execute(conn)?;
            audit::record(conn, &entry)
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_with_their_secret_only() {
        let body = br#"{"type":"alert.notified"}"#;
        let header = signature_header(&["new", "old"], 1_800_000_000, body);
        assert!(verify(&header, "new", 1_800_000_000, body));
        assert!(verify(&header, "old", 1_800_000_000, body));
        assert!(!verify(&header, "other", 1_800_000_000, body));
        assert!(
            !verify(&header, "new", 1_800_000_001, body),
            "the timestamp is signed"
        );
        assert!(
            !verify(&header, "new", 1_800_000_000, b"{}"),
            "the body is signed"
        );
        // A known vector: HMAC-SHA256("key", "1.x").
        assert_eq!(sign("key", 1, b"x").len(), 64);
    }
}
